// The dashboard's refusals, over real HTTP: every endpoint without the session cookie, with a
// foreign Origin, with a foreign Host (DNS rebinding), a cross-site fetch; mutations without a
// same-origin Origin or without a JSON body; the login token working once; bad input answered
// with an error while the server stays up.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '@tether/core';
import processPlugin from '@tether/plugin-process';
import { CSP, startDashboard, type Dashboard } from '../src/index.js';
import { localDirectory } from './localDirectory.js';

let kernel: Kernel;
let dashboard: Dashboard;
let cookie: string;
let execId: string;
/** Ignores INT, so the signal route can be called before the cancel route ends it. */
let runningId: string;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw HTTP request (fetch would not let the test set Host or Origin freely). */
function send(method: string, path: string, headers: Record<string, string> = {}, body?: string, to: Dashboard = dashboard): Promise<Answer> {
  const url = new URL(to.origin);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, headers: { host: url.host, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  kernel = await createKernel({ plugins: [processPlugin] });
  dashboard = await startDashboard({ machines: localDirectory({ local: kernel.machine('local') }), port: 0 });
  const state = await kernel.machine('local').exec.start({ command: 'echo hi' });
  execId = state.id;
  await kernel.machine('local').exec.wait(execId);
  runningId = (await kernel.machine('local').exec.start({ command: "trap '' INT; sleep 600" })).id;
  const login = await send('GET', new URL(dashboard.loginUrl).pathname + new URL(dashboard.loginUrl).search);
  expect(login.status).toBe(303);
  const setCookie = String(login.headers['set-cookie']);
  expect(setCookie).toMatch(/HttpOnly/);
  expect(setCookie).toMatch(/SameSite=Strict/);
  cookie = setCookie.split(';')[0]!;
});
afterAll(async () => {
  await dashboard?.close();
  await kernel?.close();
});

/** Every route the dashboard serves, with a request that succeeds given the cookie. */
function routes(): Array<{ method: string; path: string; body?: string; ok?: number }> {
  const m = '/api/machines/local';
  return [
    { method: 'GET', path: '/' },
    { method: 'GET', path: '/favicon.ico', ok: 204 },
    { method: 'GET', path: '/assets/app.js' },
    { method: 'GET', path: '/assets/app.css' },
    { method: 'GET', path: '/api/machines' },
    { method: 'GET', path: `${m}/status` },
    { method: 'GET', path: '/api/executions' },
    { method: 'GET', path: `${m}/executions/${execId}` },
    { method: 'GET', path: `${m}/executions/${execId}/tail` },
    { method: 'GET', path: `${m}/executions/${execId}/events` },
    { method: 'GET', path: `${m}/executions/${execId}/download` },
    { method: 'GET', path: `${m}/gpu` },
    { method: 'POST', path: `${m}/executions`, body: JSON.stringify({ command: 'true' }) },
    { method: 'POST', path: `${m}/executions/${runningId}/signal`, body: JSON.stringify({ signal: 'INT' }) },
    { method: 'POST', path: `${m}/executions/${runningId}/cancel`, body: '{}' },
  ];
}

