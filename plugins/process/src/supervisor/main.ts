#!/usr/bin/env node
// The supervisor of one execution: `node supervisor/main.js --dir DIR --id ID`.
//
// Started by the daemon in a session of its own (so the daemon's death, or a signal to the
// daemon's process group, does not reach it), it waits on a Unix socket (mode 0600) for the
// daemon's spawn request, then becomes the command's parent: it holds the pipes or the
// terminal, reaps the command itself, enforces the timeout, writes the exit status to its
// record file, and streams the output to whichever daemon is attached. While none is, output
// goes to a bounded spool file; a daemon that attaches later says how much it has recorded and
// gets the rest, in order. It exits once a daemon has recorded the end (`release`).
//
// It loads only Node's own modules (node-pty and the PTY code when a terminal is asked for), so
// it starts in tens of milliseconds and stays small.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, ftruncateSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findSurvivors, signalGroup, signalPids } from '../processTree.js';
import { writeToStdin } from '../stdinPipe.js';
import { RECORD_VERSION, paths, processStartTime, writeRecord, type ExitInfo, type SupervisorRecord } from './records.js';
import { FrameReader, STREAMS, encodeFrame, writeFrame, type Frame } from './wire.js';

/** Bytes sent to the daemon and not yet recorded by it, before the command's output is paused. */
const WINDOW_BYTES = 8 * 1024 * 1024;
/** Most output bytes in one frame (output that waited for the socket leaves together). */
const FRAME_PAYLOAD_BYTES = 512 * 1024;
const HELLO_TIMEOUT_MS = 5000;
const WRITE_IDS_KEPT = 4096;
const DROP = 3;

interface Item {
  /** Offset of the item's first byte in the execution's output (all streams, in order). */
  readonly off: number;
  /** 0 stdout, 1 stderr, 2 pty, 3 dropped bytes. */
  readonly kind: number;
  readonly data: Buffer;
  /** For a drop: how many bytes. */
  readonly dropped: number;
}
const lengthOf = (item: Item): number => (item.kind === DROP ? item.dropped : item.data.byteLength);

interface SpawnRequest {
  readonly execId: string;
  readonly argv: string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
  readonly tty?: { cols: number; rows: number };
  readonly stdin: boolean;
  readonly timeoutMs?: number;
  readonly killGraceMs?: number;
  readonly spoolLimitBytes: number;
  readonly drainTimeoutMs: number;
}

/** What the supervisor needs of its command, for pipes and a terminal alike. */
interface Command {
  readonly pid: number;
  pause(): void;
  resume(): void;
  write(data: Buffer): Promise<void>;
  closeStdin(): Promise<void>;
  resize(cols: number, rows: number): void;
}

const { values } = parseArgs({ options: { dir: { type: 'string' }, id: { type: 'string' } }, strict: true });
const dir = values.dir!;
const myStartTime = processStartTime(process.pid);
// Our own files (record, spool, socket) are private; the command gets the umask we were started
// with (the daemon starts us with its user's umask, not its own restricted one).
const userUmask = process.umask(0o077);
function withUserUmask<T>(spawnIt: () => T): T {
  const restricted = process.umask(userUmask);
  try {
    return spawnIt();
  } finally {
    process.umask(restricted);
  }
}
// Nothing of the daemon's terminal or session reaches us, and nobody's SIGHUP/SIGINT stops us.
process.on('SIGHUP', () => undefined);
process.on('SIGINT', () => undefined);
process.on('SIGPIPE', () => undefined);
process.stdout.on('error', () => undefined);

let socketPath = join(dir, `w-${values.id}.sock`);
let execId: string | null = null;
let request: SpawnRequest | null = null;
let files: ReturnType<typeof paths> | null = null;
let command: Command | null = null;
let childStartTime: string | null = null;
let conn: Socket | null = null;

