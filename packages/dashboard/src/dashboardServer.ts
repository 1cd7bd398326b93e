import { readFileSync } from 'node:fs';
import { TextDecoder } from 'node:util';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { ExecutionId, isTetherError, type MachineApi, type StoredEvent } from '@tether/core';
import { BadCursor, listExecutions, rowOf } from './executionList.js';
import type { MachineDirectory } from './machineDirectory.js';
import { Session, allowedHosts, cookieName, guard, securityHeaders } from './security.js';

export interface DashboardOptions {
  readonly machines: MachineDirectory;
  /** Address to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default 8787. */
  readonly port?: number;
  /** Where the built page is (app.js, app.css). Default: this package's `dist/public`. */
  readonly assetsDir?: string;
}

export interface Dashboard {
  /** The dashboard's address, e.g. `http://127.0.0.1:8787`. */
  readonly origin: string;
  /** The one-time login URL (carries the launch's token): open it in a browser. */
  readonly loginUrl: string;
  close(): Promise<void>;
}

/** Lines of a log's tail sent when an execution page opens. */
const TAIL_LINES = 2000;
/** Longest piece of one line sent to the page; the rest is counted (download has every byte). */
const MAX_LINE_CHARS = 64 * 1024;
/** Bytes of output per live-log message batch read from the machine. */
const READ_BYTES = 1024 * 1024;
/** How long one long-poll read of the live log waits on the machine. */
const POLL_MS = 10_000;

