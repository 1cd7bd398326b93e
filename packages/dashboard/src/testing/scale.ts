// Many executions and a big log written straight into an EventStore, and the times the
// dashboard's pages take to show them in a browser: shared by the scale test (small sizes) and
// bench/dashboard.bench.mjs (10,000 executions, 1 GiB).
import { ExecutionSpec, type EventStore } from '@tether/core';
import type { Page } from 'playwright-core';

/** Writes `count` finished executions (`job N`, each with one line of output); the newest is `job count-1`. */
export async function fillExecutions(store: EventStore, count: number, prefix = 'scale'): Promise<string[]> {
  const ids: string[] = [];
  const base = Date.now() - count * 1000;
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const id = `${prefix}-${String(i).padStart(6, '0')}`;
      ids[i] = id;
      await store.append(id, [
        { type: 'ExecutionRequested', data: { spec: ExecutionSpec.parse({ command: `echo job ${i}`, labels: { n: String(i), at: String(base + i) } }) } },
        { type: 'ExecutionStarted', data: { pid: 1000 + (i % 30000), pgid: 1000 + (i % 30000), tty: false } },
        { type: 'OutputProduced', data: { stream: 'stdout', data: new TextEncoder().encode(`job ${i}\n`) } },
        { type: 'ExecutionExited', data: { exitCode: i % 7 === 0 ? 1 : 0, signal: null, survivors: [] } },
      ]);
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  return ids;
}

/** One execution whose stdout is `bytes` of numbered lines (about 100 bytes each), ending with `last line`. */
export async function writeBigLog(store: EventStore, id: string, bytes: number): Promise<{ lines: number; lastLine: string }> {
  await store.append(id, [
    { type: 'ExecutionRequested', data: { spec: ExecutionSpec.parse({ command: `big log ${bytes} bytes` }) } },
    { type: 'ExecutionStarted', data: { pid: 1, pgid: 1, tty: false } },
  ]);
  const filler = ' the quick brown fox jumps over the lazy dog, \u001b[33mcoloured\u001b[0m, and so on'.padEnd(88, '.');
  let written = 0;
  let line = 0;
  const chunk = 256 * 1024;
  while (written < bytes) {
    let text = '';
    while (text.length < chunk && written + text.length < bytes) text += `${String(line++).padStart(10, '0')}${filler}\n`;
    const data = new TextEncoder().encode(text);
    written += data.byteLength;
    await store.append(id, [{ type: 'OutputProduced', data: { stream: 'stdout', data } }]);
  }
  const lastLine = `last line after ${line} lines`;
  await store.append(id, [
    { type: 'OutputProduced', data: { stream: 'stdout', data: new TextEncoder().encode(`${lastLine}\n`) } },
    { type: 'ExecutionExited', data: { exitCode: 0, signal: null, survivors: [] } },
  ]);
  return { lines: line + 1, lastLine };
}

export interface PageTimes {
  /** From navigation to the executions page until its first page of rows shows. */
  readonly listFirstPageMs: number;
  /** From the click on "next" until the second page shows. */
  readonly listNextPageMs: number;
  /** From navigation to an execution's page until the last line of its log shows. */
  readonly logTailMs: number;
  /** The number of rows on the first page, and the first row's id. */
  readonly rows: number;
  readonly firstRow: string | null;
  readonly logLines: number;
}

/**
 * Times the dashboard's pages in a signed-in browser page: the executions list (first and next
 * page) and an execution's log tail. Each time ends when the content is in the DOM.
 */
export async function timePages(page: Page, origin: string, machine: string, logId: string, lastLine: string): Promise<PageTimes> {
  await page.goto(`${origin}/#/machines`);
  let t0 = performance.now();
  await page.goto(`${origin}/#/executions?machine=${encodeURIComponent(machine)}`);
  await page.locator('[data-testid=execution-row]').first().waitFor();
  const listFirstPageMs = performance.now() - t0;
  const rows = await page.locator('[data-testid=execution-row]').count();
  const firstRow = await page.locator('[data-testid=execution-row]').first().getAttribute('data-id');
  t0 = performance.now();
  await page.click('[data-testid=next-page]');
  // A function, not a string: the page's CSP forbids evaluating strings. It runs in the page,
  // whose DOM types this package does not compile against, hence the cast.
  await page.waitForFunction((first) => {
    const doc = (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string | null } | null } }).document;
    const row = doc.querySelector('[data-testid=execution-row]');
    return row !== null && row.getAttribute('data-id') !== first;
  }, firstRow);
  const listNextPageMs = performance.now() - t0;
  await page.goto(`${origin}/#/machines`);
  t0 = performance.now();
  await page.goto(`${origin}/#/exec/${encodeURIComponent(machine)}/${encodeURIComponent(logId)}`);
  await page.locator('[data-testid=log] .line', { hasText: lastLine }).waitFor({ timeout: 120_000 });
  const logTailMs = performance.now() - t0;
  const logLines = await page.locator('[data-testid=log] .line').count();
  return { listFirstPageMs, listNextPageMs, logTailMs, rows, firstRow, logLines };
}
