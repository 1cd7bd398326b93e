// Runs the built CLI as an agent does: a new process per call, JSON parsed from stdout, errors
// from stderr. Every test file gets its own HOME and XDG directories (and so its own local
// daemon), and stops what it started.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../bin/run.js', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout as one JSON value (throws if it is not exactly one). */
  json<T = Record<string, any>>(): T;
  /** stdout as JSON lines. */
  lines<T = Record<string, any>>(): T[];
  /** The `{"error":{…}}` on stderr (the last JSON line there). */
  error(): { code: string; message: string; hint: string };
}

export interface CliEnv {
  readonly root: string;
  readonly home: string;
  readonly configFile: string;
  readonly stateDir: string;
  readonly dataDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** Run `tether <args>`; resolves when it exits. */
  run(args: readonly string[], options?: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<CliResult>;
  writeConfig(yaml: string): void;
  /** Stop the local daemon of this env and remove its directories. */
  cleanup(): Promise<void>;
}

export function cliEnv(prefix = 'tether-cli-'): CliEnv {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const home = join(root, 'home');
  mkdirSync(home);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: join(root, 'config'),
    XDG_STATE_HOME: join(root, 'state'),
    XDG_DATA_HOME: join(root, 'data'),
    XDG_CACHE_HOME: join(root, 'cache'),
    // An agent's environment: no terminal, no colours.
    NO_COLOR: '1',
  };
  delete env['TETHER_NO_BUNDLE'];
  const configFile = join(root, 'config', 'tether', 'config.yaml');
  const self: CliEnv = {
    root,
    home,
    configFile,
    stateDir: join(root, 'state', 'tether'),
    dataDir: join(root, 'data', 'tether'),
    env,
    run: (args, options = {}) => runCli(args, { cwd: options.cwd ?? home, env: { ...env, ...options.env }, input: options.input, timeoutMs: options.timeoutMs }),
    writeConfig(yaml) {
      mkdirSync(join(root, 'config', 'tether'), { recursive: true });
      writeFileSync(configFile, yaml);
    },
    async cleanup() {
      await self.run(['daemon', 'stop']).catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
  return self;
}

export function runCli(
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; input?: string; timeoutMs?: number },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: options.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tether ${args.join(' ')} did not finish in ${options.timeoutMs ?? 60_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(result(code, stdout, stderr));
    });
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

function result(code: number | null, stdout: string, stderr: string): CliResult {
  return {
    code,
    stdout,
    stderr,
    json() {
      try {
        return JSON.parse(stdout);
      } catch {
        throw new Error(`stdout is not one JSON value (exit ${code}):\n${stdout}\nstderr: ${stderr}`);
      }
    },
    lines() {
      return stdout
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l));
    },
    error() {
      const line = stderr
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{"error"'));
      if (!line) throw new Error(`no JSON error on stderr (exit ${code}):\n${stderr}\nstdout: ${stdout}`);
      return JSON.parse(line).error;
    },
  };
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, withinMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not met within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether a process runs (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pid in a pid file, or undefined when there is none. */
export function pidIn(file: string): number | undefined {
  const pid = Number(existsSync(file) ? readFileSync(file, 'utf8').trim() : NaN);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** A loopback port nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