const MachineName = z.string().min(1).max(128);
const StatusParam = z.enum(['queued', 'running', 'finished']).optional();
const StartBody = z.object({
  command: z.string().min(1).max(100_000).refine((s) => !s.includes('\0'), 'must not contain a NUL byte'),
  cwd: z.string().min(1).max(4096).optional(),
});
const SignalBody = z.object({ signal: z.string().regex(/^(SIG)?[A-Z0-9+-]{1,16}$/, 'a signal name such as INT, TERM or KILL') });
const StreamParam = z.enum(['stdout', 'stderr', 'pty', 'all']).default('all');

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tether dashboard</title>
<link rel="stylesheet" href="/assets/app.css">
<script type="module" src="/assets/app.js"></script>
</head>
<body><div id="app"></div></body>
</html>
`;

class HttpError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 500 | 502 | 504,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Starts the dashboard's web server. Everything it shows comes from the machines the directory
 * opens; it keeps no state of its own but the launch's session.
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const host = options.host ?? '127.0.0.1';
  const assetsDir = options.assetsDir ?? new URL('../dist/public/', import.meta.url).pathname;
  const assets = new Map<string, { body: Buffer; type: string }>();
  for (const [file, type] of [
    ['app.js', 'text/javascript; charset=utf-8'],
    ['app.css', 'text/css; charset=utf-8'],
  ] as const) {
    assets.set(file, { body: readFileSync(`${assetsDir}/${file}`), type });
  }
  const session = new Session();
  const directory = options.machines;
  const shutdown = new AbortController();
  let hosts = new Set<string>();
  let cookie = '';

  const app = new Hono();
  app.use('*', securityHeaders);
  app.use('*', (c, next) => guard(session, hosts, cookie)(c, next));

  app.get('/', (c) => {
    c.header('cache-control', 'no-store');
    return c.html(PAGE);
  });
  // Browsers ask for it by themselves; there is none.
  app.get('/favicon.ico', (c) => c.body(null, 204));
  app.get('/assets/:file', (c) => {
    const asset = assets.get(c.req.param('file'));
    if (!asset) return c.json({ error: { code: 'NOT_FOUND', message: 'no such asset' } }, 404);
    return c.body(new Uint8Array(asset.body), 200, { 'content-type': asset.type, 'cache-control': 'no-cache' });
  });

  const machine = async (c: Context): Promise<{ name: string; api: MachineApi }> => {
    const name = parse(MachineName, c.req.param('machine'), 'machine');
    try {
      return { name, api: await directory.open(name) };
    } catch (error) {
      throw failure(error, directory, name);
    }
  };
  const call = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      throw failure(error, directory, name);
    }
  };

  app.get('/api/machines', async (c) => c.json({ machines: await directory.names() }));

  app.get('/api/machines/:machine/status', async (c) => {
    const name = parse(MachineName, c.req.param('machine'), 'machine');
    if (!(await directory.names()).includes(name)) throw new HttpError(404, 'UNKNOWN_MACHINE', `unknown machine: ${name}`);
    const check = await directory.check(name);
    let gpu: unknown = null;
    if (check.daemon_ok) {
      const api = await directory.open(name).catch(() => undefined);
      const probe = await api?.gpu.probe().catch(() => undefined);
      if (probe) gpu = { available: probe.available, reason: probe.reason ?? null, count: probe.gpus.length, gpus: probe.gpus, processes: probe.processes.length };
    }
    return c.json({ ...check, gpu });
  });

  app.get('/api/executions', async (c) => {
    const which = c.req.query('machine');
    const names = which && which !== '*' ? [parse(MachineName, which, 'machine')] : await directory.names();
    const known = await directory.names();
    for (const name of names) if (!known.includes(name)) throw new HttpError(404, 'UNKNOWN_MACHINE', `unknown machine: ${name}`);
    const opened: Array<{ name: string; api: MachineApi }> = [];
    const errors: Array<{ machine: string; message: string }> = [];
    await Promise.all(
      names.map(async (name) => {
        try {
          opened.push({ name, api: await directory.open(name) });
        } catch (error) {
          directory.failed?.(name);
          errors.push({ machine: name, message: error instanceof Error ? error.message : String(error) });
        }
      }),
    );
    opened.sort((a, b) => names.indexOf(a.name) - names.indexOf(b.name));
    const status = parse(StatusParam, c.req.query('status') || undefined, 'status');
    const limit = parse(z.coerce.number().int().min(1).max(500).default(50), c.req.query('limit') || undefined, 'limit');
    const text = parse(z.string().max(1000).optional(), c.req.query('q') || undefined, 'q');
    const cursor = parse(z.string().max(100_000).optional(), c.req.query('cursor') || undefined, 'cursor');
    try {
      const page = await listExecutions(opened, { status, text, limit, cursor });
      return c.json({ ...page, errors: [...errors, ...page.errors] });
    } catch (error) {
      if (error instanceof BadCursor) throw new HttpError(400, 'INVALID_ARGUMENT', error.message);
      throw error;
    }
  });

  app.post('/api/machines/:machine/executions', async (c) => {
    const { name, api } = await machine(c);
    const body = parse(StartBody, await c.req.json().catch(() => undefined), 'body');
    const state = await call(name, () => api.exec.start({ command: body.command, ...(body.cwd ? { cwd: body.cwd } : {}) }));
    return c.json({ machine: name, id: state.id, state: rowOf(name, state) });
  });

  app.get('/api/machines/:machine/executions/:id', async (c) => {
    const { name, api } = await machine(c);
    const id = parse(ExecutionId, c.req.param('id'), 'id');
    const state = await call(name, () => api.exec.get(id));
    return c.json({ machine: name, row: rowOf(name, state), state });
  });

  app.get('/api/machines/:machine/executions/:id/tail', async (c) => {
    const { name, api } = await machine(c);
    const id = parse(ExecutionId, c.req.param('id'), 'id');
    const lines = parse(z.coerce.number().int().min(1).max(10_000).default(TAIL_LINES), c.req.query('lines') || undefined, 'lines');
    const logs = await call(name, () => api.exec.logs(id, { streams: ['stdout', 'stderr', 'pty'], tailLines: lines, maxLines: lines }));
    return c.json({
      lastSeq: logs.lastSeq,
      // `start: false`: the machine kept only the end of a line too long to return whole.
      lines: logs.lines.map((l) => ({
        s: l.stream,
        q: l.seq,
        ...(l.line.length > MAX_LINE_CHARS ? { t: l.line.slice(0, MAX_LINE_CHARS), cut: l.line.length - MAX_LINE_CHARS } : { t: l.line }),
        ...(l.cut ? { start: false } : {}),
      })),
    });
  });

  // The live log: events after a durable cursor (`after`, or the browser's Last-Event-ID on a
  // reconnect), read from the machine in pages (a long poll when caught up), so a slow page
  // slows the reads instead of filling a buffer. Output goes as text decoded per stream (a
  // character split across events is kept whole); the page inserts it as text nodes.
  app.get('/api/machines/:machine/executions/:id/events', async (c) => {
    const { name, api } = await machine(c);
    const id = parse(ExecutionId, c.req.param('id'), 'id');
    const after = parse(z.coerce.number().int().min(0).default(0), c.req.query('after') || undefined, 'after');
    const resumed = Number.parseInt(c.req.header('last-event-id') ?? '', 10);
    let seq = Number.isSafeInteger(resumed) && resumed > after ? resumed : after;
    await call(name, () => api.exec.get(id));
    return streamSSE(c, async (stream) => {
      const decoders = new Map<string, TextDecoder>();
      const stop = new AbortController();
      stream.onAbort(() => stop.abort());
      shutdown.signal.addEventListener('abort', () => stop.abort(), { once: true });
      while (!stop.signal.aborted) {
        let page;
        try {
          page = await api.exec.read(id, { afterSeq: seq, maxBytes: READ_BYTES, limit: 5000, waitMs: POLL_MS });
        } catch (error) {
          if (!stop.signal.aborted) await stream.writeSSE({ event: 'failure', data: JSON.stringify({ message: error instanceof Error ? error.message : String(error) }) });
          directory.failed?.(name);
          return;
        }
        const output: Array<{ s: string; t: string }> = [];
        let changed = false;
        for (const event of page.events) {
          if (event.type === 'OutputProduced') {
            let decoder = decoders.get(event.data.stream);
            if (!decoder) decoders.set(event.data.stream, (decoder = new TextDecoder('utf-8')));
            const text = decoder.decode(event.data.data, { stream: true });
            const last = output.at(-1);
            if (last?.s === event.data.stream) last.t += text;
            else output.push({ s: event.data.stream, t: text });
          } else changed = true;
          seq = event.seq;
        }
        const last = page.events.at(-1);
        if (output.length > 0) await stream.writeSSE({ event: 'output', id: String(seq), data: JSON.stringify(output) });
        if (changed && last) {
          const state = await api.exec.get(id).catch(() => undefined);
          if (state) await stream.writeSSE({ event: 'state', id: String(seq), data: JSON.stringify({ row: rowOf(name, state), state }) });
        }
        if (page.finished && (page.events.length === 0 || isTerminal(last))) {
          await stream.writeSSE({ event: 'end', id: String(seq), data: '{}' });
          return;
        }
      }
    });
  });

  app.get('/api/machines/:machine/executions/:id/download', async (c) => {
    const { name, api } = await machine(c);
    const id = parse(ExecutionId, c.req.param('id'), 'id');
    const which = parse(StreamParam, c.req.query('stream') || undefined, 'stream');
    await call(name, () => api.exec.get(id));
    let seq = 0;
    let done = false;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        for (;;) {
          if (done) return controller.close();
          const page = await api.exec.read(id, { afterSeq: seq, maxBytes: 4 * 1024 * 1024, limit: 10_000 });
          if (page.events.length === 0) {
            done = true;
            continue;
          }
          let wrote = false;
          for (const event of page.events) {
            seq = event.seq;
            if (event.type === 'OutputProduced' && (which === 'all' || event.data.stream === which)) {
              controller.enqueue(event.data.data);
              wrote = true;
            }
          }
          if (seq >= page.lastSeq) done = true;
          if (wrote) return;
        }
      },
    });
    return new Response(body, {
      headers: {
        'content-type': 'application/octet-stream',
        'content-disposition': `attachment; filename="${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${id}${which === 'all' ? '' : `.${which}`}.log"`,
        'cache-control': 'no-store',
      },
    });
  });

  app.post('/api/machines/:machine/executions/:id/cancel', async (c) => {
    const { name, api } = await machine(c);
    const id = parse(ExecutionId, c.req.param('id'), 'id');
    const result = await call(name, () => api.exec.cancel(id));
    return c.json({ cancelled: result.cancelled, reason: result.reason ?? null, row: rowOf(name, result.state) });
  });

  app.post('/api/machines/:machine/executions/:id/signal', async (c) => {
    const { name, api } = await machine(c);
    const id = parse(ExecutionId, c.req.param('id'), 'id');
    const body = parse(SignalBody, await c.req.json().catch(() => undefined), 'body');
    await call(name, () => api.exec.signal(id, body.signal));
    return c.json({ sent: body.signal });
  });

  app.get('/api/machines/:machine/gpu', async (c) => {
    const { name, api } = await machine(c);
    const [probe, queued] = await Promise.all([
      call(name, () => api.gpu.probe()).catch((error: HttpError) => {
        if (error.code !== 'BACKEND_UNAVAILABLE') throw error;
        return { available: false, reason: error.message, gpus: [], processes: [], probedAt: Date.now() };
      }),
      call(name, () => api.exec.list({ status: 'queued', limit: 200 })),
    ]);
    return c.json({ probe, gated: queued.items.filter((s) => s.spec?.gpuGate !== undefined).map((s) => ({ ...rowOf(name, s), gate: s.spec?.gpuGate })) });
  });

  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `no route ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((error, c) => {
    if (error instanceof HttpError) return c.json({ error: { code: error.code, message: error.message } }, error.status);
    const mapped = failure(error, directory, undefined);
    return c.json({ error: { code: mapped.code, message: mapped.message } }, mapped.status);
  });

  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: options.port ?? 8787 }, () => resolve(s));
    s.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  hosts = allowedHosts(host, port);
  cookie = cookieName(port);
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    origin,
    loginUrl: `${origin}/login?token=${session.token}`,
    async close() {
      shutdown.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeAllConnections' in server) server.closeAllConnections();
      });
    },
  };
}

