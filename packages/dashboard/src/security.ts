import { randomBytes, timingSafeEqual } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import type { MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';

/**
 * The session cookie's name, one per port: browsers keep cookies per host, not per port, so two
 * dashboards on one host (say 127.0.0.1:8787 and :8788) would otherwise sign each other out.
 */
export function cookieName(port: number): string {
  return `tether_dashboard_${port}`;
}

/**
 * The page's Content-Security-Policy: scripts, styles and connections only from the dashboard
 * itself, no inline script or style element, no plugins, no framing, no form posts elsewhere.
 * (Styles set through the CSSOM by script, as uPlot and preact do, are not inline styles.)
 */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * One launch's secrets: the login token printed in the URL (good for one exchange) and the
 * session secret the exchange hands out as an HttpOnly, SameSite=Strict cookie.
 */
export class Session {
  readonly token = randomBytes(32).toString('base64url');
  readonly #secret = randomBytes(32).toString('base64url');
  #exchanged = false;

  /** Exchanges the login token for the session secret, once; undefined for a wrong or spent token. */
  exchange(token: string | undefined): string | undefined {
    if (this.#exchanged || token === undefined || !equal(token, this.token)) return undefined;
    this.#exchanged = true;
    return this.#secret;
  }

  /** Whether `cookie` is this launch's session secret. */
  valid(cookie: string | undefined): boolean {
    return cookie !== undefined && equal(cookie, this.#secret);
  }
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The `Host` header values the dashboard answers to: its listen address, and for a loopback
 * address the loopback names too. Anything else (a DNS-rebinding name pointing at 127.0.0.1)
 * is refused. A wildcard listen address answers to the machine's own addresses.
 */
export function allowedHosts(host: string, port: number): Set<string> {
  const names = new Set<string>();
  const add = (name: string) => names.add(`${name.includes(':') ? `[${name}]` : name}:${port}`.toLowerCase());
  const bare = host.replace(/^\[|\]$/g, '');
  add(bare);
  if (bare === '0.0.0.0' || bare === '::') {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) add(a.address);
  }
  if (isLoopback(bare) || bare === '0.0.0.0' || bare === '::') {
    add('127.0.0.1');
    add('localhost');
    add('::1');
  }
  return names;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Every request: a known Host, no foreign Origin, no cross-site fetch; then the session cookie
 * (except the one-time login). Mutations also need a same-origin `Origin` header and a JSON body,
 * which a cross-site form cannot send.
 */
export function guard(session: Session, hosts: Set<string>, cookie: string): MiddlewareHandler {
  return async (c, next) => {
    const host = c.req.header('host')?.toLowerCase();
    if (host === undefined || !hosts.has(host)) return refuse(c, 421, 'unknown Host header: open the dashboard at the address it printed');
    const origin = c.req.header('origin');
    const self = `http://${host}`;
    if (origin !== undefined && origin.toLowerCase() !== self) return refuse(c, 403, 'cross-origin request refused');
    const site = c.req.header('sec-fetch-site');
    const navigation = c.req.header('sec-fetch-mode') === 'navigate' && c.req.method === 'GET';
    if (site !== undefined && site !== 'same-origin' && site !== 'none' && !navigation) return refuse(c, 403, 'cross-site request refused');

    const path = c.req.path;
    if (path === '/login' && c.req.method === 'GET') {
      const secret = session.exchange(c.req.query('token'));
      if (secret === undefined) return refuse(c, 403, 'this login link is not valid (it works once): restart tether dashboard for a new one');
      setCookie(c, cookie, secret, { httpOnly: true, sameSite: 'Strict', path: '/' });
      c.header('cache-control', 'no-store');
      return c.redirect('/', 303);
    }
    if (!session.valid(getCookie(c, cookie))) return refuse(c, 401, 'not signed in: open the login URL that tether dashboard printed');
    if (MUTATING.has(c.req.method)) {
      if (origin === undefined) return refuse(c, 403, 'a change needs a same-origin request (Origin header missing)');
      if (!(c.req.header('content-type') ?? '').startsWith('application/json')) return refuse(c, 415, 'a change needs a JSON body');
    }
    await next();
  };
}

/** Security headers on every answer. */
export const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  c.header('content-security-policy', CSP);
  c.header('x-content-type-options', 'nosniff');
  c.header('referrer-policy', 'no-referrer');
  c.header('x-frame-options', 'DENY');
  c.header('cross-origin-opener-policy', 'same-origin');
  c.header('cross-origin-resource-policy', 'same-origin');
};

function refuse(c: Parameters<MiddlewareHandler>[0], status: 401 | 403 | 415 | 421, message: string): Response {
  return c.json({ error: { code: status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', message } }, status);
}