// The output, as offsets into the sequence of everything the command wrote.
let produced = 0;
let acked = 0;
let sent = 0;
/** Items not in the spool: sent and unacknowledged, or not yet sent. */
let mem: Item[] = [];
let spool: { fd: number; size: number; dataBytes: number; startOff: number; endOff: number; readPos: number; readOff: number } | null = null;
let pendingDrop = 0;
/** Offset of the first byte of `pendingDrop`. */
let pendingDropOff = 0;
let paused = false;
let outputEnded = false;
let exitInfo: ExitInfo | null = null;
/** The exit is known and so is everything a stop did: it may be reported. */
let exitFinal = false;
let exitSentTo: Socket | null = null;
const stops: Array<{ signal: string; reason: 'timeout' | 'cancel' }> = [];
let survivorsLeft: number[] = [];
let stopping: Promise<void> | null = null;
const writeIds = new Map<string, Promise<number>>();
let cancelTimeout: () => void = () => undefined;

// The directory (and in it our record) is how a daemon finds us. Once it is gone (the state dir
// was removed) nobody can ever attach again: end the command, if it still runs, and leave.
const ORPHAN_CHECK_MS = 5000;
setInterval(() => {
  const gone = !existsSync(dir) || (files !== null && !existsSync(files.record));
  if (!gone) return;
  if (command && !exitInfo) safely(() => signalGroup(command!.pid, 'SIGKILL'));
  cleanupAndExit();
}, ORPHAN_CHECK_MS).unref();

const server = createServer((socket) => accept(socket));
server.listen(socketPath, () => {
  chmodSync(socketPath, 0o600);
  process.stdout.write(`${JSON.stringify({ pid: process.pid, startTime: myStartTime, socket: socketPath })}\n`);
});
server.on('error', (error) => fatal(`cannot listen on ${socketPath}: ${error.message}`));
// Until it is given an execution, the supervisor lives only as long as the daemon that started it.
process.stdin.on('data', () => undefined);
process.stdin.on('end', () => exitIfIdle());
process.stdin.on('error', () => exitIfIdle());

function exitIfIdle(): void {
  if (execId === null) cleanupAndExit();
}

function fatal(message: string): never {
  process.stderr.write(`${message}\n`);
  cleanupAndExit(1);
}

