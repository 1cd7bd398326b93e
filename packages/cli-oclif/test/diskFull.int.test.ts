// The local daemon's state dir on a real 8 MiB tmpfs that fills up: the CLI says so instead of
// hanging, and everything continues once space is freed.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountSmallDisk, type SmallDisk } from '@tether/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { cliEnv, eventually, type CliEnv } from './support.js';

const disk = await mountSmallDisk(8);
const skip = 'skip' in disk ? disk.skip : undefined;

let cli: CliEnv | undefined;
afterAll(async () => {
  // The daemon's state is on the small disk (not in the env's own state dir): stop that one.
  if (!skip) await cli?.run(['daemon', 'stop'], { env: { XDG_STATE_HOME: (disk as SmallDisk).dir } });
  await cli?.cleanup();
  if (!skip) await (disk as SmallDisk).unmount();
});

describe.skipIf(skip !== undefined)(`the CLI when the local daemon's disk fills up${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('ends exec watch with DISK_FULL, refuses exec run with a hint to free space, reports it in daemon status and machine check, then carries on', async () => {
    const small = disk as SmallDisk;
    cli = cliEnv();
    const env = { XDG_STATE_HOME: small.dir };
    const run = (args: string[]) => cli!.run(args, { env });
    const gate = join(cli.root, 'gate');
    const events = join(small.dir, 'tether', 'events');

    expect((await run(['exec', 'run', '--cmd', 'echo before'])).code).toBe(0);
    // seq output in three phases; the second one is written while the disk is full.
    const cmd = `seq 1 2000; until [ -e ${gate}1 ]; do sleep 0.05; done; seq 2001 60000; until [ -e ${gate}2 ]; do sleep 0.05; done; seq 60001 62000`;
    const started = await run(['exec', 'start', '--cmd', cmd, '--no-login-shell']);
    expect(started.code).toBe(0);
    const id = String(started.json()['exec_id']);
    await eventually(async () => ((await run(['exec', 'result', '--id', id])).json()['stdout_bytes'] >= 8893 ? true : undefined), 20_000, 'phase 1');
    const watch = run(['exec', 'watch', '--id', id, '--full']);

    await small.fill();
    writeFileSync(`${gate}1`, '');
    // The watcher ends with the error (exit 12) instead of waiting for ever.
    const watched = await watch;
    expect(watched.code).toBe(12);
    expect(watched.error()).toMatchObject({ code: 'DISK_FULL' });

    const refused = await run(['exec', 'run', '--cmd', 'echo refused']);
    expect(refused.code).toBe(12);
    expect(refused.error().code).toBe('DISK_FULL');
    expect(refused.error().hint).toContain(`free space under ${events}`);

    const status = (await run(['daemon', 'status'])).json();
    expect(status).toMatchObject({ running: true, ok: false, store: { ok: false, code: 'DISK_FULL', dir: events } });
    expect(status['store']['hint']).toContain(`free space under ${events}`);
    const check = await run(['machine', 'check']);
    expect(check.code).toBe(0);
    expect(check.json()).toMatchObject({ daemon_ok: false, store: { code: 'DISK_FULL' } });
    expect(check.json()['error']).toContain(events);
    // Reads work; the command still runs.
    expect((await run(['exec', 'result', '--id', id])).json()).toMatchObject({ status: 'running' });

    await small.free();
    await eventually(async () => ((await run(['daemon', 'status'])).json()['ok'] === true ? true : undefined), 30_000, 'store writable again');
    writeFileSync(`${gate}2`, '');
    const done = await run(['exec', 'watch', '--id', id, '--full', '--stream', 'stdout']);
    expect(done.code).toBe(0);
    const lines = done.lines().filter((l) => l['type'] === 'log').map((l) => String(l['line']));
    const expected = Array.from({ length: 62_000 }, (_, i) => String(i + 1));
    expect(lines.length).toBe(expected.length);
    expect(createHash('sha256').update(lines.join('\n')).digest('hex')).toBe(createHash('sha256').update(expected.join('\n')).digest('hex'));
    const seqs = done.lines().filter((l) => l['type'] === 'log').map((l) => Number(l['seq']));
    expect(seqs.every((seq, i) => i === 0 || seq >= seqs[i - 1]!)).toBe(true);
    expect(done.lines().at(-1)).toMatchObject({ type: 'summary', status: 'finished', end_reason: 'exited', exit_code: 0 });
    expect((await run(['exec', 'run', '--cmd', 'echo after'])).code).toBe(0);
  });
});
