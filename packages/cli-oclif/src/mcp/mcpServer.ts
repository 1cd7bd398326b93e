import { resolve } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { ExecStartParams, MachineApi } from '@tether/core';
import { CliError, describeError } from '../cliError.js';
import { parseDuration, parseTime } from '../duration.js';
import { entryJson, machinePath, parseMode } from '../fileJson.js';
import { gpuJson, gpuStatusJson } from '../gpuJson.js';
import { backendFromFlags } from '../execFlags.js';
import { checkMachine, statusJson } from '../machineStatus.js';
import { Machines, type MachineContext, type OpenedMachine } from '../machines.js';
import { loadRuntime } from '../runtimeLoader.js';
import type { MonitorEvent } from '../monitor.js';

/** Output an exec_run or file_read returns at most by default (a tool result goes into a model's context). */
const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024;
/** The most any call may ask for. */
const MAX_OUTPUT_BYTES = 1024 * 1024;
/** How long exec_run waits for the command before returning its exec_id (it keeps running). */
const DEFAULT_RUN_WAIT_MS = 60_000;
/** How long exec_watch waits for an actionable event by default, and at most. */
const DEFAULT_WATCH_TIMEOUT_MS = 5 * 60_000;
const MAX_WAIT_MS = 30 * 60_000;
/** The most lines an exec_watch returns. */
const MAX_WATCH_EVENTS = 1000;

const machine = z.string().min(1).max(256).default('local').describe('the machine: local, or a name from the tether config file');
const execId = z.string().min(1).max(128).describe('the execution id (exec_id)');
const duration = (what: string) => z.string().max(32).describe(`${what} (500ms, 10s, 5m)`);
const env = z.record(z.string().regex(/^[^=\0]+$/, 'a variable name without = or NUL'), z.string()).describe('environment variables added to the daemon\'s');
const spec = {
  machine,
  cmd: z.string().min(1).describe('the command: a shell string run with sh -c (or shell)'),
  cwd: z.string().min(1).optional().describe('working directory (default: the MCP server\'s on local, the daemon\'s home elsewhere)'),
  env: env.optional(),
  shell: z.string().min(1).optional().describe('the shell that runs cmd (default sh)'),
  timeout: duration('cancel the command after this long').optional(),
  backend: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,31}$/)
    .optional()
    .describe('the process backend: process (a child process) or slurm (a Slurm batch job; default: the machine\'s default_backend, else slurm when slurm options are given)'),
  slurm: z
    .strictObject({
      partition: z.string().min(1).optional(),
      gres: z.string().min(1).optional().describe('e.g. gpu:2'),
      cpus_per_task: z.number().int().min(1).optional(),
      mem: z.string().min(1).optional().describe('e.g. 4G'),
      nodes: z.union([z.number().int().min(1), z.string().min(1)]).optional(),
      account: z.string().min(1).optional(),
      sbatch_args: z.array(z.string().min(1)).max(64).optional().describe('more sbatch arguments, as they are'),
    })
    .optional()
    .describe('Slurm options (sbatch flags) for the slurm backend'),
};

export interface TetherMcpOptions {
  /** How the CLI reaches machines (config file, the CLI's root for the local daemon…). */
  readonly machines: MachineContext;
  readonly version: string;
}

/**
 * The MCP server of `tether mcp`: the configured machines as tools for a coding agent. Every
 * tool validates its input (zod, through the SDK: a bad input is a tool error, the server stays
 * up) and returns one JSON object as text, the same fields as the CLI prints; a failure is a
 * tool error whose text is the CLI's `{"error":{"code","message","hint"}}`.
 */