function cleanupAndExit(code = 0): never {
  for (const path of [socketPath, files?.spool, files?.record]) {
    if (path) {
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    }
  }
  process.exit(code);
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

function accept(socket: Socket): void {
  const reader = new FrameReader();
  let greeted = false;
  const helloTimer = setTimeout(() => socket.destroy(), HELLO_TIMEOUT_MS);
  socket.on('data', (data) => {
    let frames: Frame[];
    try {
      frames = reader.push(data);
    } catch {
      socket.destroy();
      return;
    }
    for (const frame of frames) {
      if (!greeted) {
        if (frame.header.t !== 'hello') return void socket.destroy();
        greeted = true;
        clearTimeout(helloTimer);
        hello(socket, frame);
        continue;
      }
      if (socket !== conn) return void socket.destroy();
      handle(socket, frame);
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    clearTimeout(helloTimer);
    if (socket !== conn) return;
    // The daemon that started an idle supervisor went away before giving it anything to run.
    if (execId === null) cleanupAndExit();
    detached();
  });
}

function hello(socket: Socket, frame: Frame): void {
  const expected = frame.header['execId'];
  if (typeof expected === 'string' && expected !== execId) {
    socket.end(encodeFrame({ t: 'refused', reason: `this supervisor runs ${execId ?? 'nothing'}, not ${expected}` }));
    return;
  }
  // A newer daemon takes over from one that has not noticed it is gone.
  if (conn && conn !== socket) {
    const old = conn;
    conn = null;
    old.destroy();
    detached();
  }
  conn = socket;
  socket.write(
    encodeFrame({
      t: 'hello',
      pid: process.pid,
      startTime: myStartTime,
      execId,
      child: command ? { pid: command.pid, startTime: childStartTime } : null,
      produced,
      exited: exitInfo !== null,
    }),
    flush,
  );
  if (execId !== null) attached(Number(frame.header['resumeFrom'] ?? 0));
}

function handle(socket: Socket, frame: Frame): void {
  const h = frame.header;
  switch (h.t) {
    case 'spawn':
      if (execId !== null) return void socket.write(encodeFrame({ t: 'spawnFailed', code: 'INTERNAL', message: 'this supervisor already runs an execution' }));
      startCommand(socket, h as unknown as SpawnRequest);
      return;
    case 'ack': {
      const offset = Number(h['offset']);
      if (Number.isFinite(offset) && offset > acked) onAck(Math.min(offset, produced));
      return;
    }
    case 'write':
      void doWrite(socket, h, frame.payload);
      return;
    case 'signal':
      if (command && !exitInfo) safely(() => signalGroup(command!.pid, String(h['signal'])));
      return;
    case 'resize':
      if (command && !exitInfo) safely(() => command!.resize(Number(h['cols']), Number(h['rows'])));
      return;
    case 'release':
      release(h['reuse'] === true);
      return;
    default:
      return;
  }
}

function safely(action: () => void): void {
  try {
    action();
  } catch {
    // a group already gone, a terminal already closed
  }
}

async function doWrite(socket: Socket, h: Frame['header'], payload: Buffer): Promise<void> {
  const reqId = h['reqId'];
  const writeId = typeof h['writeId'] === 'string' ? h['writeId'] : undefined;
  const reply = (body: Record<string, unknown>) => {
    if (!socket.destroyed) socket.write(encodeFrame({ t: 'reply', reqId, ...body }), flush);
  };
  try {
    if (writeId !== undefined) {
      const previous = writeIds.get(writeId);
      if (previous) return reply({ bytes: await previous, duplicate: true });
    }
    if (!command) throw Object.assign(new Error('no command runs yet'), { code: 'INVALID_ARGUMENT' });
    const done = (async () => {
      if (payload.byteLength > 0) await command!.write(Buffer.from(payload));
      if (h['eof'] === true) await command!.closeStdin();
      return payload.byteLength;
    })();
    if (writeId !== undefined) {
      writeIds.set(writeId, done);
      if (writeIds.size > WRITE_IDS_KEPT) writeIds.delete(writeIds.keys().next().value!);
    }
    reply({ bytes: await done, duplicate: false });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    reply({ error: { code: typeof code === 'string' && /^[A-Z_]+$/.test(code) ? code : 'STDIN_CLOSED', message: (error as Error).message } });
  }
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

function startCommand(socket: Socket, spec: SpawnRequest): void {
  execId = spec.execId;
  request = spec;
  files = paths(dir, spec.execId);
  process.stdin.destroy();
  // Found by the execution's name from now on, and recorded before the command starts: a daemon
  // that dies during the spawn leaves its successor a supervisor to find, never an unknown command.
  try {
    renameSync(socketPath, files.socket);
    socketPath = files.socket;
  } catch (error) {
    process.stderr.write(`cannot rename the socket: ${(error as Error).message}\n`);
  }
  saveRecord();
  const fail = (error: unknown) => {
    // A TetherError (from the PTY code) keeps its code; a spawn error's code is an errno.
    const details = (error as { details?: Record<string, unknown> }).details;
    const code = (error as { code?: unknown }).code;
    socket.end(
      encodeFrame({
        t: 'spawnFailed',
        code: details && typeof code === 'string' ? code : 'SPAWN_FAILED',
        errno: details ? details['errno'] : code,
        message: (error as Error).message,
      }),
    );
    // Give the reply time to leave, then go: no record was written.
    setTimeout(() => cleanupAndExit(), 200);
  };
  const started = spec.tty ? startPty(spec) : startPipes(spec);
  started.then(
    (cmd) => {
      command = cmd;
      childStartTime = processStartTime(cmd.pid);
      socket.write(encodeFrame({ t: 'spawned', pid: cmd.pid, pgid: cmd.pid }), flush);
      saveRecord();
      if (spec.timeoutMs !== undefined) cancelTimeout = afterMs(spec.timeoutMs, () => void stop('timeout', spec.killGraceMs ?? 3000));
      flush();
    },
    (error) => fail(error),
  );
}

/**
 * Writes the record (atomically: temp file and rename). Durable (fsync) when asked: the record
 * only has to outlive processes, which the page cache does; after a reboot nothing it names runs.
 */
function saveRecord(durable = false): void {
  const record: SupervisorRecord = {
    version: RECORD_VERSION,
    execId: execId!,
    supervisor: { pid: process.pid, startTime: myStartTime ?? '' },
    child: command ? { pid: command.pid, startTime: childStartTime } : null,
    socket: socketPath,
    ...(exitInfo ? { exit: exitInfo } : {}),
  };
  writeRecord(files!.record, record, durable);
}

function startPipes(spec: SpawnRequest): Promise<Command> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = withUserUmask(() =>
        spawn(spec.argv[0]!, spec.argv.slice(1), { cwd: spec.cwd, env: spec.env, detached: true, stdio: [spec.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] }),
      );
    } catch (error) {
      return reject(error);
    }
    child.once('error', reject);
    child.once('spawn', () => {
      child.off('error', reject);
      child.on('error', () => undefined);
      child.stdin?.on('error', () => undefined);
      const outputs = [child.stdout!, child.stderr!];
      let open = outputs.length;
      outputs.forEach((stream, index) => {
        stream.on('data', (data: Buffer) => onOutput(index, data));
        const ended = () => {
          stream.removeAllListeners('end').removeAllListeners('close');
          if (--open === 0) onOutputEnd();
        };
        stream.on('end', ended);
        stream.on('close', ended);
        stream.on('error', () => undefined);
      });
      child.once('exit', (code, signal) => {
        onExit(code, signal);
        // A descendant that keeps a pipe open (`sleep 100 &`) gets `drainTimeoutMs` of reading.
        const drain = () => {
          if (outputEnded) return;
          if (paused) return void setTimeout(drain, spec.drainTimeoutMs);
          for (const stream of outputs) stream.destroy();
        };
        setTimeout(drain, spec.drainTimeoutMs);
      });
      let stdin = spec.stdin ? child.stdin : null;
      resolve({
        pid: child.pid!,
        pause: () => outputs.forEach((s) => s.pause()),
        resume: () => outputs.forEach((s) => s.resume()),
        write: (data) => {
          if (!stdin || stdin.writableEnded || stdin.destroyed) return Promise.reject(stdinClosed());
          return writeToStdin(stdin, data).catch((error: Error) => Promise.reject(stdinClosed(error.message)));
        },
        closeStdin: () =>
          new Promise((done) => {
            const s = stdin;
            stdin = null;
            // A pipe the command already closed (it exited) is destroyed: end() would never call back.
            if (!s || s.writableEnded || s.destroyed) return done();
            s.once('close', () => done());
            s.end(() => done());
          }),
        resize: () => undefined,
      });
    });
  });
}

