import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { foldEvents, type ExecutionState } from '@tether/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LevelEventStore } from './levelEventStore.js';

const writer = fileURLToPath(new URL('../test/fixtures/crashWriter.mjs', import.meta.url));
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const ROUNDS = 24;

let dir: string;
beforeAll(async () => {
  if (!existsSync(built)) throw new Error('build @tether/store-level first (npx tsc -b packages/store-level): the child process uses dist/');
  dir = await mkdtemp(join(tmpdir(), 'tether-level-crash-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Runs the writer until it has acknowledged `killAfter` appends, then SIGKILLs it. Returns the
 * highest acknowledged seq per stream.
 */
function runAndKill(seed: number, round: number, killAfter: number): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [writer, dir, String(seed), String(round)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked = new Map<string, number>();
    let count = 0;
    let buffered = '';
    let stderr = '';
    let killed = false;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
        const [kind, stream, seq] = buffered.slice(0, nl).split(' ');
        buffered = buffered.slice(nl + 1);
        if (kind === 'ack' && stream !== undefined) {
          acked.set(stream, Math.max(acked.get(stream) ?? 0, Number(seq)));
          count++;
        } else if (kind !== 'ready') {
          reject(new Error(`writer: ${kind} ${stream} ${seq}`));
        }
        if (!killed && (kind === 'ready' || kind === 'ack') && count >= killAfter) {
          killed = child.kill('SIGKILL');
        }
      }
    });
    child.once('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acked);
      else reject(new Error(`writer exited with ${code}: ${stderr}`));
    });
  });
}

async function allStates(store: LevelEventStore): Promise<ExecutionState[]> {
  const states: ExecutionState[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.list({ cursor, limit: 500 });
    states.push(...page.items);
    cursor = page.cursor;
  } while (cursor);
  return states;
}

it(`keeps every acknowledged append through ${ROUNDS} SIGKILLs at random points`, async () => {
  let seed = 0x7e7e;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 4294967296;
  };
  const acked = new Map<string, number>();
  const decoder = new TextDecoder();
  let outputsChecked = 0;

  for (let round = 0; round < ROUNDS; round++) {
    const killAfter = round % 5 === 0 ? Math.floor(random() * 4) : 10 + Math.floor(random() * 300);
    for (const [stream, seq] of await runAndKill(seed, round, killAfter)) acked.set(stream, Math.max(acked.get(stream) ?? 0, seq));

    const store = await LevelEventStore.open(dir);
    try {
      const states = await allStates(store);
      const byId = new Map(states.map((s) => [s.id, s]));
      for (const [stream, seq] of acked) {
        expect(byId.get(stream)?.lastSeq ?? 0, `stream ${stream} lost acknowledged seq ${seq} in round ${round}`).toBeGreaterThanOrEqual(seq);
      }
      for (const state of states) {
        const events = await store.read(state.id);
        expect(events.map((e) => e.seq)).toEqual(Array.from({ length: state.lastSeq }, (_, i) => i + 1));
        expect(events[0]?.type).toBe('ExecutionRequested');
        expect(state).toEqual(foldEvents(state.id, events));
        expect(await store.durableSeq(state.id)).toBe(state.lastSeq);
        for (const event of events) {
          if (event.type !== 'OutputProduced') continue;
          const head = decoder.decode(event.data.data.subarray(0, state.id.length + 16));
          expect(head.startsWith(`${state.id}@${event.seq}|`), `event ${event.seq} of ${state.id} holds "${head}"`).toBe(true);
          outputsChecked++;
        }
      }
    } finally {
      await store.close();
    }
  }
  expect(acked.size).toBeGreaterThan(10);
  expect(outputsChecked).toBeGreaterThan(1000);
});
