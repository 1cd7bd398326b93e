import { Flags } from '@oclif/core';
import { spawn } from 'node:child_process';
import { TetherCommand } from '../baseCommand.js';
import { CliError } from '../cliError.js';

export default class Dashboard extends TetherCommand {
  static override summary = 'Serve a web dashboard of the machines, their executions, live logs and GPUs.';
  static override description = `Holds connections to local and every configured machine (SSH connections reused) and serves a web app on --listen (loopback by default): machines and their health, executions across machines with filters, one execution with its live log (cancel, signal, download), GPUs over time.

Prints {"url","origin","pid"} on stdout once serving (+ "warning" when --listen is not a loopback address): "url" is a one-time login link (it carries a token made for this launch, exchanged on first use for a session cookie). Runs until SIGINT or SIGTERM.`;
  static override examples = [
    { description: 'Serve on 127.0.0.1:8787 and open the browser', command: '<%= config.bin %> dashboard --open' },
    { description: 'Another port', command: '<%= config.bin %> dashboard --listen 127.0.0.1:9000' },
  ];
  static override flags = {
    listen: Flags.string({ description: 'host:port to serve on (port 0 picks a free one)', default: '127.0.0.1:8787' }),
    open: Flags.boolean({ description: 'open the login URL in the default browser (xdg-open / open)', default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Dashboard);
    this.useConfig(flags.config);
    const { host, port } = parseListen(flags.listen);
    const { DashboardMachines } = await import('../dashboardMachines.js');
    const machines = new DashboardMachines({
      configPath: flags.config,
      cliRoot: this.config.root,
      cliName: this.config.name,
      packages: () => this.config.getPluginsList(),
    });
    const { startDashboard, isLoopback } = await import('@tether/dashboard');
    let dashboard;
    try {
      dashboard = await startDashboard({ machines: machines.directory(), host, port });
    } catch (error) {
      await machines.close();
      const code = (error as { code?: unknown }).code;
      if (code === 'EADDRINUSE') throw new CliError('INVALID_ARGUMENT', `address in use: ${flags.listen}`, { hint: 'choose another port with --listen 127.0.0.1:PORT (0 picks a free one)' });
      throw error;
    }
    // Off loopback the page is plain HTTP: the login link and the cookie cross the network readable.
    const warning = isLoopback(host.replace(/^\[|\]$/g, ''))
      ? undefined
      : `serving ${flags.listen} over plain HTTP: anyone on the network path can read the login link and the session cookie; prefer 127.0.0.1 and an SSH tunnel (ssh -L 8787:127.0.0.1:8787 HOST)`;
    this.emit({ url: dashboard.loginUrl, origin: dashboard.origin, pid: process.pid, ...(warning ? { warning } : {}) });
    if (flags.open) openBrowser(dashboard.loginUrl);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await dashboard.close();
    await machines.close();
  }
}

function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:]+)\]|([^:\s]+)):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new CliError('INVALID_ARGUMENT', `--listen: expected host:port, got "${listen}"`, { hint: 'e.g. --listen 127.0.0.1:8787' });
  return { host: match[1] ?? match[2]!, port };
}

/** Starts the platform's URL opener, detached; a missing opener is not an error (the URL is printed). */
function openBrowser(url: string): void {
  const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
  const child = spawn(opener, [url], { stdio: 'ignore', detached: true });
  child.on('error', () => process.stderr.write(`could not start ${opener}; open ${url} in a browser\n`));
  child.unref();
}