function stdinClosed(message = 'stdin is not open for this process'): Error {
  return Object.assign(new Error(message), { code: 'STDIN_CLOSED' });
}

async function startPty(spec: SpawnRequest): Promise<Command> {
  const { spawnPty } = await import('../ptyProcess.js');
  const proc = spawnPty({ id: spec.execId, argv: spec.argv, cwd: spec.cwd, env: spec.env, tty: spec.tty, stdin: spec.stdin }, withUserUmask);
  proc.output$.subscribe({ next: (chunk) => onOutput(2, Buffer.from(chunk.data.buffer, chunk.data.byteOffset, chunk.data.byteLength)), complete: () => onOutputEnd() });
  void proc.exit.then((exit) => onExit(exit.exitCode, exit.signal));
  return {
    pid: proc.pid,
    pause: () => proc.pauseOutput(),
    resume: () => proc.resumeOutput(),
    write: (data) => proc.write(data),
    closeStdin: () => proc.closeStdin(),
    resize: (cols, rows) => proc.resize(cols, rows),
  };
}

function onExit(exitCode: number | null, signal: string | null): void {
  exitInfo = { exitCode, signal, stops, survivors: survivorsLeft, endedAt: Date.now() };
  void (async () => {
    await stopping;
    exitInfo = { exitCode, signal, stops, survivors: survivorsLeft, endedAt: exitInfo!.endedAt };
    exitFinal = true;
    // The attached daemon hears of the exit first; the record keeps it for one that is not (yet)
    // attached, and is made durable (fsync) only then: a daemon attached records it itself.
    flush();
    try {
      saveRecord(conn === null);
    } catch (error) {
      process.stderr.write(`cannot write the exit record: ${(error as Error).message}\n`);
    }
  })();
}

