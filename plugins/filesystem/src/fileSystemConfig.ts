import { z } from 'zod';

const MiB = 1024 * 1024;

const RootPath = z
  .string()
  .min(1)
  .refine((p) => !p.includes('\0'), 'must not contain a NUL byte')
  .refine((p) => p.startsWith('/') || p === '~' || p.startsWith('~/'), 'must be an absolute path (or ~, ~/…)');

/**
 * Configuration of the filesystem backend (the `@tether/plugin-filesystem` plugin's config).
 * Strict: an unknown key (`root:` for `roots:`) is an error, not a silent fall-back to defaults.
 *
 * ```yaml
 * roots: [~/work, /scratch]   # every path must end up inside one of these
 * maxReadBytes: 16777216
 * ```
 */
export const FileSystemConfig = z.strictObject({
  /**
   * Directories every path must resolve into (absolute, or `~` / `~/…` for the home directory).
   * Each must exist; they are resolved with realpath once, at construction. Relative paths given
   * to the backend resolve against the first root. Default: the user's home directory, plus
   * `dataDir` when given.
   */
  roots: z.array(RootPath).min(1).optional(),
  /** The daemon's data directory; added to the default roots. */
  dataDir: RootPath.optional(),
  /** Most bytes one `read` returns. Default 16 MiB. */
  maxReadBytes: z.number().int().positive().default(16 * MiB),
  /** Most bytes one `write` or one `writeChunk` accepts. Default 16 MiB. */
  maxWriteBytes: z.number().int().positive().default(16 * MiB),
  /** Largest file a chunked upload may produce. Default 8 GiB. */
  maxFileBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(8 * 1024 * MiB),
  /** An upload with no call for this long is aborted and its temp file removed. Default 15 minutes. */
  uploadTtlMs: z.number().int().positive().default(15 * 60_000),
  /** Most uploads open at once. Default 64 (each holds two file descriptors). */
  maxUploads: z.number().int().positive().default(64),
});
export type FileSystemConfig = z.output<typeof FileSystemConfig>;
export type FileSystemConfigInput = z.input<typeof FileSystemConfig>;
