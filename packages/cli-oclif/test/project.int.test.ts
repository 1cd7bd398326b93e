// exec start --project P --ref R on the local daemon: a real git repository, a bare mirror of it
// (git clone --mirror) named in the config's projects; the command runs in a fresh worktree at the
// ref, the worktree is gone afterwards, a bad ref is a clear error before anything runs.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv, eventually, type CliEnv } from './support.js';

let cli: CliEnv;
let mirror: string;
const gitEnv = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com', GIT_CONFIG_GLOBAL: '/dev/null' };
const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, env: gitEnv, encoding: 'utf8' }).trim();

beforeAll(() => {
  cli = cliEnv('tether-cli-project-');
  const repo = join(cli.root, 'repo');
  mkdirSync(repo);
  git(repo, 'init', '--quiet', '--initial-branch=main');
  writeFileSync(join(repo, 'version.txt'), 'v1\n');
  git(repo, 'add', '.');
  git(repo, 'commit', '--quiet', '-m', 'one');
  git(repo, 'tag', 'v1');
  writeFileSync(join(repo, 'version.txt'), 'v2\n');
  mkdirSync(join(repo, 'sub'));
  writeFileSync(join(repo, 'sub', 'here.txt'), 'inside\n');
  git(repo, 'add', '.');
  git(repo, 'commit', '--quiet', '-m', 'two');
  mirror = join(cli.root, 'mirrors', 'demo.git');
  execFileSync('git', ['clone', '--quiet', '--mirror', repo, mirror], { env: gitEnv });
  cli.writeConfig(`projects:\n  demo: ${mirror}\n  broken: { mirror: ${join(cli.root, 'nothing-here.git')} }\n`);
});
afterAll(async () => {
  await cli?.cleanup();
});

async function finished(id: string): Promise<Record<string, any>> {
  return eventually(async () => {
    const result = (await cli.run(['exec', 'result', '--id', id])).json();
    return result['status'] === 'finished' ? result : undefined;
  });
}

const worktrees = () => git(mirror, 'worktree', 'list', '--porcelain').split('\n').filter((l) => l.startsWith('worktree ')).length;

describe('exec start --project --ref', () => {
  it('runs in a fresh worktree at the ref, removed afterwards; exec result shows the project, the commit and the artifacts', async () => {
    const cmd = 'cat version.txt; pwd; mkdir -p .codex; echo \'{"files":["out/model.pt"]}\' > .codex/artifacts.json';
    const started = await cli.run(['exec', 'start', '--project', 'demo', '--ref', 'v1', '--cmd', cmd]);
    expect(started.code, started.stderr).toBe(0);
    const id = started.json()['exec_id'];
    const result = await finished(id);
    expect(result).toMatchObject({ end_reason: 'exited', exit_code: 0, cmd, project: { name: 'demo', ref: 'v1', commit: git(mirror, 'rev-parse', 'v1') } });
    expect(result['artifacts']).toEqual({ files: ['out/model.pt'] });
    // codex-remote's names for them, beside project.
    expect(result).toMatchObject({ project_id: 'demo', ref: 'v1' });
    const lines = (await cli.run(['exec', 'logs', '--id', id, '--tail-lines', '10'])).lines().map((l) => l.line);
    expect(lines[0]).toBe('v1');
    const dir = lines[1]!;
    expect(dir).toMatch(/tether-worktree\./);
    expect(existsSync(dir)).toBe(false);
    expect(worktrees()).toBe(1); // the bare mirror itself
  });

  it('--cwd is a directory inside the worktree; the branch head by name', async () => {
    const started = await cli.run(['exec', 'start', '--project', 'demo', '--ref', 'main', '--cwd', 'sub', '--cmd', 'cat here.txt ../version.txt']);
    const result = await finished(started.json()['exec_id']);
    expect(result).toMatchObject({ exit_code: 0, project: { ref: 'main' } });
    expect((await cli.run(['exec', 'logs', '--id', result['exec_id']])).lines().map((l) => l.line)).toEqual(['inside', 'v2']);
  });

  it('exec run --project --ref too (as codex-remote): streams the output from the worktree and exits with its code', async () => {
    const run = await cli.run(['exec', 'run', '--project', 'demo', '--ref', 'v1', '--cmd', 'cat version.txt; exit 3']);
    expect(run.code, run.stderr).toBe(3);
    const lines = run.lines();
    expect(lines.filter((l) => l['type'] === 'log' && l['stream'] === 'stdout').map((l) => l['line'])).toEqual(['v1']);
    expect(lines.at(-1)).toMatchObject({ type: 'finished', exit_code: 3 });
    expect((await cli.run(['exec', 'result', '--id', lines[0]!['exec_id']])).json()).toMatchObject({ project_id: 'demo', ref: 'v1' });
    expect(worktrees()).toBe(1);
  });

  it('a cancelled project execution leaves no worktree', async () => {
    const started = await cli.run(['exec', 'start', '--project', 'demo', '--ref', 'v1', '--cmd', 'echo started; sleep 60']);
    const id = started.json()['exec_id'];
    await cli.run(['exec', 'watch', '--id', id, '--full', '--until-pattern', 'started']);
    expect(worktrees()).toBe(2);
    expect((await cli.run(['exec', 'cancel', '--id', id, '--grace', '5s'])).json()).toMatchObject({ canceled: true });
    expect((await finished(id))['end_reason']).toBe('cancelled');
    await eventually(() => (worktrees() === 1 ? true : undefined));
  });

  it('a bad ref, a missing mirror, an unknown project: a clear error, the command never starts, exit 2', async () => {
    const before = (await cli.run(['exec', 'list', '--limit', '100'])).json()['execs'].filter((e: { cmd: string }) => e.cmd === 'echo never').length;
    const badRef = await cli.run(['exec', 'start', '--project', 'demo', '--ref', 'no-such-branch', '--cmd', 'echo never']);
    expect([badRef.code, badRef.stdout]).toEqual([2, '']);
    expect(badRef.error()).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('no commit for ref no-such-branch'), hint: expect.stringContaining(mirror) });
    const noMirror = await cli.run(['exec', 'start', '--project', 'broken', '--ref', 'main', '--cmd', 'echo never']);
    expect([noMirror.code, noMirror.error().message]).toEqual([2, expect.stringContaining('no such directory')]);
    const unknown = await cli.run(['exec', 'start', '--project', 'other', '--ref', 'main', '--cmd', 'echo never']);
    expect(unknown.error()).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^unknown project_id: other/), hint: expect.stringContaining('demo') });
    // codex-remote's wording for a project without a ref.
    const noRef = await cli.run(['exec', 'start', '--project', 'demo', '--cmd', 'echo never']);
    expect([noRef.code, noRef.stdout, noRef.error().code, noRef.error().message]).toEqual([2, '', 'USAGE', expect.stringMatching(/^ref is required when project_id is set/)]);
    const after = (await cli.run(['exec', 'list', '--limit', '100'])).json()['execs'].filter((e: { cmd: string }) => e.cmd === 'echo never').length;
    expect(after).toBe(before);
    expect(worktrees()).toBe(1);
  });
});