function onOutputEnd(): void {
  outputEnded = true;
  flush();
}

/** TERM the group (the timeout), KILL it and every survivor after the grace. */
function stop(reason: 'timeout' | 'cancel', graceMs: number): Promise<void> {
  if (!command || exitInfo || stopping) return stopping ?? Promise.resolve();
  const pid = command.pid;
  stopping = (async () => {
    stops.push({ signal: 'SIGTERM', reason });
    safely(() => signalGroup(pid, 'SIGTERM'));
    const deadline = Date.now() + graceMs;
    while (!exitInfo && Date.now() < deadline) await delay(Math.min(50, graceMs));
    let left = await findSurvivors(pid, execId!);
    if (!exitInfo || left.length > 0) {
      stops.push({ signal: 'SIGKILL', reason });
      safely(() => signalGroup(pid, 'SIGKILL'));
      safely(() => signalPids(left, 'SIGKILL'));
      for (let i = 0; i < 40 && left.length > 0; i++) {
        await delay(50);
        left = await findSurvivors(pid, execId!);
        safely(() => signalPids(left, 'SIGKILL'));
      }
    }
    survivorsLeft = left;
  })();
  return stopping;
}

/** Longest delay `setTimeout` takes (2^31 - 1 ms); a longer one is chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Runs `action` once `ms` have passed, for any `ms` (a timeout of weeks); returns a cancel. */
function afterMs(ms: number, action: () => void): () => void {
  const deadline = Date.now() + ms;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const left = deadline - Date.now();
    if (left <= 0) return action();
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS)).unref();
  };
  arm();
  return () => clearTimeout(timer);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// Output: straight to the attached daemon, to the spool while none is
// ---------------------------------------------------------------------------------------------

function onOutput(kind: number, data: Buffer): void {
  if (data.byteLength === 0) return;
  const item: Item = { off: produced, kind, data, dropped: 0 };
  produced += data.byteLength;
  if (spool === null && conn) {
    mem.push(item);
    flush();
  } else {
    toSpool(item);
    flush();
  }
  updatePause();
}

function toSpool(item: Item): void {
  const limit = request!.spoolLimitBytes;
  if (item.kind !== DROP && spool && spool.dataBytes + item.data.byteLength > limit && !conn) {
    // Full and nobody to give it to: drop it, and say so in the stream (never silently).
    if (pendingDrop === 0) pendingDropOff = item.off;
    pendingDrop += item.data.byteLength;
    return;
  }
  if (pendingDrop > 0 && item.kind !== DROP) materializeDrop();
  appendToSpool(item);
}

function materializeDrop(): void {
  if (pendingDrop === 0) return;
  const dropped = pendingDrop;
  pendingDrop = 0;
  appendToSpool({ off: pendingDropOff, kind: DROP, data: Buffer.alloc(0), dropped });
}

