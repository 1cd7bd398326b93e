// Helpers shared by this package's tests: a real OpenSSH sshd on loopback, client keys, an
// ssh-agent, temp dirs. Nothing here touches the real ~/.ssh.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import processPlugin from '@tether/plugin-process';
import filesystemPlugin from '@tether/plugin-filesystem';
import type { PluginEntry } from '@tether/core';
import { eventually } from '@tether/core/testing';

const run = promisify(execFile);

/** Who the tests log in as over SSH: whoever runs them (root here; sshd lets a non-root user log in as itself). */
export const USER = userInfo().username;

export const BRIDGE_MAIN = fileURLToPath(new URL('../dist/bridgeMain.js', import.meta.url));

/** The process and filesystem backends, files confined to `root`. */
export function backends(root: string): PluginEntry[] {
  return [processPlugin, { plugin: filesystemPlugin, config: { roots: [root] } }];
}

const dirs: string[] = [];
/** A temp dir, removed by `removeTempDirs`. */
export async function tempDir(prefix = 'tether-ssh-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
export async function removeTempDirs(): Promise<void> {
  // Retried: a supervisor a test left running may still write in its daemon's dir (until it sees
  // the dir gone, and ends its command).
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 })));
}

export { eventually };

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Generates a key pair at `file` / `file.pub` with ssh-keygen; returns the public key line. */
export async function keygen(file: string, options: { passphrase?: string; type?: 'ed25519' | 'rsa' | 'ecdsa' } = {}): Promise<string> {
  await run('ssh-keygen', ['-q', '-t', options.type ?? 'ed25519', '-N', options.passphrase ?? '', '-C', 'tether-test', '-f', file]);
  return (await readFile(`${file}.pub`, 'utf8')).trim();
}

export interface Sshd {
  readonly port: number;
  /** The host's public key line (`ssh-ed25519 AAAA… comment`). */
  readonly hostKey: string;
  /** The sshd's log so far. */
  log(): string;
  /** Pids of the processes serving connections (children of the listener and theirs). */
  sessionPids(): Promise<number[]>;
  /** SIGKILLs every process serving a connection: the connections drop, the listener stays. */
  killSessions(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts `/usr/sbin/sshd -D -e` on 127.0.0.1 (a free port) with a fresh host key, accepting
 * `authorizedKeys` for any user (root included). `extra` lines are appended to sshd_config.
 * Started again in the same `dir` with the same `port`, it is the same server (same host key).
 */
export async function startSshd(dir: string, authorizedKeys: readonly string[], extra: readonly string[] = [], options: { port?: number } = {}): Promise<Sshd> {
  // The privilege separation directory; only root can (and needs to) create it.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => undefined);
  await mkdir(dir, { recursive: true });
  const hostKeyFile = join(dir, 'host_ed25519');
  const hostKey = existsSync(hostKeyFile) ? (await readFile(`${hostKeyFile}.pub`, 'utf8')).trim() : await keygen(hostKeyFile);
  await writeFile(join(dir, 'authorized_keys'), `${authorizedKeys.join('\n')}\n`, { mode: 0o600 });
  const port = options.port ?? (await freePort());
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKeyFile}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    'UsePAM no',
    'StrictModes no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'MaxStartups 100',
    'MaxSessions 100',
    // DEBUG1 logs each forwarded connection's target ("server_request_direct_tcpip").
    'LogLevel DEBUG1',
    ...extra,
  ];
  const configFile = join(dir, 'sshd_config');
  await writeFile(configFile, `${config.join('\n')}\n`);
  // -E: the log goes to a file. With -e it would go to stderr, which a session inherits
  // until the command starts: debug lines would leak into the commands' stderr.
  const logFile = join(dir, 'sshd.log');
  await writeFile(logFile, '');
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-E', logFile, '-f', configFile], { stdio: 'ignore' });
  const log = () => readFileSync(logFile, 'utf8');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await Promise.race([
    eventually(() => existsSync(logFile) && log().includes(`Server listening on 127.0.0.1 port ${port}`), 10_000, 'sshd listening'),
    exited.then(() => {
      throw new Error(`sshd exited: ${existsSync(logFile) ? log() : ''}`);
    }),
  ]);

  const descendants = async (): Promise<number[]> => {
    const parents = new Map<number, number>();
    for (const name of await readdir('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid) parents.set(Number(name), ppid);
    }
    const found: number[] = [];
    const walk = (pid: number) => {
      for (const [child, parent] of parents) if (parent === pid) (found.push(child), walk(child));
    };
    walk(child.pid!);
    return found;
  };

  return {
    port,
    hostKey,
    log,
    sessionPids: descendants,
    async killSessions() {
      const pids = await descendants();
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      return pids.length;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        // Frozen, the listener cannot fork a session for a client that reconnects at once.
        child.kill('SIGSTOP');
        for (const pid of await descendants()) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        child.kill('SIGTERM');
        child.kill('SIGCONT');
        await exited;
      }
    },
  };
}

export interface Agent {
  readonly socket: string;
  add(keyFile: string): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a real ssh-agent in the foreground on a socket in `dir`. */
export async function startAgent(dir: string): Promise<Agent> {
  const socket = join(dir, 'agent.sock');
  const child = spawn('ssh-agent', ['-D', '-a', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await eventually(async () => (await readdir(dir)).includes('agent.sock'), 10_000, 'ssh-agent socket');
  return {
    socket,
    async add(keyFile) {
      await run('ssh-add', [keyFile], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** `[127.0.0.1]:port <key>`: a known_hosts line for a test sshd. */
export function knownHostsLine(sshd: Sshd, host = '127.0.0.1'): string {
  const [type, key] = sshd.hostKey.split(' ');
  return `[${host}]:${sshd.port} ${type} ${key}`;
}
