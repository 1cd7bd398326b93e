// `tether dashboard` as a person uses it: the built CLI serving the dashboard for the local
// daemon (started on demand) and a ws daemon, driven in a real headless Chromium. Machines,
// a command started from the page with its lines arriving live, a cancel, the filters, the
// GPU page, and hostile output rendered as text with no script run and no request made.
// Screenshots go to packages/dashboard/test-output/.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { startDaemon, type Daemon } from '@tether/transport-ws';
import processPlugin from '@tether/plugin-process';
import gpuPlugin from '@tether/plugin-gpu-nvidia';
import { launchChromium, type Browser } from '@tether/dashboard/testing';

const BIN = fileURLToPath(new URL('../packages/cli-oclif/bin/run.js', import.meta.url));
const SCREENSHOTS = fileURLToPath(new URL('../packages/dashboard/test-output/', import.meta.url));

let root: string;
let env: NodeJS.ProcessEnv;
let daemon: Daemon;
let cli: ChildProcess;
let login: { url: string; origin: string };
let browser: Browser;
let page: Page;
let gpuDir: string;
/** Requests anything in the browser made to this listener (none may come). */
let listener: Server;
let listenerUrl: string;
const hits: string[] = [];
const dialogs: string[] = [];
/** Errors thrown in the page (none may be). */
const pageErrors: string[] = [];

/** A stand-in nvidia-smi printing one GPU (busy or free, by a file), since there is no GPU here. */
function fakeGpu(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const command = join(dir, 'nvidia-smi');
  writeFileSync(
    command,
    `#!/bin/sh
if [ -e '${dir}/busy' ]; then used=60000; util=93; apps='777, GPU-dash-0, 59000'; else used=5; util=0; apps=''; fi
case "$1" in
  --query-gpu=*) echo "0, GPU-dash-0, NVIDIA H100 80GB HBM3, $used, 81559, $util, 40" ;;
  --query-compute-apps=*) [ -n "$apps" ] && echo "$apps" ;;
  *) exit 2 ;;
esac
exit 0
`,
  );
  chmodSync(command, 0o755);
  return command;
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'tether-dash-e2e-'));
  mkdirSync(SCREENSHOTS, { recursive: true });
  env = {
    ...process.env,
    HOME: join(root, 'home'),
    XDG_CONFIG_HOME: join(root, 'config'),
    XDG_STATE_HOME: join(root, 'state'),
    XDG_DATA_HOME: join(root, 'data'),
    XDG_CACHE_HOME: join(root, 'cache'),
  };
  mkdirSync(join(root, 'home'));
  gpuDir = join(root, 'gpu');
  writeFileSync(join(root, 'placeholder'), '');
  daemon = await startDaemon({
    listen: '127.0.0.1:0',
    dataDir: join(root, 'box-daemon'),
    plugins: [processPlugin, { plugin: gpuPlugin, config: { command: fakeGpu(gpuDir), cacheMs: 0 } }],
  });
  mkdirSync(join(root, 'config', 'tether'), { recursive: true });
  // "gone": a machine whose daemon does not answer (nothing listens on its port).
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const gonePort = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  writeFileSync(
    join(root, 'config', 'tether', 'config.yaml'),
    `machines:\n  - name: box\n    addr: ${daemon.url}\n    token_file: ${daemon.tokenFile}\n  - name: gone\n    addr: ws://127.0.0.1:${gonePort}\n    token_file: ${daemon.tokenFile}\n`,
  );

  listener = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    res.end('');
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  listenerUrl = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;

  cli = spawn(process.execPath, [BIN, 'dashboard', '--listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  login = await new Promise((resolve, reject) => {
    let out = '';
    cli.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!));
    });
    cli.on('exit', (code) => reject(new Error(`tether dashboard exited with ${code} before serving`)));
  });

  browser = await launchChromium();
  page = await browser.context.newPage();
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  page.on('pageerror', (error) => pageErrors.push(error.stack ?? error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  page.on('request', (request) => {
    if (request.url().startsWith(listenerUrl)) hits.push(`browser ${request.url()}`);
  });
  await page.goto(login.url);
});

afterAll(async () => {
  await browser?.close();
  if (cli && cli.exitCode === null) {
    const exited = new Promise((resolve) => cli.once('exit', resolve));
    cli.kill('SIGTERM');
    await exited;
  }
  await daemon?.close();
  await new Promise((resolve) => listener?.close(resolve));
  if (env) await run(['daemon', 'stop']);
  rmSync(root, { recursive: true, force: true });
});