function appendToSpool(item: Item): void {
  if (!spool) {
    const fd = openSync(files!.spool, 'w+', 0o600);
    spool = { fd, size: 0, dataBytes: 0, startOff: item.off, endOff: item.off, readPos: 0, readOff: item.off };
  }
  const head = Buffer.allocUnsafe(9);
  head.writeUInt8(item.kind, 0);
  if (item.kind === DROP) {
    head.writeUInt32BE(8, 1);
    head.writeUInt32BE(0, 5);
    const body = Buffer.allocUnsafe(8);
    body.writeDoubleBE(item.dropped, 0);
    writeAll(spool.fd, Buffer.concat([head.subarray(0, 5), body]), spool.size);
    spool.size += 13;
  } else {
    head.writeUInt32BE(item.data.byteLength, 1);
    writeAll(spool.fd, Buffer.concat([head.subarray(0, 5), item.data]), spool.size);
    spool.size += 5 + item.data.byteLength;
    spool.dataBytes += item.data.byteLength;
  }
  spool.endOff = item.off + lengthOf(item);
}

function writeAll(fd: number, data: Buffer, position: number): void {
  let done = 0;
  while (done < data.byteLength) done += writeSync(fd, data, done, data.byteLength - done, position + done);
}

/** Reads the spool record at the read position. */
function readSpoolItem(): Item {
  const s = spool!;
  const head = Buffer.allocUnsafe(5);
  readSync(s.fd, head, 0, 5, s.readPos);
  const kind = head.readUInt8(0);
  const length = head.readUInt32BE(1);
  const body = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) got += readSync(s.fd, body, got, length - got, s.readPos + 5 + got);
  s.readPos += 5 + length;
  const item: Item = kind === DROP ? { off: s.readOff, kind, data: Buffer.alloc(0), dropped: body.readDoubleBE(0) } : { off: s.readOff, kind, data: body, dropped: 0 };
  s.readOff += lengthOf(item);
  return item;
}

function detached(): void {
  conn = null;
  exitSentTo = null;
  // What was sent but not recorded goes to the spool first, ahead of anything new.
  const unacked = mem;
  mem = [];
  sent = acked;
  if (spool) {
    spool.readPos = 0;
    spool.readOff = spool.startOff;
  }
  for (const item of unacked) {
    const trimmed = trim(item, acked);
    if (trimmed) appendToSpool(trimmed);
  }
  updatePause();
}

function attached(resumeFrom: number): void {
  if (resumeFrom > acked) onAck(Math.min(resumeFrom, produced));
  sent = acked;
  materializeDrop();
  if (spool) {
    spool.readPos = 0;
    spool.readOff = spool.startOff;
  }
  flush();
  updatePause();
}

/** The part of `item` at or after `offset`, or null if it lies entirely before it. */
function trim(item: Item, offset: number): Item | null {
  const end = item.off + lengthOf(item);
  if (end <= offset) return null;
  if (item.off >= offset) return item;
  if (item.kind === DROP) return { ...item, off: offset, dropped: end - offset };
  return { ...item, off: offset, data: item.data.subarray(offset - item.off) };
}

function onAck(offset: number): void {
  acked = offset;
  while (mem.length > 0 && mem[0]!.off + lengthOf(mem[0]!) <= acked) mem.shift();
  if (spool && acked >= spool.endOff && spool.readOff >= spool.endOff) {
    // Everything spooled is recorded: back to the direct path.
    const { fd } = spool;
    spool = null;
    ftruncateSync(fd, 0);
    closeSync(fd);
    safely(() => unlinkSync(files!.spool));
  }
  flush();
  updatePause();
}

/**
 * Sends what the window allows: the spool first, then the items in memory, then the exit.
 * A frame leaves once the socket has taken the one before it: while the daemon is behind, the
 * output that comes meanwhile waits here and then leaves in one frame (up to `FRAME_PAYLOAD_BYTES`,
 * chunks of one stream in a row), so a busy daemon gets fewer, larger chunks to record. Every
 * frame written to the daemon calls `flush` again once the socket took it.
 */