export function createTetherMcpServer(options: TetherMcpOptions): { server: McpServer; close(): Promise<void> } {
  const server = new McpServer({ name: 'tether', version: options.version });
  const machines = new Machines(options.machines);
  // Machines stay open for the server's life (a RemoteMachine reconnects by itself); one that failed is opened again next time.
  const opened = new Map<string, Promise<OpenedMachine>>();
  const open = (name: string): Promise<OpenedMachine> => {
    let pending = opened.get(name);
    if (!pending) {
      pending = machines.open(name);
      opened.set(name, pending);
      pending.catch(() => opened.delete(name));
    }
    return pending;
  };

  function tool<S extends z.ZodRawShape>(name: string, description: string, shape: S, run: (input: z.infer<z.ZodObject<S>>, signal: AbortSignal) => Promise<unknown>): void {
    server.registerTool(name, { description, inputSchema: shape }, (async (input: z.infer<z.ZodObject<S>>, extra: { signal: AbortSignal }): Promise<CallToolResult> => {
      try {
        return { content: [{ type: 'text', text: JSON.stringify(await run(input, extra.signal)) }] };
      } catch (error) {
        const machineName = (input as { machine?: string }).machine;
        if (isConnectionLoss(error) && machineName) opened.delete(machineName);
        const { json } = describeError(error, { machine: machineName, command: name });
        return { content: [{ type: 'text', text: JSON.stringify(json) }], isError: true };
      }
    }) as never);
  }

  tool('machine_list', 'Every machine (local first, then the config file\'s) and whether it answers: {"total","daemon_ok","failed","machines":[{"name","transport","ssh_ok","daemon_ok","latency_ms","daemon_version"?,"error"?}]}.', { timeout: duration('per machine').default('8s') }, async (input) => {
    const timeoutMs = parseDuration(input.timeout, 'timeout');
    const checking = new Machines(options.machines);
    try {
      const names = await checking.names();
      const statuses = await Promise.all(names.map((name) => checkMachine(checking, name, timeoutMs)));
      return { total: statuses.length, daemon_ok: statuses.filter((s) => s.daemon_ok).length, failed: statuses.filter((s) => !s.daemon_ok).length, checked_at: new Date().toISOString(), machines: statuses.map(statusJson) };
    } finally {
      await checking.close();
    }
  });

  tool('machine_check', 'Whether one machine answers: {"name","transport","ssh_ok","daemon_ok","latency_ms","checked_at","daemon_version"?,"error"?}.', { machine, timeout: duration('give up after').default('8s') }, async (input) => {
    const checking = new Machines(options.machines);
    try {
      if (input.machine !== 'local') await checking.configured(input.machine);
      return statusJson(await checkMachine(checking, input.machine, parseDuration(input.timeout, 'timeout')));
    } finally {
      await checking.close();
    }
  });

  tool(
    'exec_run',
    'Run a command and wait for it (up to `wait`): {"exec_id","status","end_reason","exit_code","duration_ms","stdout","stderr","stdout_bytes","stderr_bytes","truncated","last_seq"}. stdout/stderr are the last max_output_bytes of each. If it is still running after `wait` it keeps running: follow it with exec_watch or exec_result.',
    { ...spec, wait: duration('how long to wait for it to finish').default('60s'), max_output_bytes: z.number().int().min(0).max(MAX_OUTPUT_BYTES).default(DEFAULT_MAX_OUTPUT_BYTES) },
    async (input, signal) => {
      const { machine: m, name, isLocal, config } = await open(input.machine);
      const waitMs = Math.min(MAX_WAIT_MS, input.wait === undefined ? DEFAULT_RUN_WAIT_MS : parseDuration(input.wait, 'wait'));
      const started = await m.exec.start(startParams(input, isLocal, defaultBackendOf(config)));
      const state = started.status === 'finished' ? started : await waitFor(m, started.id, waitMs, signal);
      const [stdout, stderr] = await Promise.all([
        m.exec.logs(state.id, { streams: ['stdout', 'pty'], tailBytes: input.max_output_bytes }),
        m.exec.logs(state.id, { streams: ['stderr'], tailBytes: input.max_output_bytes }),
      ]);
      const { durationMs } = await loadRuntime();
      const stdoutBytes = state.bytes.stdout + state.bytes.pty;
      const over = state.status === 'finished';
      return {
        exec_id: state.id,
        machine: name,
        status: state.status,
        end_reason: over ? state.endReason : null,
        exit_code: over ? state.exitCode : null,
        ...(state.error ? { error: state.error.message } : {}),
        duration_ms: durationMs(state),
        stdout: text(stdout.lines),
        stderr: text(stderr.lines),
        stdout_bytes: stdoutBytes,
        stderr_bytes: state.bytes.stderr,
        truncated: stdoutBytes > input.max_output_bytes || state.bytes.stderr > input.max_output_bytes,
        last_seq: Math.max(stdout.lastSeq, stderr.lastSeq),
      };
    },
  );

  tool(
    'exec_start',
    'Start a command and return at once: {"exec_id","machine","status"}. It keeps running on the machine; give `id` to make a retry safe.',
    {
      ...spec,
      id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/).optional().describe('a key of your choosing that makes the start idempotent'),
      stdin: z.boolean().default(false).describe('keep stdin open for exec_write'),
      gpu_gate: z.boolean().default(false).describe('queue it until a GPU is free'),
      notify_cmd: z.string().min(1).optional().describe('when it ends, the daemon runs this shell command with the summary JSON on stdin'),
      notify_url: z.string().min(1).optional().describe('when it ends, the daemon POSTs the summary JSON to this http(s) URL (retried)'),
    },
    async (input) => {
      const { machine: m, name, isLocal, config } = await open(input.machine);
      let params: ExecStartParams = { ...startParams(input, isLocal, defaultBackendOf(config)), ...(input.id !== undefined ? { id: input.id } : {}), ...(input.stdin ? { stdin: true } : {}), ...(input.gpu_gate ? { gpuGate: {} } : {}) };
      if (input.notify_cmd !== undefined || input.notify_url !== undefined) {
        params = { ...params, notify: { ...(input.notify_cmd !== undefined ? { command: input.notify_cmd } : {}), ...(input.notify_url !== undefined ? { url: input.notify_url } : {}) } };
      }
      const state = await m.exec.start(params);
      return { exec_id: state.id, machine: name, status: state.status, ...(state.status === 'finished' ? { end_reason: state.endReason, exit_code: state.exitCode, ...(state.error ? { error: state.error.message } : {}) } : {}) };
    },
  );

  tool('exec_result', 'An execution\'s state: {"exec_id","status","end_reason"?,"exit_code"?,"pid","cmd","cwd","started_at","finished_at"?,"duration_ms","stdout_bytes","stderr_bytes","last_seq"}.', { machine, id: execId }, async (input) => {
    const { machine: m, name } = await open(input.machine);
    const state = await m.exec.get(input.id);
    const { resultJson } = await loadRuntime();
    return resultJson(state, name, state.spec?.cwd ? null : (await m.info()).cwd);
  });

  tool(
    'exec_logs',
    'Output lines of an execution, tailed on the machine: {"lines":[{"stream","line","seq"}],"last_seq"}. Default: the last 2000 bytes of stdout.',
    {
      machine,
      id: execId,
      stream: z.enum(['stdout', 'stderr', 'both']).default('stdout'),
      tail_bytes: z.number().int().min(0).max(MAX_OUTPUT_BYTES).optional(),
      tail_lines: z.number().int().min(0).max(10_000).optional(),
      since: z.string().max(64).optional().describe('RFC 3339, or a duration ago (10m)'),
      until: z.string().max(64).optional().describe('RFC 3339, or a duration ago'),
      after_seq: z.number().int().min(0).optional(),
    },
    async (input) => {
      const { machine: m } = await open(input.machine);
      const streams = input.stream === 'both' ? (['stdout', 'stderr', 'pty'] as const) : input.stream === 'stderr' ? (['stderr'] as const) : (['stdout', 'pty'] as const);
      const { lines, lastSeq } = await m.exec.logs(input.id, {
        streams: [...streams],
        ...(input.tail_bytes !== undefined ? { tailBytes: input.tail_bytes } : {}),
        ...(input.tail_lines !== undefined ? { tailLines: input.tail_lines } : {}),
        ...(input.after_seq !== undefined ? { afterSeq: input.after_seq } : {}),
        ...(input.since !== undefined ? { since: parseTime(input.since, 'since') } : {}),
        ...(input.until !== undefined ? { until: parseTime(input.until, 'until') } : {}),
        // Bounded for a model's context even without a tail.
        maxLines: 2000,
      });
      return { lines: lines.map(({ stream, line, seq }) => ({ stream: stream === 'stderr' ? 'stderr' : 'stdout', line, seq })), last_seq: lastSeq };
    },
  );

  tool(
    'exec_watch',
    'Wait for the first actionable event of one or more executions and return: a line matching on_patterns (or until_pattern), no output for `idle`, the end (`until` any|all of them), or `timeout`. Returns {"stop":"pattern|idle|finished|max_events|timeout","events":[…],"summaries":[{"exec_id","status","end_reason","exit_code","duration_ms","last_seq"}],"exit_code"}; pass a summary\'s last_seq as after_seq to continue.',
    {
      machine,
      ids: z.array(execId).min(1).max(100).optional().describe('the executions (or all_running)'),
      all_running: z.boolean().default(false).describe('every running or queued execution of the machine'),
      after_seq: z.number().int().min(0).optional().describe('start after this seq (one id only); default from the start'),
      stream: z.enum(['stdout', 'stderr', 'both']).default('both'),
      on_patterns: z.array(z.string().max(1000)).max(20).default([]).describe('regular expressions: only lines matching one are events'),
      until_pattern: z.string().max(1000).optional().describe('a regular expression: return after a matching line'),
      idle: duration('return with an idle event when a running execution prints nothing for this long').optional(),
      max_events: z.number().int().min(1).max(MAX_WATCH_EVENTS).optional().describe('return after this many lines (default 1 with on_patterns, else 200)'),
      until: z.enum(['any', 'all']).default('all'),
      timeout: duration('return after this long at most').default('5m'),
    },
    async (input, signal) => {
      const { machine: m } = await open(input.machine);
      const { monitor, activeExecutions } = await loadRuntime();
      if (!input.ids && !input.all_running) throw new CliError('INVALID_ARGUMENT', 'give ids or all_running: true', { hint: 'e.g. {"ids":["train-42"],"on_patterns":["Traceback"]}' });
      if (input.after_seq !== undefined && input.ids?.length !== 1) throw new CliError('INVALID_ARGUMENT', 'after_seq needs exactly one id', { hint: 'a cursor belongs to one execution' });
      const events: MonitorEvent[] = [];
      const result = await monitor(m, {
        ids: input.all_running ? await activeExecutions(m) : [...new Set(input.ids)],
        stream: input.stream,
        ...(input.after_seq !== undefined ? { afterSeq: input.after_seq } : {}),
        onPatterns: input.on_patterns.map((p) => pattern(p, 'on_patterns')),
        ...(input.until_pattern !== undefined ? { untilPattern: pattern(input.until_pattern, 'until_pattern') } : {}),
        ...(input.idle !== undefined ? { idleMs: parseDuration(input.idle, 'idle') } : {}),
        maxEvents: input.max_events ?? (input.on_patterns.length > 0 ? 1 : 200),
        timeoutMs: Math.min(MAX_WAIT_MS, input.timeout === undefined ? DEFAULT_WATCH_TIMEOUT_MS : parseDuration(input.timeout, 'timeout')),
        until: input.until,
        signal,
        emit: (event) => {
          if (event.type !== 'summary') events.push(event);
        },
      });
      // With on_patterns and no max_events the watch returns at the first matching line: that is a pattern stop.
      const stop = result.stop === 'max_events' && input.max_events === undefined ? 'pattern' : result.stop;
      return { stop, events, summaries: result.summaries, exit_code: result.exitCode };
    },
  );

  tool('exec_cancel', 'Stop an execution: TERM its process group, KILL after the grace, check nothing is left: {"canceled","reason"?,"exec_id"}.', { machine, id: execId, signal: z.string().max(16).default('TERM'), grace: duration('between TERM and KILL').default('3s') }, async (input) => {
    const { machine: m } = await open(input.machine);
    const result = await m.exec.cancel(input.id, { signal: input.signal, graceMs: parseDuration(input.grace, 'grace') });
    return { canceled: result.cancelled, ...(result.reason !== undefined ? { reason: result.reason } : {}), exec_id: result.state.id };
  });

  tool('exec_write', 'Write to the stdin of an execution started with stdin: true: {"ok","bytes"}.', { machine, id: execId, data: z.string().max(MAX_OUTPUT_BYTES), eof: z.boolean().default(false).describe('close stdin after this') }, async (input) => {
    const { machine: m } = await open(input.machine);
    const { bytes } = await m.exec.write(input.id, input.data, { eof: input.eof });
    return { ok: true, bytes };
  });

  tool(
    'file_read',
    'Read a file on the machine: {"ok","path","size","encoding","content","truncated"} (content as UTF-8 text, or base64 with encoding "base64"; at most max_bytes from offset).',
    { machine, path: z.string().min(1).max(4096), offset: z.number().int().min(0).default(0), max_bytes: z.number().int().min(1).max(MAX_OUTPUT_BYTES).default(256 * 1024), encoding: z.enum(['utf8', 'base64']).default('utf8') },
    async (input) => {
      const { machine: m, isLocal } = await open(input.machine);
      const path = machinePath(input.path, isLocal);
      const chunks: Uint8Array[] = [];
      let got = 0;
      let size = 0;
      let eof = false;
      while (got < input.max_bytes) {
        const page = await m.fs.read(path, { offset: input.offset + got, length: input.max_bytes - got });
        chunks.push(page.data);
        got += page.data.byteLength;
        size = page.size;
        eof = page.eof;
        if (page.eof || page.data.byteLength === 0) break;
      }
      const data = Buffer.concat(chunks);
      return { ok: true, path, size, encoding: input.encoding, content: data.toString(input.encoding), truncated: !eof && input.offset + got < size };
    },
  );

  tool(
    'file_write',
    'Write a file on the machine atomically: {"ok","path","bytes_written"}.',
    { machine, path: z.string().min(1).max(4096), content: z.string().max(16 * 1024 * 1024), encoding: z.enum(['utf8', 'base64']).default('utf8'), mode: z.string().max(8).optional().describe('permission bits of a new file, octal (0644)'), mkdir: z.boolean().default(false) },
    async (input) => {
      const mode = input.mode === undefined ? undefined : parseMode(input.mode);
      if (input.mode !== undefined && mode === undefined) throw new CliError('INVALID_ARGUMENT', `mode: expected octal permission bits like 0644, got "${input.mode}"`);
      const { machine: m, isLocal } = await open(input.machine);
      const path = machinePath(input.path, isLocal);
      const { bytesWritten } = await m.fs.write(path, new Uint8Array(Buffer.from(input.content, input.encoding)), { mkdir: input.mkdir, ...(mode !== undefined ? { mode } : {}) });
      return { ok: true, path, bytes_written: bytesWritten };
    },
  );

  tool('file_list', 'List a directory on the machine: {"ok","path","entries":[{"name","path","type","size","mode","mtime"}]}.', { machine, path: z.string().min(1).max(4096).default('.') }, async (input) => {
    const { machine: m, isLocal } = await open(input.machine);
    const path = machinePath(input.path, isLocal);
    return { ok: true, path, entries: (await m.fs.list(path)).map(entryJson) };
  });

  tool(
    'sync',
    'Copy a directory between the MCP server\'s machine and another, sending only what differs: push (here → machine) or pull (machine → here): {"ok","files","bytes","deleted","skipped"}.',
    { machine, direction: z.enum(['push', 'pull']), src: z.string().min(1).max(4096), dst: z.string().min(1).max(4096), delete: z.boolean().default(false), exclude: z.array(z.string().max(1000)).max(100).default([]) },
    async (input, signal) => {
      const { syncDirectory, loadLocalFileSystem } = await loadRuntime();
      const { machine: m, isLocal } = await open(input.machine);
      const localPath = resolve(input.direction === 'push' ? input.src : input.dst);
      const { localRoot } = await import('../syncCommand.js');
      const LocalFileSystemBackend = await loadLocalFileSystem();
      const here = { fs: new LocalFileSystemBackend({ roots: [await localRoot(localPath, input.direction === 'push')], maxFileBytes: Number.MAX_SAFE_INTEGER }), path: localPath };
      const there = { fs: m.fs, path: machinePath(input.direction === 'push' ? input.dst : input.src, isLocal) };
      const result = await syncDirectory(input.direction === 'push' ? here : there, input.direction === 'push' ? there : here, { delete: input.delete, exclude: input.exclude, compare: 'content', signal });
      return { ok: result.ok, files: result.files, bytes: result.bytes, deleted: result.deleted, skipped: result.skipped };
    },
  );

  tool('gpu_status', 'The machine\'s GPUs: {"available","gpus":[{"index","uuid","name","memory_used_mib","memory_total_mib","utilization_gpu","temperature_c"}],"processes":[…],"probed_at"}.', { machine }, async (input) => {
    const { machine: m } = await open(input.machine);
    return gpuStatusJson(await m.gpu.probe());
  });

  tool(
    'gpu_wait',
    'Wait until a GPU is free (at most max_util % busy, at most max_mem_mib in use, and no compute process with free: true): {"ok","waited_ms","gpus"}; GATE_TIMEOUT after timeout.',
    { machine, free: z.boolean().default(false), max_util: z.number().int().min(0).max(100).default(10), max_mem_mib: z.number().int().min(0).default(1000), timeout: duration('give up after').default('5m') },
    async (input, signal) => {
      const { machine: m } = await open(input.machine);
      const result = await m.gpu.waitFree(
        { maxUtilizationPct: input.max_util, maxMemoryUsedMiB: input.max_mem_mib, requireNoProcesses: input.free, timeoutMs: Math.min(MAX_WAIT_MS, parseDuration(input.timeout, 'timeout')) },
        signal,
      );
      return { ok: true, waited_ms: result.waitedMs, gpus: result.gpus.map(gpuJson) };
    },
  );

  return {
    server,
    async close() {
      await server.close().catch(() => undefined);
      await machines.close();
    },
  };
}

