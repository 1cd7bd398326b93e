import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The first fenced block after a heading, as written in the README. */
function blockAfter(heading: string): string {
  const section = readme.slice(readme.indexOf(`## ${heading}`));
  const match = /```\w*\n([\s\S]*?)```/.exec(section);
  if (!match?.[1]) throw new Error(`no code block under "${heading}"`);
  return match[1];
}

describe('README', () => {
  it('opens with the install-and-run command and the test command', () => {
    const first = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    expect(first).toMatch(/npm install/);
    expect(first).toMatch(/npm test/);
  });

  it('runs the "Embedding the kernel" example as written (against the built packages)', async () => {
    const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', blockAfter('Embedding the kernel')], { cwd: root });
    expect(stdout.split('\n')).toEqual(['finished exited 3', 'stdout: hello from Linux', 'stderr: oops', '']);
  });

  it('runs the quick-start example', async () => {
    const { stdout } = await promisify(execFile)('node', ['examples/run.mjs', 'echo', 'hi'], { cwd: root });
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; text?: string });
    expect(events.map((e) => e.type)).toEqual(['ExecutionRequested', 'ExecutionStarted', 'OutputProduced', 'ExecutionExited']);
    expect(events[2]!.text).toBe('hi\n');
  });
});
