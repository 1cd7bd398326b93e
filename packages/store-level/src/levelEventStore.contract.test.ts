import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventStoreContract } from '@tether/core/testing';
import { afterAll } from 'vitest';
import { LevelEventStore } from './levelEventStore.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

eventStoreContract('LevelEventStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tether-level-contract-'));
  dirs.push(dir);
  return LevelEventStore.open(dir);
});