/** A machine's `default_backend` from the config. */
function defaultBackendOf(config: Readonly<Record<string, unknown>> | undefined): string | undefined {
  const value = config?.['default_backend'];
  return typeof value === 'string' ? value : undefined;
}

type SlurmInput = { partition?: string; gres?: string; cpus_per_task?: number; mem?: string; nodes?: number | string; account?: string; sbatch_args?: string[] };

function startParams(
  input: { cmd: string; cwd?: string; env?: Record<string, string>; shell?: string; timeout?: string; backend?: string; slurm?: SlurmInput },
  local: boolean,
  defaultBackend?: string,
): ExecStartParams {
  const cwd = local ? resolve(input.cwd ?? process.cwd()) : input.cwd;
  const s = input.slurm ?? {};
  const { backend, backendOptions } = backendFromFlags(
    {
      backend: input.backend,
      partition: s.partition,
      gres: s.gres,
      'cpus-per-task': s.cpus_per_task,
      mem: s.mem,
      nodes: s.nodes === undefined ? undefined : String(s.nodes),
      account: s.account,
      'sbatch-arg': s.sbatch_args,
    },
    { ...(defaultBackend !== undefined ? { defaultBackend } : {}) },
  );
  return {
    ...(backend !== undefined ? { backend } : {}),
    ...(backendOptions !== undefined ? { backendOptions } : {}),
    command: input.cmd,
    ...(cwd !== undefined ? { cwd } : {}),
    ...(input.env && Object.keys(input.env).length > 0 ? { env: input.env } : {}),
    ...(input.shell !== undefined ? { shell: input.shell } : {}),
    ...(input.timeout !== undefined ? { timeoutMs: parseDuration(input.timeout, 'timeout') } : {}),
  };
}

/** The state once the execution has finished, or after `ms` (or when the call is cancelled); the follow is dropped then. */
async function waitFor(m: MachineApi, id: string, ms: number, signal: AbortSignal) {
  const state = await m.exec.get(id);
  if (state.status === 'finished') return state;
  await new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      queueMicrotask(() => subscription.unsubscribe());
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    const subscription = m.exec.follow(id, state.lastSeq).subscribe({ complete: done, error: (error: unknown) => (clearTimeout(timer), reject(error)) });
  });
  return m.exec.get(id);
}

function text(lines: readonly { line: string }[]): string {
  return lines.map((l) => l.line).join('\n');
}

function pattern(source: string, field: string): RegExp {
  try {
    return new RegExp(source);
  } catch (error) {
    throw new CliError('INVALID_ARGUMENT', `${field}: invalid regular expression: ${(error as Error).message}`, { hint: 'a JavaScript regular expression, e.g. "epoch \\\\d+ done"' });
  }
}

function isConnectionLoss(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === 'CONNECTION_LOST' || code === 'UNAUTHORIZED';
}