function isTerminal(event: StoredEvent | undefined): boolean {
  return event !== undefined && (event.type === 'ExecutionExited' || event.type === 'ExecutionFailed' || event.type === 'ExecutionLost');
}

function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError(400, 'INVALID_ARGUMENT', `${what}: ${result.error.issues.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`).join('; ')}`);
  return result.data;
}

/** A machine's error as an HTTP answer; a lost connection is reported to the directory. */
function failure(error: unknown, directory: MachineDirectory, name: string | undefined): HttpError {
  if (error instanceof HttpError) return error;
  const code = isTetherError(error) ? error.code : (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') {
    const status = ({ UNKNOWN_MACHINE: 404, EXEC_NOT_FOUND: 404, INVALID_ARGUMENT: 400, EXEC_FINISHED: 409, STDIN_CLOSED: 409, CONNECTION_LOST: 502, UNAUTHORIZED: 502, TIMEOUT: 504 } as Record<string, HttpError['status']>)[code] ?? 500;
    if (name !== undefined && (code === 'CONNECTION_LOST' || code === 'TIMEOUT')) directory.failed?.(name);
    return new HttpError(status, code, error instanceof Error ? error.message : String(error));
  }
  return new HttpError(500, 'INTERNAL', error instanceof Error ? error.message : String(error));
}