describe('the dashboard refuses', () => {
  it('every endpoint without the session cookie (401), and with a wrong one', async () => {
    for (const r of routes()) {
      const json = r.method === 'POST' ? { 'content-type': 'application/json', origin: dashboard.origin } : {};
      expect((await send(r.method, r.path, json, r.body)).status, `${r.method} ${r.path}`).toBe(401);
      expect((await send(r.method, r.path, { ...json, cookie: `tether_dashboard_${new URL(dashboard.origin).port}=forged` }, r.body)).status, `${r.method} ${r.path}`).toBe(401);
    }
  });

  it('every endpoint with a foreign Origin (403), even with the cookie', async () => {
    for (const r of routes()) {
      const answer = await send(r.method, r.path, { cookie, origin: 'http://evil.example', 'content-type': 'application/json' }, r.body);
      expect(answer.status, `${r.method} ${r.path}`).toBe(403);
    }
  });

  it('every endpoint with a foreign Host (421): DNS rebinding', async () => {
    for (const r of routes()) {
      const answer = await send(r.method, r.path, { cookie, host: `evil.example:${new URL(dashboard.origin).port}`, 'content-type': 'application/json', origin: `http://evil.example:${new URL(dashboard.origin).port}` }, r.body);
      expect(answer.status, `${r.method} ${r.path}`).toBe(421);
    }
  });

  it('cross-site fetches (Sec-Fetch-Site) with the cookie', async () => {
    for (const r of routes()) {
      const answer = await send(r.method, r.path, { cookie, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors', 'content-type': 'application/json' }, r.body);
      expect(answer.status, `${r.method} ${r.path}`).toBe(403);
    }
  });

  it('a mutation with the cookie but no Origin, or no JSON body', async () => {
    const m = `/api/machines/local/executions`;
    expect((await send('POST', m, { cookie, 'content-type': 'application/json' }, JSON.stringify({ command: 'true' }))).status).toBe(403);
    expect((await send('POST', m, { cookie, origin: dashboard.origin, 'content-type': 'text/plain' }, JSON.stringify({ command: 'true' }))).status).toBe(415);
    expect((await send('POST', m, { cookie, origin: dashboard.origin, 'content-type': 'application/x-www-form-urlencoded' }, 'command=true')).status).toBe(415);
  });

  it('a second use of the login token, and a wrong token', async () => {
    const url = new URL(dashboard.loginUrl);
    expect((await send('GET', url.pathname + url.search)).status).toBe(403);
    expect((await send('GET', '/login?token=wrong')).status).toBe(403);
    expect((await send('GET', '/login')).status).toBe(403);
  });
});

describe('two dashboards on one host', () => {
  it('keep their sessions apart: a cookie per port, neither signs the other out', async () => {
    const other = await startDashboard({ machines: localDirectory({ local: kernel.machine('local') }), port: 0 });
    try {
      const url = new URL(other.loginUrl);
      const login = await send('GET', url.pathname + url.search, {}, undefined, other);
      const otherCookie = String(login.headers['set-cookie']).split(';')[0]!;
      expect(otherCookie.split('=')[0]).not.toBe(cookie.split('=')[0]);
      // A browser sends both (cookies are per host, not per port): each dashboard takes its own.
      const both = `${cookie}; ${otherCookie}`;
      expect((await send('GET', '/api/machines', { cookie: both })).status).toBe(200);
      expect((await send('GET', '/api/machines', { cookie: both }, undefined, other)).status).toBe(200);
      // One's session is no key to the other, even under the other's name.
      expect((await send('GET', '/api/machines', { cookie: otherCookie })).status).toBe(401);
      const renamed = `${cookie.split('=')[0]}=${otherCookie.split('=')[1]}`;
      expect((await send('GET', '/api/machines', { cookie: renamed })).status).toBe(401);
    } finally {
      await other.close();
    }
  });
});

describe('the dashboard with the cookie', () => {
  it('answers every route, each with the strict CSP and no sniffing', async () => {
    for (const r of routes()) {
      const answer = await send(r.method, r.path, r.method === 'POST' ? { cookie, origin: dashboard.origin, 'content-type': 'application/json' } : { cookie }, r.body);
      expect(answer.status, `${r.method} ${r.path}: ${answer.body.slice(0, 200)}`).toBe(r.ok ?? 200);
      expect(answer.headers['content-security-policy']).toBe(CSP);
      expect(answer.headers['content-security-policy']).not.toMatch(/unsafe-inline|unsafe-eval/);
      expect(answer.headers['x-content-type-options']).toBe('nosniff');
    }
  });

  it('the page has no inline script', async () => {
    const page = await send('GET', '/', { cookie });
    expect(page.body).toMatch(/<script type="module" src="\/assets\/app.js"><\/script>/);
    expect(page.body.replace(/<script [^>]*src="[^"]+"><\/script>/g, '')).not.toMatch(/<script|\son\w+=/i);
  });

  it('bad input gets a JSON error and the server stays up', async () => {
    const post = (path: string, body: string) => send('POST', path, { cookie, origin: dashboard.origin, 'content-type': 'application/json' }, body);
    const bad = [
      await post('/api/machines/local/executions', '{not json'),
      await post('/api/machines/local/executions', JSON.stringify({ command: '' })),
      await post('/api/machines/local/executions', JSON.stringify({ command: 'a\0b' })),
      await post(`/api/machines/local/executions/${execId}/signal`, JSON.stringify({ signal: 'INT; rm -rf /' })),
      await send('GET', '/api/machines/local/executions/..%2F..%2Fetc', { cookie }),
      await send('GET', '/api/executions?cursor=garbage', { cookie }),
      await send('GET', '/api/executions?limit=-4', { cookie }),
      await send('GET', '/api/executions?status=sleeping', { cookie }),
    ];
    for (const answer of bad) {
      expect(answer.status, answer.body).toBe(400);
      expect(JSON.parse(answer.body).error.code).toBe('INVALID_ARGUMENT');
    }
    const unknown = await send('GET', '/api/machines/nope/executions/abc', { cookie });
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body).error.code).toBe('UNKNOWN_MACHINE');
    const missing = await send('GET', '/api/machines/local/executions/nosuchexec', { cookie });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error.code).toBe('EXEC_NOT_FOUND');
    expect((await send('GET', '/api/machines', { cookie })).status).toBe(200);
  });
});
