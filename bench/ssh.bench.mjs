// The ssh transport against OpenSSH, on a real sshd on loopback with a real daemon (a
// daemonMain child), every floor measured in the same run:
//  1. warm `exec true` (exec.start + exec.wait through a RemoteMachine over SshTransport, one SSH
//     connection kept open in this process) vs `ssh host true` through a warm ControlMaster;
//  2. a cold `node script` doing one exec.start + wait of `true` through the persistent tunnel
//     (already running) vs `ssh host true` with a new handshake; for context, the same script
//     over a direct SSH connection, and a node process that only imports the packages;
//  3. 1 GiB of output followed through the tunnel (exec.follow, persisted by the daemon) vs
//     `ssh host 'head -c 1G /dev/zero' > /dev/null`; for context, a raw ssh2 exec channel in this
//     process and, on a quarter of the bytes, the daemon's own rate over a direct WebSocket;
//  4. the CLI itself, cold (`node packages/cli-oclif/bin/run.js exec run --cmd true`, a new process
//     per call, its own temp HOME and XDG directories) on the ssh machine through its persistent
//     tunnel (started by one warm-up call) vs the same plain `ssh host true`; for context, the
//     same CLI call on the `local` machine (its local daemon, started by the warm-up call).
// The OpenSSH floors send SHLVL=1 (AcceptEnv on this sshd) so that bash does not source the
// user's ~/.bashrc for each command, which on some machines (pyenv init…) costs 100+ ms and would
// flatter tether, whose forwarded route never starts a remote shell.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RemoteMachine } from '@tether/core';
import { SshTransport, connectViaTunnel, sshConnect, stopTunnel } from '@tether/transport-ssh';
import { readToken, remoteMachine } from '@tether/transport-ws';
import { ms, summary, timeMany } from './timing.mjs';

const run = promisify(execFile);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);
const COLD_ROUNDS = Number(process.env.BENCH_COLD_ROUNDS ?? 12);
const STREAM_BYTES = Number(process.env.BENCH_STREAM_BYTES ?? 1024 ** 3);
const MiB = 1024 ** 2;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const USER = userInfo().username;

