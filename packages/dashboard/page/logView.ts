// The log view: lines of command output inserted as text nodes (never parsed as HTML), with
// ANSI colours turned into styles by anser's JSON output. Kept outside preact: a busy log
// appends thousands of lines a second, which plain DOM calls do without diffing.
import Anser from 'anser';

/** Longest piece of a line shown; the rest is counted (the download has every byte). */
export const MAX_LINE_CHARS = 64 * 1024;
/** Lines kept on the page; older ones are dropped from the top (the download has them). */
const MAX_LINES = 20_000;

// OSC sequences (ESC ] … BEL or ESC ] … ESC \), e.g. OSC 8 hyperlinks: their text stays, the
// link target is dropped. Then other escape sequences anser does not handle, and control bytes.
const OSC = /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?/g;
const OTHER_ESCAPES = /\x1b(?!\[)[@-Z\\-_]?/g;
const CONTROLS = /[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]/g;

interface Line {
  readonly el: HTMLDivElement;
  readonly stream: string;
  /** The line's raw text (as received, capped), for re-rendering while it is still open and for search. */
  raw: string;
  plain: string;
  /** Characters beyond MAX_LINE_CHARS not shown. */
  cut: number;
  /** The line's start was left out by the machine's tail (it was too long to keep whole). */
  cutStart: boolean;
}

export class LogView {
  readonly el: HTMLDivElement;
  readonly #lines: Line[] = [];
  /** Per stream, the line still waiting for its newline. */
  readonly #open = new Map<string, Line>();
  readonly #anser = new Anser();
  #query = '';
  #dropped = 0;
  readonly #droppedEl: HTMLDivElement;

  constructor() {
    this.el = document.createElement('div');
    this.el.className = 'log';
    this.el.dataset['testid'] = 'log';
    this.#droppedEl = document.createElement('div');
    this.#droppedEl.className = 'log-dropped';
    this.#droppedEl.hidden = true;
    this.el.append(this.#droppedEl);
  }

  /** A complete line (from the tail); `cutStart` when the tail kept only the line's end. */
  addLine(stream: string, text: string, cut = 0, cutStart = false): void {
    const line = this.#newLine(stream);
    line.cutStart = cutStart;
    this.#setText(line, text, cut);
  }

  /** Live output of one stream: continues that stream's open line, then adds lines. */
  append(stream: string, text: string): void {
    const stick = this.#atBottom();
    const pieces = text.split('\n');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      const last = i === pieces.length - 1;
      if (last && piece === '') break;
      let line = this.#open.get(stream);
      if (!line) line = this.#newLine(stream);
      const room = MAX_LINE_CHARS - line.raw.length;
      this.#setText(line, line.raw + piece.slice(0, Math.max(0, room)), line.cut + Math.max(0, piece.length - Math.max(0, room)));
      if (last) this.#open.set(stream, line);
      else this.#open.delete(stream);
    }
    this.#trim();
    if (stick) this.el.scrollTop = this.el.scrollHeight;
  }

  /** Shows only lines containing `query` (case-insensitive); empty shows all. Returns the matches. */
  search(query: string): number {
    this.#query = query.toLowerCase();
    let hits = 0;
    for (const line of this.#lines) if (this.#apply(line)) hits++;
    return hits;
  }

  get lineCount(): number {
    return this.#lines.length;
  }

  scrollToEnd(): void {
    this.el.scrollTop = this.el.scrollHeight;
  }

  #atBottom(): boolean {
    return this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 40;
  }

  #newLine(stream: string): Line {
    const el = document.createElement('div');
    el.className = `line s-${stream === 'stderr' ? 'stderr' : stream === 'pty' ? 'pty' : 'stdout'}`;
    const line: Line = { el, stream, raw: '', plain: '', cut: 0, cutStart: false };
    this.el.append(el);
    this.#lines.push(line);
    return line;
  }

  #setText(line: Line, raw: string, cut: number): void {
    line.raw = raw;
    line.cut = cut;
    // A carriage return redraws the line (progress bars): keep what was drawn last.
    const drawn = raw.includes('\r') ? lastRedraw(raw) : raw;
    const clean = drawn.replace(OSC, '').replace(OTHER_ESCAPES, '');
    const parts = this.#anser.ansiToJson(clean, { json: true, remove_empty: true });
    const nodes: Node[] = [];
    if (line.cutStart) {
      const before = document.createElement('span');
      before.className = 'cut';
      before.textContent = '(the start of this long line is not shown: download the log for all of it) … ';
      nodes.push(before);
    }
    let plain = '';
    for (const part of parts) {
      const text = part.content.replace(CONTROLS, '\ufffd');
      if (text === '') continue;
      plain += text;
      if (!part.fg && !part.bg && part.decorations.length === 0) {
        nodes.push(document.createTextNode(text));
        continue;
      }
      const span = document.createElement('span');
      span.textContent = text;
      if (part.fg) span.style.color = `rgb(${part.fg})`;
      if (part.bg) span.style.backgroundColor = `rgb(${part.bg})`;
      for (const d of part.decorations) span.classList.add(`ansi-${d}`);
      nodes.push(span);
    }
    if (cut > 0) {
      const more = document.createElement('span');
      more.className = 'cut';
      more.textContent = ` … ${cut.toLocaleString()} more characters (download the log for all of it)`;
      nodes.push(more);
    }
    line.plain = plain;
    line.el.replaceChildren(...nodes);
    this.#apply(line);
  }

  #apply(line: Line): boolean {
    const hit = this.#query === '' || line.plain.toLowerCase().includes(this.#query);
    line.el.classList.toggle('miss', !hit);
    return hit;
  }

  #trim(): void {
    const extra = this.#lines.length - MAX_LINES;
    if (extra <= 0) return;
    for (const line of this.#lines.splice(0, extra)) {
      line.el.remove();
      if (this.#open.get(line.stream) === line) this.#open.delete(line.stream);
    }
    this.#dropped += extra;
    this.#droppedEl.hidden = false;
    this.#droppedEl.textContent = `${this.#dropped.toLocaleString()} earlier lines not shown (download the log for all of it)`;
  }
}

function lastRedraw(raw: string): string {
  const pieces = raw.split('\r');
  for (let i = pieces.length - 1; i >= 0; i--) if (pieces[i] !== '') return pieces[i]!;
  return '';
}
