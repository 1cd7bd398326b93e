import { isTetherError } from '@tether/core';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness, groupMembers, isAlive, outputContaining, procStat, waitFor } from '../test/harness.js';
import { findSurvivors, signalPids } from './processTree.js';

const harness = new Harness({ drainTimeoutMs: 200 });
afterEach(() => harness.cleanup());

const pidsIn = (text: string, label: string): number[] => [...text.matchAll(new RegExp(`${label}=(\\d+)`, 'g'))].map((m) => Number(m[1]));

describe.each([
  ['pipes', undefined],
  ['pty', { cols: 80, rows: 24 }],
] as const)('process tree (%s)', (_, tty) => {
  it('kills a whole tree with one group SIGKILL, leaving no survivors', async () => {
    const proc = await harness.start({ argv: ['sh', '-c', 'sleep 100 & echo "a=$!"; sleep 100 & echo "b=$!"; wait'], tty });
    const text = await outputContaining(proc, /b=\d+\r?\n/);
    const [a, b] = [...pidsIn(text, 'a'), ...pidsIn(text, 'b')];
    await waitFor(async () => (await proc.survivors()).length === 3, 'sh and both sleeps to be listed');
    expect(await proc.survivors()).toEqual([proc.pid, a, b].sort((x, y) => x! - y!));
    proc.signal('SIGKILL');
    expect(await proc.exit).toEqual({ exitCode: null, signal: 'SIGKILL' });
    await waitFor(async () => (await proc.survivors()).length === 0, 'the group to be gone');
    // Checked independently of survivors(): nothing alive in the group, neither sleep.
    expect(groupMembers(proc.pgid!)).toEqual([]);
    expect([a, b].map((pid) => isAlive(pid!))).toEqual([false, false]);
  });

  it('finds setsid and nohup grandchildren that outlive the leader, and signalPids removes them', async () => {
    // The leader waits until setsid has run and nohup has exec'd: in a terminal, the hang-up at
    // the leader's exit would otherwise kill them first.
    const script = [
      'setsid sleep 100 </dev/null >/dev/null 2>&1 & s=$!',
      'nohup sleep 101 </dev/null >/dev/null 2>&1 & n=$!',
      'until [ "$(cut -d" " -f6 /proc/$s/stat)" = "$s" ] && [ "$(cat /proc/$n/comm)" = sleep ]; do :; done',
      'echo "s=$s n=$n"',
    ].join('\n');
    const proc = await harness.start({ argv: ['sh', '-c', script], tty });
    const text = await outputContaining(proc, /n=\d+\r?\n/);
    const [escaped] = pidsIn(text, 's');
    const [nohup] = pidsIn(text, 'n');
    await proc.exit;
    // setsid left the group (and the session), so only the exec id finds it.
    expect(procStat(escaped!)).toMatchObject({ session: escaped, pgrp: escaped });
    await waitFor(async () => (await proc.survivors()).length === 2, 'both grandchildren to be listed');
    expect(await proc.survivors()).toEqual([escaped, nohup].sort((x, y) => x! - y!));
    proc.signal('SIGKILL');
    expect(isAlive(escaped!)).toBe(true);
    proc.signalPids(await proc.survivors(), 'KILL');
    await waitFor(() => !isAlive(escaped!) && !isAlive(nohup!), 'both grandchildren to be gone');
    expect(await proc.survivors()).toEqual([]);
  });
});

describe('survivors and signalPids', () => {
  it('tells executions apart: one execution never lists another’s processes', async () => {
    const script = 'setsid sleep 100 </dev/null >/dev/null 2>&1 & echo "s=$!"';
    const [one, two] = await Promise.all([harness.start({ argv: ['sh', '-c', script] }), harness.start({ argv: ['sh', '-c', script] })]);
    const [pidOne] = pidsIn(await outputContaining(one, /s=\d+\n/), 's');
    const [pidTwo] = pidsIn(await outputContaining(two, /s=\d+\n/), 's');
    await Promise.all([one.exit, two.exit]);
    await waitFor(async () => (await one.survivors()).includes(pidOne!) && (await two.survivors()).includes(pidTwo!), 'both to be found');
    expect(await one.survivors()).toEqual([pidOne]);
    expect(await two.survivors()).toEqual([pidTwo]);
  });

  it('ignores pids that are gone and refuses pids that are not real processes', async () => {
    const proc = await harness.start({ argv: ['true'] });
    await harness.collect(proc);
    expect(() => signalPids([proc.pid], 'SIGTERM')).not.toThrow();
    for (const pids of [[0], [1], [-5], [1.5]]) {
      let error: unknown;
      try {
        signalPids(pids, 'SIGTERM');
      } catch (e) {
        error = e;
      }
      expect(isTetherError(error, 'INVALID_ARGUMENT')).toBe(true);
    }
    expect(() => signalPids([process.pid], 'SIGKILL')).not.toThrow();
    expect(() => signalPids([2], 'NOPE')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('finds nothing for an unknown id and a group that does not exist', async () => {
    expect(await findSurvivors(null, 'no-such-execution')).toEqual([]);
  });
});