function flush(): void {
  const socket = conn;
  if (!socket) return;
  while (sent - acked < WINDOW_BYTES && socket.writableLength === 0) {
    const first = nextItem(sent);
    if (!first) break;
    if (first.kind === DROP) {
      socket.write(encodeFrame({ t: 'dropped', off: first.off, bytes: first.dropped, limitBytes: request!.spoolLimitBytes }), flush);
      sent = first.off + first.dropped;
      continue;
    }
    const parts = [first.data];
    let end = first.off + first.data.byteLength;
    while (end - first.off < FRAME_PAYLOAD_BYTES && end - acked < WINDOW_BYTES) {
      const more = nextItem(end, first.kind);
      if (!more) break;
      parts.push(more.data);
      end += more.data.byteLength;
    }
    writeFrame(socket, { t: 'out', off: first.off, s: STREAMS[first.kind] }, parts, flush);
    sent = end;
  }
  if (exitFinal && outputEnded && sent === produced && pendingDrop === 0 && exitSentTo !== socket) {
    exitSentTo = socket;
    socket.write(encodeFrame({ t: 'exit', off: produced, ...exitInfo }));
  }
}

/**
 * The output at offset `at` (the rest of the item that holds it): from the spool while there is
 * one, else from memory. With `kind`, only output of that stream: another item is left where it
 * is (the spool's read position is not moved).
 */
function nextItem(at: number, kind?: number): Item | null {
  if (spool) {
    while (spool.readOff < spool.endOff) {
      const { readPos, readOff } = spool;
      const item = trim(readSpoolItem(), at);
      if (!item) continue;
      if (kind !== undefined && item.kind !== kind) {
        spool.readPos = readPos;
        spool.readOff = readOff;
        return null;
      }
      return item;
    }
    return null;
  }
  const next = mem.find((m) => m.off + lengthOf(m) > at);
  const item = next ? trim(next, at) : null;
  return item && (kind === undefined || item.kind === kind) ? item : null;
}

function updatePause(): void {
  if (!command) return;
  let shouldPause: boolean;
  if (!conn) shouldPause = false; // the spool takes it, or it is dropped and counted
  else if (spool) shouldPause = spool.dataBytes >= request!.spoolLimitBytes;
  else shouldPause = produced - acked >= WINDOW_BYTES;
  if (shouldPause !== paused) {
    paused = shouldPause;
    if (paused) command.pause();
    else command.resume();
  }
}

/**
 * The daemon recorded the end. With `reuse` (and the command fully done) the supervisor forgets
 * the execution and becomes idle again, for the daemon's next spawn: starting a supervisor costs
 * a Node start, reusing one costs nothing. Otherwise it leaves.
 */
function release(reuse: boolean): void {
  // Anything of the command still running is an orphan: end it.
  if (command && !exitInfo) safely(() => signalGroup(command!.pid, 'SIGKILL'));
  if (spool) safely(() => closeSync(spool!.fd));
  if (!reuse || !exitFinal || !outputEnded || !conn) {
    conn?.end();
    cleanupAndExit();
  }
  for (const path of [files?.spool, files?.record]) if (path) safely(() => unlinkSync(path));
  const idlePath = join(dir, `w-${randomBytes(8).toString('hex')}.sock`);
  try {
    renameSync(socketPath, idlePath);
    socketPath = idlePath;
  } catch {
    conn.end();
    cleanupAndExit();
  }
  cancelTimeout();
  cancelTimeout = () => undefined;
  execId = null;
  request = null;
  files = null;
  command = null;
  childStartTime = null;
  produced = 0;
  acked = 0;
  sent = 0;
  mem = [];
  spool = null;
  pendingDrop = 0;
  pendingDropOff = 0;
  paused = false;
  outputEnded = false;
  exitInfo = null;
  exitFinal = false;
  exitSentTo = null;
  stops.length = 0;
  survivorsLeft = [];
  stopping = null;
  writeIds.clear();
  conn.write(encodeFrame({ t: 'idle' }));
}
