// `daemon serve --listen` attached to a running socket-only daemon relays a follow to a client
// that does not read: the relay stops reading the daemon (which then waits on its own socket),
// so neither process grows while the command keeps writing hundreds of MiB. RSS from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { readToken, remoteMachine } from '@tether/transport-ws';
import { BIN, cliEnv, eventually, type CliEnv } from './support.js';

const MiB = 1024 * 1024;
/**
 * Neither process may hold half of what was written. Recording a flood alone takes the daemon
 * from ~90 to ~200-220 MiB (LevelDB's 32 MiB write buffers, frames on their way to the store,
 * garbage not yet collected) and a follow's pages add 40-70 MiB more: 230-290 MiB measured on a
 * quiet machine for 384 MiB to 1 GiB written, flat in what was written. A daemon that kept the
 * unread follow would pass 768 MiB.
 */
const BOUND = 384 * MiB;
/** How much the command writes (and the daemon records) while the follower does not read. */
const WRITTEN = 768 * MiB;

let cli: CliEnv | undefined;
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await cli?.cleanup();
});

function rssOf(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** Starts `tether daemon serve ARGS`; resolves with its ready line and a view of its log. */
async function serve(args: string[]): Promise<{ child: ChildProcess; ready: Record<string, any>; log: () => string }> {
  const child = spawn(process.execPath, [BIN, 'daemon', 'serve', ...args], { env: cli!.env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const ready = await new Promise<Record<string, any>>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
    });
    child.once('exit', (code) => reject(new Error(`daemon serve exited with ${code}: ${stderr}`)));
  });
  return { child, ready, log: () => stderr };
}

it('a follow relayed to a client that does not read: the attached listener and the daemon stay bounded', async () => {
  cli = cliEnv('tether-cli-attach-bp-');
  const dataDir = join(cli.root, 'srv');
  const daemon = await serve(['--listen', 'none', '--data-dir', dataDir]);
  const attached = await serve(['--listen', '127.0.0.1:0', '--data-dir', dataDir]);
  expect(attached.ready).toMatchObject({ ok: true, attached_to: daemon.child.pid });
  const url = (attached.ready['urls'] as string[]).find((u) => u.startsWith('ws://'))!;
  const token = await readToken(join(dataDir, 'token'));

  let peak = { daemon: 0, attached: 0 };
  const sample = () =>
    (peak = { daemon: Math.max(peak.daemon, rssOf(daemon.child.pid!)), attached: Math.max(peak.attached, rssOf(attached.child.pid!)) });
  sample();
  const baseline = { ...peak };
  const sampler = setInterval(sample, 5);
  const direct = remoteMachine(`unix:${join(dataDir, 'daemon.sock')}`, { token, name: 'direct' });
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, maxPayload: 64 * MiB });
  try {
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const replies: Array<Record<string, any>> = [];
    ws.on('message', (data: Buffer, binary: boolean) => binary || replies.push(JSON.parse(data.toString())));
    const send = (id: number, method: string, params: object) => ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    send(1, 'exec/start', { id: 'flood', command: 'cat /dev/zero' });
    await eventually(() => (replies.some((r) => r['id'] === 1) ? true : undefined), 20_000, 'the start reply');
    send(2, 'exec/follow', { id: 'flood' });
    await eventually(() => (replies.some((r) => r['id'] === 2) ? true : undefined), 20_000, 'the follow reply');
    // From here on the client reads nothing.
    ws.pause();
    await eventually(() => (attached.log().includes('"msg":"client backed up') || peak.attached > BOUND ? true : undefined), 60_000, 'the relay backed up');
    // The command keeps writing and the daemon keeps recording; nothing of it piles up for the client.
    await eventually(
      async () => (peak.attached > BOUND || peak.daemon > BOUND || ((await direct.exec.get('flood')).bytes.stdout ?? 0) >= WRITTEN ? true : undefined),
      90_000,
      `${WRITTEN / MiB} MiB written`,
    );
    sample();
    console.log(
      `[figures] (c) attach relay, ${WRITTEN / MiB} MiB followed unread: attached listener RSS ${Math.round(baseline.attached / MiB)} -> peak ${Math.round(peak.attached / MiB)} MiB, ` +
        `daemon ${Math.round(baseline.daemon / MiB)} -> ${Math.round(peak.daemon / MiB)} MiB`,
    );
    expect(peak.attached).toBeLessThanOrEqual(BOUND);
    expect(peak.daemon).toBeLessThanOrEqual(BOUND);
    expect(attached.log()).toContain('"msg":"client backed up');
    expect(daemon.log()).toContain('"msg":"client backed up');
  } finally {
    clearInterval(sampler);
    ws.terminate();
    await direct.exec.cancel('flood', { graceMs: 100 }).catch(() => undefined);
    await direct.close();
    attached.child.kill('SIGTERM');
    daemon.child.kill('SIGTERM');
    await Promise.all([attached.child, daemon.child].map((c) => new Promise((resolve) => (c.exitCode === null ? c.once('exit', resolve) : resolve(undefined)))));
  }
}, 180_000);
