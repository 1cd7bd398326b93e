import type { SyncProgress } from '@tether/core';

/** Redraws at most this often. */
const FRAME_MS = 100;

/**
 * A one-line progress bar for `sync` on a terminal (stderr): bytes done out of the total, files,
 * and the file being transferred. Call `done()` to draw the last state and end the line.
 */
export class ProgressBar {
  readonly #stream: NodeJS.WriteStream;
  readonly #label: string;
  #last: SyncProgress | undefined;
  #drawnAt = 0;

  constructor(stream: NodeJS.WriteStream, label: string) {
    this.#stream = stream;
    this.#label = label;
  }

  update(progress: SyncProgress): void {
    this.#last = progress;
    const now = Date.now();
    if (now - this.#drawnAt < FRAME_MS) return;
    this.#drawnAt = now;
    this.#draw();
  }

  done(): void {
    if (this.#last === undefined) return;
    this.#draw();
    this.#stream.write('\n');
  }

  #draw(): void {
    const p = this.#last!;
    const fraction = p.totalBytes > 0 ? p.bytes / p.totalBytes : p.totalFiles > 0 ? p.files / p.totalFiles : 1;
    const width = 24;
    const filled = Math.round(Math.min(1, fraction) * width);
    const head = `${this.#label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ${p.files}/${p.totalFiles} files  ${size(p.bytes)}/${size(p.totalBytes)}  `;
    const room = Math.max(0, (this.#stream.columns || 80) - head.length - 1);
    const path = p.path.length > room ? `…${p.path.slice(p.path.length - room + 1)}` : p.path;
    this.#stream.write(`\r\x1b[K${head}${room > 0 ? path : ''}`);
  }
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