const dir = mkdtempSync(join(tmpdir(), 'tether-bench-ssh-'));
const children = [];
const machines = [];
let masterArgs;
const stateDir = join(dir, 'state');
const CLI = join(ROOT, 'packages/cli-oclif/bin/run.js');
const cliRoot = join(dir, 'cli');
const cliStateDir = join(cliRoot, 'state', 'tether');
let cliEnv;
try {
  // --- an sshd on loopback, a client key, known_hosts ---------------------------------------
  const home = join(dir, 'home');
  mkdirSync(join(home, '.ssh'), { recursive: true });
  const key = join(home, '.ssh', 'id_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  const sshdDir = join(dir, 'sshd');
  mkdirSync(sshdDir);
  mkdirSync('/run/sshd', { recursive: true });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(sshdDir, 'host_ed25519')]);
  writeFileSync(join(sshdDir, 'authorized_keys'), readFileSync(`${key}.pub`), { mode: 0o600 });
  const port = await freePort();
  writeFileSync(
    join(sshdDir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(sshdDir, 'host_ed25519')}`,
      `AuthorizedKeysFile ${join(sshdDir, 'authorized_keys')}`,
      `PidFile ${join(sshdDir, 'sshd.pid')}`,
      'UsePAM no',
      'StrictModes no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'MaxStartups 100',
      'MaxSessions 200',
      'AcceptEnv SHLVL',
      '',
    ].join('\n'),
  );
  const sshdLog = join(sshdDir, 'sshd.log');
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-E', sshdLog, '-f', join(sshdDir, 'sshd_config')], { stdio: 'ignore' });
  children.push(sshd);
  await until(() => readFileSync(sshdLog, { encoding: 'utf8', flag: 'a+' }).includes('Server listening'), 'sshd listening');
  const [type, hostKey] = readFileSync(join(sshdDir, 'host_ed25519.pub'), 'utf8').split(' ');
  const knownHosts = join(home, '.ssh', 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${type} ${hostKey}\n`);
  const ssh = { home, systemConfigFile: null, agent: null };
  const target = `${USER}@127.0.0.1`;
  const opensshArgs = ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'SetEnv=SHLVL=1', '-i', key, '-p', String(port)];

  // --- the daemon (a child, as on a real machine) ---------------------------------------------
  const daemonMain = join(ROOT, 'packages/transport-ws/dist/daemonMain.js');
  const daemonChild = spawn(process.execPath, [daemonMain, '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'daemon'), '--plugin', '@tether/plugin-process'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  children.push(daemonChild);
  const daemonInfo = JSON.parse(await firstLine(daemonChild));
  const daemonPort = Number(new URL(daemonInfo.url).port);
  const machine = { name: 'bench', transport: 'ssh', ssh: `${target}:${port}`, daemon_port: daemonPort, token_file: daemonInfo.tokenFile };

  const execTrue = async (m) => m.exec.wait((await m.exec.start({ argv: ['true'] })).id);

  // 1. warm exec true over one SSH connection vs OpenSSH ControlMaster ----------------------------
  const transport = new SshTransport(ssh);
  const warm = new RemoteMachine({ name: 'bench', connect: (signal) => transport.connect(machine, signal) });
  machines.push(warm);
  const warmExec = await timeMany(() => execTrue(warm), ROUNDS);
  masterArgs = [...opensshArgs, '-o', 'ControlMaster=auto', '-o', `ControlPath=${join(dir, 'cm-%C')}`, '-o', 'ControlPersist=60', target];
  const controlMaster = await timeMany(() => sshTrue(masterArgs), Math.min(ROUNDS, 100));
  const tunnelOptions = { stateDir, ssh };
  const viaTunnel = new RemoteMachine({ name: 'bench', connect: (signal) => connectViaTunnel(machine, { ...tunnelOptions, signal }) });
  machines.push(viaTunnel);
  const warmTunnelExec = await timeMany(() => execTrue(viaTunnel), ROUNDS);
  console.log(
    `warm exec true over SshTransport: p50 ${warmExec.p50} ms p99 ${warmExec.p99} ms (target ≤ 20, faster than ControlMaster) | ssh ControlMaster true p50 ${controlMaster.p50} ms | over the tunnel p50 ${warmTunnelExec.p50} ms`,
  );

  // 2. cold node processes through the (warm) tunnel vs a plain ssh with its own handshake ---------
  const coldScript = (how) => `
    import { RemoteMachine } from '@tether/core';
    import { connectViaTunnel, SshTransport } from '@tether/transport-ssh';
    const { machine, options } = JSON.parse(process.argv[1]);
    const transport = new SshTransport(options.ssh);
    const connect = ${how === 'tunnel' ? '(signal) => connectViaTunnel(machine, { ...options, verbose: true, signal })' : '(signal) => transport.connect(machine, signal)'};
    const m = new RemoteMachine({ name: machine.name, connect, reconnect: { giveUpAfterMs: 0 } });
    const done = await m.exec.wait((await m.exec.start({ argv: ['true'] })).id);
    if (done.exitCode !== 0) process.exit(3);
    process.exit(0);
  `;
  const connectMs = [];
  const coldNode = (how) => () =>
    nodeRun(['--input-type=module', '-e', coldScript(how), JSON.stringify({ machine, options: tunnelOptions })], (stderr) => {
      const line = stderr.split('\n').find((l) => l.startsWith('{"tunnel"'));
      if (line) connectMs.push(JSON.parse(line).tunnel.connect_ms);
    });
  const importOnly = () => nodeRun(['--input-type=module', '-e', "await import('@tether/core'); await import('@tether/transport-ssh'); process.exit(0)"]);
  const plainArgs = [...opensshArgs, '-o', 'ControlMaster=no', '-o', 'ControlPath=none', target];
  const coldTunnel = await timeCold(coldNode('tunnel'));
  const tunnelConnect = summary(connectMs);
  const coldPlainSsh = await timeCold(() => sshTrue(plainArgs));
  const coldDirect = await timeCold(coldNode('direct'));
  const coldImport = await timeCold(importOnly);
  console.log(
    `cold node exec true via the tunnel: p50 ${coldTunnel.p50} ms (connect through the tunnel p50 ${tunnelConnect.p50} ms) | plain ssh true (new handshake) p50 ${coldPlainSsh.p50} ms | node without tunnel (own SSH handshake) p50 ${coldDirect.p50} ms | node that only imports p50 ${coldImport.p50} ms`,
  );

  // 3. 1 GiB of output ------------------------------------------------------------------------
  let t0 = process.hrtime.bigint();
  const flood = await viaTunnel.exec.start({ argv: ['head', '-c', String(STREAM_BYTES), '/dev/zero'] });
  const followed = await followBytes(viaTunnel, flood.id);
  const tunnelSeconds = ms(t0) / 1000;
  if (followed !== STREAM_BYTES) throw new Error(`followed ${followed} bytes, expected ${STREAM_BYTES}`);
  const tunnelMiBs = STREAM_BYTES / MiB / tunnelSeconds;

  t0 = process.hrtime.bigint();
  await new Promise((resolve, reject) => {
    const child = spawn('ssh', [...plainArgs, `head -c ${STREAM_BYTES} /dev/zero`], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ssh exited with ${code}`))));
  });
  const opensshMiBs = STREAM_BYTES / MiB / (ms(t0) / 1000);

  const raw = await sshConnect(`${target}:${port}`, { ...ssh, forwardAgent: false });
  t0 = process.hrtime.bigint();
  const rawBytes = await new Promise((resolve, reject) => {
    raw.exec(`head -c ${STREAM_BYTES} /dev/zero`).then((channel) => {
      let n = 0;
      channel.on('data', (chunk) => (n += chunk.length));
      channel.once('close', () => resolve(n));
    }, reject);
  });
  const rawMiBs = rawBytes / MiB / (ms(t0) / 1000);
  raw.close();

  const direct = remoteMachine(daemonInfo.url, { token: await readToken(daemonInfo.tokenFile), name: 'bench' });
  machines.push(direct);
  const quarter = Math.floor(STREAM_BYTES / 4);
  t0 = process.hrtime.bigint();
  const directFlood = await direct.exec.start({ argv: ['head', '-c', String(quarter), '/dev/zero'] });
  if ((await followBytes(direct, directFlood.id)) !== quarter) throw new Error('short direct follow');
  const directMiBs = quarter / MiB / (ms(t0) / 1000);
  console.log(
    `${STREAM_BYTES / MiB} MiB via exec.follow through the tunnel (persisted): ${tunnelMiBs.toFixed(0)} MiB/s | ssh 'head -c' > /dev/null: ${opensshMiBs.toFixed(0)} MiB/s (target ≥ 0.7×) | raw ssh2 exec channel: ${rawMiBs.toFixed(0)} MiB/s | daemon over a direct WebSocket (${quarter / MiB} MiB): ${directMiBs.toFixed(0)} MiB/s`,
  );

  // 4. the CLI, cold, through its own persistent tunnel -------------------------------------------
  // The CLI's own HOME: the bench's key and known_hosts, no ssh-agent, no system ssh_config.
  const cliHome = join(cliRoot, 'home');
  mkdirSync(join(cliHome, '.ssh'), { recursive: true, mode: 0o700 });
  writeFileSync(join(cliHome, '.ssh', 'id_ed25519'), readFileSync(key), { mode: 0o600 });
  writeFileSync(join(cliHome, '.ssh', 'known_hosts'), readFileSync(knownHosts));
  mkdirSync(join(cliRoot, 'config', 'tether'), { recursive: true });
  writeFileSync(
    join(cliRoot, 'config', 'tether', 'config.yaml'),
    [
      'machines:',
      '  - name: sshbox',
      `    ssh: ${target}:${port}`,
      `    daemon_port: ${daemonPort}`,
      `    token_file: ${daemonInfo.tokenFile}`,
      'plugins:',
      '  "@tether/transport-ssh":',
      '    systemConfigFile: null',
      '    agent: null',
      '',
    ].join('\n'),
  );
  cliEnv = {
    ...process.env,
    HOME: cliHome,
    XDG_CONFIG_HOME: join(cliRoot, 'config'),
    XDG_STATE_HOME: join(cliRoot, 'state'),
    XDG_DATA_HOME: join(cliRoot, 'data'),
    XDG_CACHE_HOME: join(cliRoot, 'cache'),
    NO_COLOR: '1',
  };
  delete cliEnv.SSH_AUTH_SOCK;
  delete cliEnv.TETHER_NO_BUNDLE;
  delete cliEnv.TETHER_SSH_TUNNEL;
  let tunnelPid;
  const cliExecTrue = (machineName) => async () => {
    const { stdout, stderr } = await cliRun(['exec', 'run', '--cmd', 'true', '--machine', machineName, '--verbose']);
    const finished = stdout.trim().split('\n').map((l) => JSON.parse(l)).at(-1);
    if (finished?.type !== 'finished' || finished.exit_code !== 0) throw new Error(`tether exec run on ${machineName}: ${stdout}${stderr}`);
    if (machineName === 'local') return;
    // Every timed call must have gone through the one tunnel started by the warm-up call.
    const tunnel = stderr.split('\n').filter((l) => l.startsWith('{"tunnel"')).map((l) => JSON.parse(l).tunnel)[0];
    if (!tunnel || tunnel.fallback || (tunnelPid !== undefined && (!tunnel.reused || tunnel.pid !== tunnelPid))) throw new Error(`not through the tunnel: ${stderr}`);
    tunnelPid = tunnel.pid;
  };
  const coldCliTunnel = await timeCold(cliExecTrue('sshbox'), 1);
  const coldPlainSsh2 = await timeCold(() => sshTrue(plainArgs), 1);
  const coldCliLocal = await timeCold(cliExecTrue('local'), 1);
  console.log(
    `cold CLI exec run --cmd true via the tunnel: p50 ${coldCliTunnel.p50} ms p99 ${coldCliTunnel.p99} ms | plain ssh true (new handshake) p50 ${coldPlainSsh2.p50} ms p99 ${coldPlainSsh2.p99} ms | ratio ${(coldCliTunnel.p50 / coldPlainSsh2.p50).toFixed(2)} | cold CLI on local p50 ${coldCliLocal.p50} ms p99 ${coldCliLocal.p99} ms`,
  );

  console.log(
    JSON.stringify({
      bench: 'ssh',
      results: {
        warm_exec_true_ms: warmExec,
        openssh_controlmaster_true_ms: controlMaster,
        warm_exec_vs_controlmaster: +(warmExec.p50 / controlMaster.p50).toFixed(2),
        warm_tunnel_exec_true_ms: warmTunnelExec,
        cold_node_tunnel_exec_true_ms: coldTunnel,
        cold_tunnel_connect_ms: tunnelConnect,
        openssh_plain_true_ms: coldPlainSsh,
        cold_tunnel_vs_plain_ssh: +(coldTunnel.p50 / coldPlainSsh.p50).toFixed(2),
        cold_node_direct_ssh_exec_true_ms: coldDirect,
        cold_node_import_only_ms: coldImport,
        follow_tunnel_mib_s: +tunnelMiBs.toFixed(1),
        openssh_stream_mib_s: +opensshMiBs.toFixed(1),
        follow_vs_openssh: +(tunnelMiBs / opensshMiBs).toFixed(2),
        raw_ssh2_exec_mib_s: +rawMiBs.toFixed(1),
        follow_direct_ws_quarter_mib_s: +directMiBs.toFixed(1),
        stream_bytes: STREAM_BYTES,
        cold_cli_tunnel_exec_true_ms: coldCliTunnel,
        openssh_plain_true_beside_cli_ms: coldPlainSsh2,
        cold_cli_tunnel_vs_plain_ssh: +(coldCliTunnel.p50 / coldPlainSsh2.p50).toFixed(2),
        cold_cli_local_exec_true_ms: coldCliLocal,
        cold_cli_tunnel_vs_local: +(coldCliTunnel.p50 / coldCliLocal.p50).toFixed(2),
      },
    }),
  );
} finally {
  await Promise.all(machines.map((m) => m.close()));
  await stopTunnel('bench', { stateDir }).catch(() => undefined);
  await stopTunnel('sshbox', { stateDir: cliStateDir }).catch(() => undefined);
  if (cliEnv) await cliRun(['daemon', 'stop']).catch(() => undefined);
  if (masterArgs) await run('ssh', [...masterArgs.slice(0, -1), '-O', 'exit', masterArgs.at(-1)]).catch(() => undefined);
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  await Promise.all(children.map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((r) => child.once('exit', r)) : undefined)));
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);

function sshTrue(args) {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', [...args, 'true'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`ssh exited with ${code}: ${stderr}`))));
  });
}

function nodeRun(args, onStderr) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.once('close', (code) => {
      if (code !== 0) return reject(new Error(`node exited with ${code}: ${stderr}`));
      onStderr?.(stderr);
      resolve();
    });
  });
}

/** `tether <args>` as a new process with the CLI's temp HOME and XDG directories. */
function cliRun(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: cliEnv.HOME, env: cliEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`tether ${args.join(' ')} exited with ${code}: ${stderr}`))));
  });
}

/** `warmups` untimed runs (file cache; tunnel or daemon start), then `COLD_ROUNDS` timed processes. */
async function timeCold(fn, warmups = 2) {
  for (let i = 0; i < warmups; i++) await fn();
  const samples = [];
  for (let i = 0; i < COLD_ROUNDS; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    samples.push(ms(t0));
  }
  return summary(samples);
}

function followBytes(machine, id) {
  let bytes = 0;
  return new Promise((resolve, reject) =>
    machine.exec.follow(id, 0).subscribe({
      next: (event) => {
        if (event.type === 'OutputProduced') bytes += event.data.data.byteLength;
      },
      error: reject,
      complete: () => resolve(bytes),
    }),
  );
}

function firstLine(child) {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
}

async function until(check, what) {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 10 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
