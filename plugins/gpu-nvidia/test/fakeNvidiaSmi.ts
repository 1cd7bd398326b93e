import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const fixturesDir = new URL('./fixtures/', import.meta.url);

/** The text of a recorded nvidia-smi output under test/fixtures. */
export function fixture(name: string): string {
  return readFileSync(new URL(name, fixturesDir), 'utf8');
}

/**
 * What the fake does when run:
 * - `ok`: prints `gpu.out` for `--query-gpu=…`, `apps.out` for `--query-compute-apps=…`
 * - `driver-failure`: prints the driver-communication failure on stdout, exits 9
 * - `stderr-failure`: prints an NVML error on stderr only, exits 18
 * - `hang`: records its pid and a child `sleep`'s pid, then waits for the sleep
 * - `hang-apps`: answers the GPU query, hangs on the compute-apps query
 * - `flood`: prints GPU lines forever
 */
export type FakeMode = 'ok' | 'driver-failure' | 'stderr-failure' | 'hang' | 'hang-apps' | 'flood';

/** A fake `nvidia-smi` shell script in a temp dir, steered by files the test rewrites. */
export class FakeNvidiaSmi {
  readonly dir = mkdtempSync(join(tmpdir(), 'tether-fake-nvidia-smi-'));
  /** Absolute path of the script; it is named `nvidia-smi` so `dir` can go first on PATH. */
  readonly command = join(this.dir, 'nvidia-smi');

  constructor(gpuCsv = '', appsCsv = '') {
    const d = this.dir.replaceAll("'", `'\\''`);
    writeFileSync(
      this.command,
      `#!/bin/sh
d='${d}'
printf '%s\\n' "$*" >> "$d/calls.log"
mode=$(cat "$d/mode" 2>/dev/null)
case "$mode" in
  driver-failure) cat "$d/driver-failure.txt"; exit 9 ;;
  stderr-failure) echo 'Failed to initialize NVML: Driver/library version mismatch' >&2; exit 18 ;;
  hang)
    sleep 300 &
    echo $! > "$d/sleep.pid.tmp" && mv "$d/sleep.pid.tmp" "$d/sleep.pid"
    echo $$ > "$d/sh.pid.tmp" && mv "$d/sh.pid.tmp" "$d/sh.pid"
    wait
    exit 0 ;;
  flood) exec yes '0, GPU-00000000-0000-4000-8000-000000000000, Flood, 0, 0, 0, 0' ;;
  hang-apps) case "$1" in --query-compute-apps=*) exec sleep 300 ;; esac ;;
esac
case "$1" in
  --query-gpu=*) cat "$d/gpu.out" ;;
  --query-compute-apps=*) cat "$d/apps.out" ;;
  *) echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 2 ;;
esac
`,
    );
    chmodSync(this.command, 0o755);
    writeFileSync(join(this.dir, 'driver-failure.txt'), fixture('driver-failure.txt'));
    this.setGpu(gpuCsv);
    this.setApps(appsCsv);
    this.setMode('ok');
  }

  /** What the GPU query prints (replaced atomically, so a running fake never reads half). */
  setGpu(csv: string): void {
    this.#replace('gpu.out', csv);
  }

  setApps(csv: string): void {
    this.#replace('apps.out', csv);
  }

  setMode(mode: FakeMode): void {
    this.#replace('mode', mode);
  }

  /** The argument lists the fake was run with, one string per run. */
  calls(): string[] {
    const log = join(this.dir, 'calls.log');
    return existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l !== '') : [];
  }

  /** How many times the GPU query ran. */
  gpuQueries(): number {
    return this.calls().filter((c) => c.startsWith('--query-gpu=')).length;
  }

  /** Pids recorded by `hang` mode: the script itself and its `sleep` child. */
  hungPids(): { sh: number; sleep: number } | undefined {
    const sh = join(this.dir, 'sh.pid');
    const sleep = join(this.dir, 'sleep.pid');
    if (!existsSync(sh) || !existsSync(sleep)) return undefined;
    return { sh: Number(readFileSync(sh, 'utf8').trim()), sleep: Number(readFileSync(sleep, 'utf8').trim()) };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  #replace(name: string, text: string): void {
    const tmp = join(this.dir, `${name}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(this.dir, name));
  }
}

/** True while `pid` is a live process (a zombie counts as gone). Linux: reads /proc. */
export function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** Poll `condition` every 10 ms until it holds; throw after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
