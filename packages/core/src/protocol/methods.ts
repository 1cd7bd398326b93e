import { z } from 'zod';
import { ExecutionId, GpuGateOptions, OutputStream } from '../events.js';

// The daemon's method table: every method with the schema of its params. Results are described
// by the MachineApi types they mirror; the server validates params, the client trusts results
// only after the hello's protocol version matched.

/** Bumped on any incompatible change of the method table or the framing. */
export const PROTOCOL_VERSION = 1;

/** Bytes in JSON: base64 text. */
export const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');

const Id = z.object({ id: ExecutionId });
const Path = z.string().min(1).max(4096);
const Seq = z.number().int().min(0);
const Ms = z.number().int().min(0).max(24 * 3600 * 1000);

const WriteOptions = z.object({
  mode: z.number().int().min(0).max(0o7777).optional(),
  mkdir: z.boolean().optional(),
  overwrite: z.boolean().optional(),
});

export const methods = {
  'daemon/hello': z.object({ client: z.object({ name: z.string().max(100), version: z.string().max(50) }).optional() }),
  'daemon/health': z.object({}),
  // exec/start params are validated by the machine itself (ExecutionSpec), here only their shape.
  'exec/start': z.record(z.string(), z.unknown()),
  'exec/get': Id,
  'exec/list': z.object({
    status: z.enum(['queued', 'running', 'finished']).optional(),
    limit: z.number().int().min(1).max(1000).optional(),
    cursor: z.string().max(1000).optional(),
  }),
  'exec/read': Id.extend({
    afterSeq: Seq.optional(),
    limit: z.number().int().min(1).max(10_000).optional(),
    maxBytes: z.number().int().min(1).max(64 * 1024 * 1024).optional(),
    waitMs: Ms.max(60_000).optional(),
  }),
  'exec/follow': Id.extend({ afterSeq: Seq.optional() }),
  'exec/unfollow': z.object({ subscription: z.string().max(100) }),
  'exec/logs': Id.extend({
    streams: z.array(OutputStream).min(1).max(3).optional(),
    tailBytes: z.number().int().min(0).max(64 * 1024 * 1024).optional(),
    tailLines: z.number().int().min(0).max(1_000_000).optional(),
    afterSeq: Seq.optional(),
    beforeSeq: Seq.optional(),
    since: z.number().optional(),
    until: z.number().optional(),
    maxLines: z.number().int().min(1).max(1_000_000).optional(),
    maxLineBytes: z.number().int().min(1).max(16 * 1024 * 1024).optional(),
  }),
  'exec/write': Id.extend({ data: Base64, writeId: z.string().min(1).max(128).optional(), eof: z.boolean().optional() }),
  'exec/closeStdin': Id,
  'exec/signal': Id.extend({ signal: z.string().min(1).max(20) }),
  'exec/cancel': Id.extend({ graceMs: Ms.optional(), signal: z.string().min(1).max(20).optional() }),
  'exec/resize': Id.extend({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }),
  'fs/stat': z.object({ path: Path }),
  'fs/list': z.object({ path: Path }),
  'fs/read': z.object({ path: Path, offset: z.number().int().min(0).optional(), length: z.number().int().min(0).optional() }),
  'fs/write': z.object({ path: Path, data: Base64 }).extend(WriteOptions.shape),
  'fs/beginWrite': z.object({ path: Path }).extend(WriteOptions.shape),
  'fs/writeChunk': z.object({ uploadId: z.string().min(1).max(200), offset: z.number().int().min(0), data: Base64 }),
  'fs/commitWrite': z.object({ uploadId: z.string().min(1).max(200) }),
  'fs/abortWrite': z.object({ uploadId: z.string().min(1).max(200) }),
  'fs/mkdir': z.object({ path: Path, recursive: z.boolean().optional(), mode: z.number().int().min(0).max(0o7777).optional() }),
  'fs/remove': z.object({ path: Path, recursive: z.boolean().optional() }),
  'fs/move': z.object({ from: Path, to: Path, overwrite: z.boolean().optional() }),
  'fs/symlink': z.object({ target: Path, path: Path }),
  'gpu/probe': z.object({}),
  'gpu/waitFree': z.object({ gate: GpuGateOptions.partial().optional() }),
} as const;

export type MethodName = keyof typeof methods;
export type MethodParams<M extends MethodName> = z.input<(typeof methods)[M]>;

/** Methods that only read, or whose repetition is a no-op: a client may send them again. */
const REPEATABLE: ReadonlySet<MethodName> = new Set<MethodName>([
  'daemon/hello',
  'daemon/health',
  'exec/get',
  'exec/list',
  'exec/read',
  'exec/logs',
  'exec/follow',
  'exec/unfollow',
  'fs/stat',
  'fs/list',
  'fs/read',
  // A chunk repeated at an offset already received is a no-op (see FileSystemBackend.writeChunk).
  'fs/writeChunk',
  'gpu/probe',
  'gpu/waitFree',
]);

/**
 * Whether a client may send a call again after the connection dropped before its reply came:
 * reads, and the two mutations made idempotent by a client-chosen id (`exec/start` with `id`,
 * `exec/write` with `writeId`). Any other mutation whose reply is lost fails with `OUTCOME_UNKNOWN`.
 */
export function isRetrySafe(method: MethodName, params: unknown): boolean {
  if (REPEATABLE.has(method)) return true;
  const given = (key: string) => typeof (params as Record<string, unknown> | null)?.[key] === 'string';
  return (method === 'exec/start' && given('id')) || (method === 'exec/write' && given('writeId'));
}

/** Notifications the server sends. */
export const NOTIFICATIONS = {
  /** `{ subscription, error? }`: a follow ended (after the terminal event, or with an error). */
  followEnd: 'exec/followEnd',
} as const;
