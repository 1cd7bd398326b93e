import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const coreReadme = readFileSync(new URL('../packages/core/README.md', import.meta.url), 'utf8');

/** The first fenced block after a heading, as written in the README. */
function blockAfter(heading: string, text = readme): string {
  const at = text.indexOf(`## ${heading}`);
  if (at === -1) throw new Error(`no heading "${heading}"`);
  const section = text.slice(at);
  const match = /```\w*\n([\s\S]*?)```/.exec(section);
  if (!match?.[1]) throw new Error(`no code block under "${heading}"`);
  return match[1];
}

describe('README', () => {
  it('opens with the install-and-run command and the test command', () => {
    const first = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    expect(first.split('\n')[0]).toMatch(/^npm install && npx tether exec run --cmd 'uname -a'/);
    expect(first.split('\n')[1]).toMatch(/^npm test/);
  });

  it('runs the quick-start command as written (with its own HOME and state dir)', async () => {
    const first = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const command = first.split('\n')[0]!.replace(/^npm install && /, '').replace(/\s+#.*$/, '');
    const dir = mkdtempSync(join(tmpdir(), 'tether-readme-'));
    const env = { ...process.env, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state'), XDG_DATA_HOME: join(dir, 'data') };
    try {
      const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', command], { cwd: root, env });
      const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; line?: string; exit_code?: number });
      expect(lines.map((l) => l.type)).toEqual(['started', 'log', 'finished']);
      expect(lines[1]!.line).toMatch(/^Linux /);
      expect(lines[2]!.exit_code).toBe(0);
    } finally {
      await promisify(execFile)('npx', ['tether', 'daemon', 'stop'], { cwd: root, env }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the "Embedding the kernel" example as written (against the built packages)', async () => {
    const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', blockAfter('Embedding the kernel')], { cwd: root });
    expect(stdout.split('\n')).toEqual(['finished exited 3', 'stdout: hello from Linux', 'stderr: oops', '']);
  });

  it('runs the "outlive the agent" example as written: the execution goes on in the CLI\'s daemon', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-readme-daemon-'));
    const env = { ...process.env, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state'), XDG_DATA_HOME: join(dir, 'data') };
    try {
      const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', blockAfter('Embedding, with executions that outlive the agent')], { cwd: root, env });
      const id = stdout.trim();
      expect(id).toMatch(/^\S+$/);
      // The embedding process has exited; the CLI finds the execution and follows it to its end.
      const watch = await promisify(execFile)('npx', ['tether', 'exec', 'watch', '--id', id, '--full'], { cwd: root, env });
      const lines = watch.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; line?: string; exit_code?: number });
      expect(lines.filter((l) => l.type === 'log').map((l) => l.line)).toEqual(['still here']);
      expect(lines.at(-1)).toMatchObject({ type: 'summary', exit_code: 0 });
    } finally {
      await promisify(execFile)('npx', ['tether', 'daemon', 'stop'], { cwd: root, env }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the core README\'s followLines example as written: whole lines live, the partial last one at the end', async () => {
    const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', blockAfter('Lines of output', coreReadme)], { cwd: root });
    expect(stdout.split('\n')).toEqual(['stdout: epoch 1', 'stdout: epoch 2', 'stdout: epoch 3', 'stdout: no newline', '']);
  });

  it('runs examples/run.mjs as the README describes', async () => {
    const { stdout } = await promisify(execFile)('node', ['examples/run.mjs', 'echo', 'hi'], { cwd: root });
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; text?: string });
    expect(events.map((e) => e.type)).toEqual(['ExecutionRequested', 'ExecutionStarted', 'OutputProduced', 'ExecutionExited']);
    expect(events[2]!.text).toBe('hi\n');
  });
});
