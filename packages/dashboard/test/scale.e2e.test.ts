// 10,000 executions and a big log in a real LevelDB store, shown in headless Chromium: the list's
// first page (newest first, through the store's cursor) and the log's tail (O(tail), not the
// whole log). The times are written to test-output/scale-times.json and printed, never asserted;
// the 1 GiB version is bench/dashboard.bench.mjs. The log here is 64 MiB to keep CI quick.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '@tether/core';
import { LevelEventStore } from '@tether/store-level';
import { startDashboard, type Dashboard } from '../src/index.js';
import { fillExecutions, launchChromium, timePages, writeBigLog, type Browser } from '../src/testing/index.js';
import { localDirectory } from './localDirectory.js';

const EXECUTIONS = 10_000;
const LOG_BYTES = 64 * 1024 * 1024;
const OUTPUT = fileURLToPath(new URL('../test-output/', import.meta.url));

let dir: string;
let store: LevelEventStore;
let kernel: Kernel;
let dashboard: Dashboard;
let browser: Browser;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tether-dash-scale-'));
  store = await LevelEventStore.open(join(dir, 'events'));
  await fillExecutions(store, EXECUTIONS);
  kernel = await createKernel({ store });
  dashboard = await startDashboard({ machines: localDirectory({ local: kernel.machine('local') }), port: 0 });
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await dashboard?.close();
  await kernel?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the dashboard at scale', () => {
  it(`lists ${EXECUTIONS} executions newest first, page by page, and opens a ${LOG_BYTES / 2 ** 20} MiB log at its tail`, async () => {
    const big = await writeBigLog(store, 'big-log', LOG_BYTES);
    const newest = (await store.list({ limit: 51 })).items;
    const page = await browser.context.newPage();
    await page.goto(dashboard.loginUrl);
    const times = await timePages(page, dashboard.origin, 'local', 'big-log', big.lastLine);
    expect(times.rows).toBe(50);
    expect(times.firstRow).toBe(newest[0]!.id);
    // the tail: the last 2000 lines, not the whole log
    expect(times.logLines).toBe(2000);
    const filler = ' the quick brown fox jumps over the lazy dog, \u001b[33mcoloured\u001b[0m, and so on'.padEnd(88, '.').replace(/\u001b\[\d+m/g, '');
    expect(await page.locator('[data-testid=log] .line').first().textContent()).toBe(`${String(big.lines - 2000).padStart(10, '0')}${filler}`);
    await page.screenshot({ path: join(OUTPUT, 'big-log.png') });
    await page.goto(`${dashboard.origin}/#/executions?machine=local`);
    await page.locator('[data-testid=execution-row]').first().waitFor();
    await page.screenshot({ path: join(OUTPUT, 'many-executions.png') });

    // A text search reads a bounded number of store pages per request, then continues on the next page.
    await page.goto(`${dashboard.origin}/#/executions?machine=local&q=${encodeURIComponent('echo job 1234')}`);
    await page.locator('[data-testid=no-executions]', { hasText: 'next one' }).waitFor();
    await page.click('[data-testid=next-page]');
    await page.locator('[data-testid=execution-row]', { hasText: 'echo job 1234' }).waitFor();
    expect(await page.locator('[data-testid=execution-row]').count()).toBe(1);
    const report = { executions: EXECUTIONS, logBytes: LOG_BYTES, ...times };
    mkdirSync(OUTPUT, { recursive: true });
    writeFileSync(join(OUTPUT, 'scale-times.json'), `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`dashboard scale: ${JSON.stringify(report)}\n`);
  });
});
