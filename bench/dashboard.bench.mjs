// The dashboard in headless Chromium (Debian's /usr/bin/chromium), each number beside a floor
// measured in the same run on a store with almost nothing in it:
//  1. the executions list's first page (50 rows, newest first): 10,000 executions vs 10;
//  2. the list's next page, through the merged store cursor: 10,000 vs 10 (at least 2 pages);
//  3. an execution's page until the last line of its log shows (the tail: 2000 lines):
//     a 1 GiB log vs a 1 MiB one.
// Each case is timed 11 times, the two cases in alternate rounds after one warm-up round each;
// medians are reported. BENCH_DASH_EXECUTIONS / BENCH_DASH_LOG_MIB
// change the sizes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKernel, TetherError } from '@tether/core';
import { LevelEventStore } from '@tether/store-level';
import { startDashboard } from '@tether/dashboard';
import { fillExecutions, launchChromium, timePages, writeBigLog } from '@tether/dashboard/testing';

const MiB = 1024 ** 2;
const EXECUTIONS = Number(process.env.BENCH_DASH_EXECUTIONS ?? 10_000);
const LOG_BYTES = Number(process.env.BENCH_DASH_LOG_MIB ?? 1024) * MiB;
const ROUNDS = 11;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

const root = mkdtempSync(join(tmpdir(), 'tether-bench-dash-'));
const browser = await launchChromium();

/** A store with `executions` executions and one log of `logBytes`, served by a dashboard, with a page logged in. */
async function setUp(name, executions, logBytes) {
  // The default output cap is 1 GiB: a 1 GiB log and its last line need a little more.
  const store = await LevelEventStore.open(join(root, name), { maxOutputBytesPerExecution: 2 * LOG_BYTES });
  await fillExecutions(store, executions);
  const big = await writeBigLog(store, 'log', logBytes);
  const kernel = await createKernel({ store });
  const local = kernel.machine('local');
  const machines = {
    names: async () => ['local'],
    open: async (n) => {
      if (n !== 'local') throw new TetherError('UNKNOWN_MACHINE', `unknown machine: ${n}`);
      return local;
    },
    check: async () => ({ name: 'local', transport: 'local', ssh_ok: null, daemon_ok: true, latency_ms: 0, checked_at: new Date().toISOString() }),
  };
  const dashboard = await startDashboard({ machines, port: 0 });
  const page = await browser.context.newPage();
  await page.goto(dashboard.loginUrl);
  return {
    // In front before each round: Chromium throttles the timers of a page in the background.
    time: async () => {
      await page.bringToFront();
      return timePages(page, dashboard.origin, 'local', 'log', big.lastLine);
    },
    close: async () => {
      await page.close();
      await dashboard.close();
      await kernel.close();
      await store.close();
    },
  };
}

const summary = (runs) => ({
  listFirstPageMs: round(median(runs.map((r) => r.listFirstPageMs))),
  listNextPageMs: round(median(runs.map((r) => r.listNextPageMs))),
  logTailMs: round(median(runs.map((r) => r.logTailMs))),
});

/** The floor and the large case timed in alternate rounds, so a busy spell of the machine weighs on both alike. */
async function measure() {
  const small = await setUp('small', 60, MiB);
  const big = await setUp('large', EXECUTIONS, LOG_BYTES);
  const smallRuns = [];
  const bigRuns = [];
  try {
    await small.time(); // warm-up of the browser and both servers, not counted
    await big.time();
    for (let i = 0; i < ROUNDS; i++) {
      smallRuns.push(await small.time());
      bigRuns.push(await big.time());
    }
  } finally {
    await small.close();
    await big.close();
  }
  return { floor: summary(smallRuns), large: summary(bigRuns) };
}

try {
  const { floor, large } = await measure();
  const result = {
    bench: 'dashboard',
    executions: EXECUTIONS,
    log_mib: LOG_BYTES / MiB,
    list_first_page_ms: large.listFirstPageMs,
    list_first_page_floor_ms: floor.listFirstPageMs,
    list_first_page_ratio: round(large.listFirstPageMs / floor.listFirstPageMs, 2),
    list_next_page_ms: large.listNextPageMs,
    list_next_page_floor_ms: floor.listNextPageMs,
    list_next_page_ratio: round(large.listNextPageMs / floor.listNextPageMs, 2),
    log_tail_ms: large.logTailMs,
    log_tail_floor_ms: floor.logTailMs,
    log_tail_ratio: round(large.logTailMs / floor.logTailMs, 2),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await browser.close();
  rmSync(root, { recursive: true, force: true });
}