const log = () => page.locator('[data-testid=log]');
/** expect.poll's patience: the page refreshes lists every few seconds. */
const POLL = { timeout: 30_000, interval: 100 };

afterEach(() => {
  expect(pageErrors).toEqual([]);
});

describe('tether dashboard in Chromium', () => {
  it('the login link set the cookie and was spent; the machines page shows local and the ws daemon answering', async () => {
    expect(new URL(page.url()).pathname).toBe('/');
    const cookies = await browser.context.cookies();
    expect(cookies).toEqual([expect.objectContaining({ name: `tether_dashboard_${new URL(login.origin).port}`, httpOnly: true, sameSite: 'Strict' })]);
    await page.locator('[data-testid=machine-row][data-machine=local][data-daemon-ok=true]').waitFor();
    await page.locator('[data-testid=machine-row][data-machine=box][data-daemon-ok=true]').waitFor();
    const box = page.locator('[data-testid=machine-row][data-machine=box]');
    await expect.poll(() => box.textContent(), POLL).toContain('H100');
    expect(await box.textContent()).toContain('ws');
    expect(await box.textContent()).toMatch(/\d+ ms/); // latency
    expect(await box.textContent()).toMatch(/\d+\.\d+\.\d+/); // the daemon's version
    expect(await page.locator('[data-testid=machine-row][data-machine=local]').textContent()).toContain('local');
    // A machine that does not answer says so, with the reason.
    const gone = page.locator('[data-testid=machine-row][data-machine=gone][data-daemon-ok=false]');
    await gone.waitFor();
    expect(await gone.locator('.error').textContent()).toMatch(/refused|ECONNREFUSED/i);
    // Refreshed live: the GPU turning busy shows up without a reload.
    await expect.poll(() => box.textContent(), POLL).toContain('H100 80GB HBM3: 0 %');
    writeFileSync(join(gpuDir, 'busy'), '');
    await expect.poll(() => box.textContent(), POLL).toContain('H100 80GB HBM3: 93 %, 60000/81559 MiB');
    rmSync(join(gpuDir, 'busy'));
    await page.screenshot({ path: join(SCREENSHOTS, 'machines.png'), fullPage: true });

    // The link works once: a second browser profile cannot use it.
    const other = await launchChromium();
    try {
      const second = await other.context.newPage();
      const answer = await second.goto(login.url);
      expect(answer?.status()).toBe(403);
      const api = await second.goto(`${login.origin}/api/machines`);
      expect(api?.status()).toBe(401);
    } finally {
      await other.close();
    }
  });

  it('starts a command from the page and shows its lines as they come; the list shows it finished', async () => {
    const go = join(root, 'go-live');
    await page.goto(`${login.origin}/#/executions`);
    await page.locator('[data-testid=run-machine] option', { hasText: /^box$/ }).waitFor({ state: 'attached' });
    await page.selectOption('[data-testid=run-machine]', 'box');
    await page.fill('[data-testid=run-command]', `echo first-line; echo to-stderr >&2; while [ ! -e '${go}' ]; do sleep 0.05; done; printf '\\033[32msecond-line\\033[0m\\n'`);
    await page.click('[data-testid=run-submit]');
    await log().locator('.line', { hasText: 'first-line' }).waitFor();
    await page.locator('[data-testid=live-state]', { hasText: 'live' }).waitFor();
    expect(await log().textContent()).not.toContain('second-line');
    writeFileSync(go, '');
    const second = log().locator('.line', { hasText: 'second-line' });
    await second.waitFor();
    expect(await second.locator('span').evaluate((el) => getComputedStyle(el).color)).toMatch(/^rgb\(0, 187, 0\)$/);
    await page.locator('[data-testid=exec-status][data-end-reason=exited]').waitFor();
    expect(await page.locator('[data-testid=exec-status]').textContent()).toBe('exited 0');

    // stderr toggle and search
    const stderrLine = log().locator('.line', { hasText: 'to-stderr' });
    await page.uncheck('[data-testid=show-stderr]');
    await stderrLine.waitFor({ state: 'hidden' });
    expect(await log().locator('.line', { hasText: 'first-line' }).isVisible()).toBe(true);
    await page.check('[data-testid=show-stderr]');
    await stderrLine.waitFor({ state: 'visible' });
    await page.uncheck('[data-testid=show-stdout]');
    await log().locator('.line', { hasText: 'first-line' }).waitFor({ state: 'hidden' });
    expect(await stderrLine.isVisible()).toBe(true);
    await page.check('[data-testid=show-stdout]');
    await page.fill('[data-testid=log-search]', 'second');
    await page.locator('[data-testid=log-hits]', { hasText: '1 lines' }).waitFor();
    expect(await log().locator('.line', { hasText: 'first-line' }).isVisible()).toBe(false);
    await page.screenshot({ path: join(SCREENSHOTS, 'execution.png'), fullPage: true });
    await page.fill('[data-testid=log-search]', '');

    // The download is the full log, byte for byte.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=download]')]);
    const saved = join(root, 'download.log');
    await download.saveAs(saved);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(saved, 'utf8')).toBe('first-line\nto-stderr\n\u001b[32msecond-line\u001b[0m\n');
  });

  it('signals and cancels a running command from its page', async () => {
    await page.goto(`${login.origin}/#/executions`);
    await page.locator('[data-testid=run-machine] option', { hasText: /^local$/ }).waitFor({ state: 'attached' });
    await page.selectOption('[data-testid=run-machine]', 'local');
    await page.fill('[data-testid=run-command]', "trap 'echo got-usr1' USR1; echo will-be-cancelled; while :; do sleep 0.1; done");
    await page.click('[data-testid=run-submit]');
    await log().locator('.line', { hasText: 'will-be-cancelled' }).waitFor();
    await page.locator('[data-testid=exec-status][data-status=running]').waitFor();
    await page.selectOption('[data-testid=signal-name]', 'USR1');
    await page.click('[data-testid=signal]');
    await page.locator('[data-testid=notice]', { hasText: 'sent USR1' }).waitFor();
    await log().locator('.line', { hasText: 'got-usr1' }).waitFor();
    await page.locator('[data-testid=exec-status][data-status=running]').waitFor();
    await page.click('[data-testid=cancel]');
    await page.locator('[data-testid=exec-status][data-end-reason=cancelled]').waitFor();
    await page.locator('[data-testid=notice]', { hasText: 'cancelled' }).waitFor();
  });

  it('filters the list by machine, status and text, newest first', async () => {
    const box = daemon.kernel.machine('local');
    const alpha1 = await box.exec.start({ command: 'echo filter-alpha one' });
    const beta = await box.exec.start({ command: 'echo filter-beta' });
    const alpha2 = await box.exec.start({ command: 'echo filter-alpha two' });
    const sleeper = await box.exec.start({ command: 'exec sleep 600', labels: { job: 'filter-sleeper' } });
    await Promise.all([alpha1, beta, alpha2].map((s) => box.exec.wait(s.id)));

    await page.goto(`${login.origin}/#/executions`);
    await page.fill('[data-testid=filter-text]', 'filter-alpha');
    await expect.poll(() => page.locator('[data-testid=execution-row]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id'))), POLL).toEqual([alpha2.id, alpha1.id]);
    await page.screenshot({ path: join(SCREENSHOTS, 'executions-filtered.png'), fullPage: true });

    await page.goto(`${login.origin}/#/executions?status=running`);
    await expect.poll(() => page.locator('[data-testid=execution-row]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id'))), POLL).toContain(sleeper.id);
    const statuses = await page.locator('[data-testid=execution-row]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-status')));
    expect(new Set(statuses)).toEqual(new Set(['running']));

    await page.goto(`${login.origin}/#/executions?machine=local`);
    await page.locator('[data-testid=execution-row]').first().waitFor();
    const machines = await page.locator('[data-testid=execution-row] td:first-child').allTextContents();
    expect(new Set(machines)).toEqual(new Set(['local']));

    await page.goto(`${login.origin}/#/executions`);
    await expect.poll(() => page.locator('[data-testid=execution-row]').count(), POLL).toBeGreaterThanOrEqual(6);
    await page.screenshot({ path: join(SCREENSHOTS, 'executions.png'), fullPage: true });
    await box.exec.cancel(sleeper.id, { graceMs: 100 });
  });

  it('GPU page: utilisation over time, compute processes, an execution held by the GPU gate', async () => {
    writeFileSync(join(gpuDir, 'busy'), '');
    const box = daemon.kernel.machine('local');
    const gated = await box.exec.start({ command: 'echo gate-opened', gpuGate: { pollMs: 100 } });
    expect(gated.status).toBe('queued');
    await page.goto(`${login.origin}/#/gpus?machine=box`);
    await page.locator('[data-testid=gpu-card]').waitFor();
    await page.locator('[data-testid=gpu-process]', { hasText: '777' }).waitFor();
    await page.locator('[data-testid=gated-row]', { hasText: gated.id }).waitFor();
    await page.locator('[data-testid=gpu-card][data-samples="3"]').waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'gpus.png'), fullPage: true });
    rmSync(join(gpuDir, 'busy'));
    expect((await box.exec.wait(gated.id)).exitCode).toBe(0);
    await expect.poll(() => page.locator('[data-testid=gated-row]').count(), POLL).toBe(0);
  });

  it('hostile output renders as text: no script runs, no request leaves, live and from the tail', async () => {
    const hostile = Buffer.concat([
      Buffer.from(`<script>alert("script-tag")</script><script src="${listenerUrl}/script.js"></script>\n`),
      Buffer.from(`<img src="${listenerUrl}/img.png" onerror="alert('img-onerror')">\n`),
      Buffer.from(`<iframe src="${listenerUrl}/frame"></iframe><style>body{background:url(${listenerUrl}/css.png)}</style><a href="javascript:alert(3)">js-link</a>\n`),
      Buffer.from(`\u001b]8;;${listenerUrl}/osc8\u001b\\osc8-link-text\u001b]8;;\u001b\\ and \u001b]8;;javascript:alert(4)\u0007bel-link\u001b]8;;\u0007\n`),
      Buffer.from('\u001b[1;31mbold-red\u001b[0m \u001b[38;2;10;20;30mtruecolor\u001b[0m \u001b[2J\u001b[Hcleared?\n'),
      Buffer.from([0x62, 0x61, 0x64, 0x2d, 0xff, 0xfe, 0xc3, 0x28, 0x2d, 0x75, 0x74, 0x66, 0x38, 0x0a]),
      Buffer.from(`${'<b>'.repeat(10)}${'x'.repeat(10 * 1024 * 1024)}\n`),
      Buffer.from('hostile-end\n'),
    ]);
    const file = join(root, 'hostile.bin');
    writeFileSync(file, hostile);
    const go = join(root, 'go-hostile');
    await page.goto(`${login.origin}/#/executions`);
    await page.locator('[data-testid=run-machine] option', { hasText: /^box$/ }).waitFor({ state: 'attached' });
    await page.selectOption('[data-testid=run-machine]', 'box');
    await page.fill('[data-testid=run-command]', `echo waiting; while [ ! -e '${go}' ]; do sleep 0.05; done; cat '${file}'`);
    await page.click('[data-testid=run-submit]');
    await log().locator('.line', { hasText: 'waiting' }).waitFor();
    await page.locator('[data-testid=live-state]', { hasText: 'live' }).waitFor();
    writeFileSync(go, '');
    await log().locator('.line', { hasText: 'hostile-end' }).waitFor({ timeout: 60_000 });
    const url = page.url();
    await check('live');
    await log().evaluate((el) => (el.scrollTop = 0));
    await page.screenshot({ path: join(SCREENSHOTS, 'hostile-live.png'), fullPage: true });

    // Again from the tail of the finished execution.
    await page.goto('about:blank');
    await page.goto(url);
    await log().locator('.line', { hasText: 'hostile-end' }).waitFor({ timeout: 60_000 });
    await check('tail');
    await log().evaluate((el) => (el.scrollTop = 0));
    await page.screenshot({ path: join(SCREENSHOTS, 'hostile-tail.png'), fullPage: true });

    async function check(how: string): Promise<void> {
      const text = (await log().textContent()) ?? '';
      expect(text, how).toContain('<script>alert("script-tag")</script>');
      expect(text, how).toContain(`<img src="${listenerUrl}/img.png" onerror="alert('img-onerror')">`);
      expect(text, how).toContain('osc8-link-text');
      expect(text, how).toContain('bel-link');
      expect(text, how).not.toContain(`${listenerUrl}/osc8`);
      expect(text, how).toContain('bad-\ufffd\ufffd\ufffd(-utf8');
      if (how === 'live') {
        // Live, the 10 MiB line shows its start, then how much more there is.
        expect(text, how).toContain('<b><b><b>');
        expect(text, how).toMatch(/<b>x+ … [\d,.\u202f\u00a0]+ more characters/);
      } else {
        // From the tail, the lines before it are there and it shows as its cut end.
        expect(text, how).toMatch(/start of this long line is not shown[^…]*… x{65536}\n?hostile-end/);
        expect(text, how).not.toContain('<b><b><b>');
      }
      expect(text, how).not.toContain('\u001b');
      expect(await log().locator('script, img, iframe, a, style, b, object, embed, svg').count(), how).toBe(0);
      expect(await page.locator('script').evaluateAll((s) => s.map((e) => e.getAttribute('src')))).toEqual(['/assets/app.js']);
      const red = log().locator('span', { hasText: 'bold-red' });
      expect(await red.evaluate((el) => [getComputedStyle(el).color, getComputedStyle(el).fontWeight])).toEqual(['rgb(187, 0, 0)', '700']);
      expect(await log().locator('span', { hasText: 'truecolor' }).evaluate((el) => getComputedStyle(el).color)).toBe('rgb(10, 20, 30)');
      // Give a would-be injected script every chance to have run: a round trip through the page.
      await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0))));
      expect(dialogs, how).toEqual([]);
      expect(hits, how).toEqual([]);
    }
  });

  it('tether dashboard: a taken port or a bad --listen is a JSON error (exit 2); off loopback it warns', async () => {
    const taken = await run(['dashboard', '--listen', new URL(login.origin).host]);
    expect([taken.code, taken.stdout]).toEqual([2, '']);
    expect(JSON.parse(taken.stderr.trim().split('\n').at(-1)!)).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: expect.stringContaining('address in use'), hint: expect.stringContaining('--listen') } });
    // Off loopback it serves, and says what that exposes.
    const wide = spawn(process.execPath, [BIN, 'dashboard', '--listen', '0.0.0.0:0'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise((resolve) => wide.once('exit', resolve));
    try {
      const first = await new Promise<string>((resolve, reject) => {
        let out = '';
        wide.stdout!.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          if (out.includes('\n')) resolve(out.split('\n')[0]!);
        });
        wide.once('exit', (code) => reject(new Error(`exited with ${code}`)));
      });
      expect(JSON.parse(first)).toMatchObject({ url: expect.stringContaining('/login?token='), warning: expect.stringMatching(/plain HTTP.*127\.0\.0\.1/) });
    } finally {
      wide.kill('SIGTERM');
      await exited;
    }
    expect(login).not.toHaveProperty('warning'); // on loopback (the launch of beforeAll)
    const bad = await run(['dashboard', '--listen', 'nowhere']);
    expect([bad.code, bad.stdout]).toEqual([2, '']);
    expect(JSON.parse(bad.stderr.trim().split('\n').at(-1)!)).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: expect.stringContaining('host:port') } });
  });

  it('a foreign page in the same browser cannot act on the dashboard (CSRF)', async () => {
    const marker = `csrf-${Date.now()}`;
    const foreign = await browser.context.newPage();
    await foreign.goto(`${listenerUrl}/evil`);
    hits.length = 0;
    const outcome = await foreign.evaluate(
      async ({ origin, marker }) => {
        const tries: string[] = [];
        for (const init of [
          { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ command: `echo ${marker}` }) },
          { method: 'POST', mode: 'cors', credentials: 'include', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ command: `echo ${marker}` }) },
        ] as RequestInit[]) {
          try {
            const r = await fetch(`${origin}/api/machines/local/executions`, init);
            tries.push(`status ${r.status}`);
          } catch (e) {
            tries.push(`blocked ${(e as Error).name}`);
          }
        }
        try {
          const r = await fetch(`${origin}/api/executions`, { credentials: 'include' });
          tries.push(`read ${r.status}`);
        } catch (e) {
          tries.push(`read blocked ${(e as Error).name}`);
        }
        return tries;
      },
      { origin: login.origin, marker },
    );
    await foreign.close();
    expect(outcome.some((t) => t.startsWith('status 200') || t === 'read 200')).toBe(false);
    const list = await page.evaluate(async (q) => (await (await fetch(`/api/executions?q=${q}`)).json()) as { items: unknown[] }, marker);
    expect(list.items).toEqual([]);
  });
});
