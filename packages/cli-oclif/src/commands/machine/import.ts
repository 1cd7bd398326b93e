import { Flags } from '@oclif/core';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TetherCommand } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import { tetherPaths } from '../../paths.js';

export default class MachineImport extends TetherCommand {
  static override summary = "Write tether's config from codex-remote's (~/.config/codex-remote/config.yaml).";
  static override description = `Reads codex-remote's config (or --from FILE), checks its machines as tether would, and writes them to tether's config file (--config, or $XDG_CONFIG_HOME/tether/config.yaml). Prints {"ok","path","from","machines":[names],"dropped":[{"machine","field","value","why"}]}.

Fields carry over as they are (name, ssh, addr, token, daemon_port, use_direct_addr; addr http:// means the daemon's ws://). A daemon_cmd that starts codexd is dropped: machine up starts tether's daemon. An existing tether config is left alone unless --force. Without any tether config, tether already reads codex-remote's file as it is; importing makes the choice lasting and editable.`;
  static override examples = [
    { description: "Import codex-remote's machines", command: '<%= config.bin %> machine import' },
    { description: 'From another file, replacing the current config', command: '<%= config.bin %> machine import --from ./codex-remote.yaml --force' },
  ];
  static override flags = {
    from: Flags.string({ description: "codex-remote's config file (default ~/.config/codex-remote/config.yaml)" }),
    force: Flags.boolean({ description: "replace tether's config file if there is one", default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(MachineImport);
    this.useConfig(flags.config);
    const from = flags.from ?? tetherPaths().codexRemoteConfigFile;
    const { path: to } = this.configFile();
    const text = await readFile(from, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new CliError('CONFIG_INVALID', `cannot read codex-remote's config ${from}: ${error.code === 'ENOENT' ? 'no such file' : (error.code ?? String(error))}`, {
        hint: 'give the file with --from',
      });
    });
    const { parseConfig } = await import('../../config/configFile.js');
    const config = parseConfig(text, from);
    const { parseDocument, stringify } = await import('yaml');
    const raw = (parseDocument(text).toJS() ?? {}) as { machines?: unknown };
    const entries: Array<Record<string, unknown>> = Array.isArray(raw.machines)
      ? (raw.machines as Array<Record<string, unknown>>)
      : Object.entries((raw.machines ?? {}) as Record<string, Record<string, unknown> | null>).map(([name, value]) => ({ name, ...(value ?? {}) }));
    const dropped: Array<{ machine: string; field: string; value: unknown; why: string }> = [];
    const machines = entries.map((entry) => {
      const { daemon_cmd: daemonCmd, ...rest } = entry;
      if (typeof daemonCmd === 'string' && /\bcodexd\b/.test(daemonCmd)) {
        dropped.push({ machine: String(entry['name']), field: 'daemon_cmd', value: daemonCmd, why: "it starts codexd; machine up starts tether's daemon" });
        return rest;
      }
      return entry;
    });
    const existing = await readFile(to, 'utf8').then(
      () => true,
      () => false,
    );
    if (existing && !flags.force) {
      throw new CliError('PATH_EXISTS', `tether's config ${to} exists already`, { hint: 'pass --force to replace it, or add the machines to it by hand' });
    }
    await mkdir(dirname(to), { recursive: true });
    await writeFile(to, `# imported from ${from}\n${stringify({ machines })}`, { mode: 0o600 });
    this.emit({ ok: true, path: to, from, machines: config.machines.map((m) => m.config.name), dropped });
  }
}
