import { Flags } from '@oclif/core';
import { TetherCommand } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';

export default class MachineAdd extends TetherCommand {
  static override summary = 'Add a machine to the config file.';
  static override description = `Adds (or with --force replaces) a machine in the config file, keeping the file's comments and layout, and prints {"ok":true,"action":"added|replaced","name","config"}. The new file is validated before it is written (atomically; a new file gets mode 0600, as it may hold tokens). The transport is ssh with --ssh, ws with --addr, or the one given with --transport.`;
  static override examples = [
    { description: 'A GPU box over SSH, labelled for fan-out', command: '<%= config.bin %> machine add --name gpu1 --ssh alice@gpu1.example --label gpu' },
    { description: 'A daemon over WebSocket', command: '<%= config.bin %> machine add --name box --addr ws://10.0.0.5:7337 --token-file ~/.config/tether/box.token' },
  ];
  static override flags = {
    name: Flags.string({ description: 'the machine name (letters, digits, . _ -)', required: true }),
    ssh: Flags.string({ description: 'SSH destination: [user@]host or a Host alias of ~/.ssh/config (transport ssh)' }),
    addr: Flags.string({ description: 'daemon address: ws://host:port, wss://…, host:port (transport ws)' }),
    transport: Flags.string({ description: 'the transport (inferred from --ssh / --addr)' }),
    token: Flags.string({ description: 'the daemon token (ws)' }),
    'token-file': Flags.string({ description: 'a file holding the daemon token (ws)' }),
    'daemon-port': Flags.integer({ description: 'the daemon port on the machine (ssh)', min: 1, max: 65535 }),
    'daemon-cmd': Flags.string({ description: 'the command that starts the daemon there (machine up)' }),
    label: Flags.string({ description: 'a label for --machine @label; repeatable', multiple: true }),
    force: Flags.boolean({ description: 'replace a machine of that name' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(MachineAdd);
    this.useConfig(flags.config);
    if (flags.ssh === undefined && flags.addr === undefined && flags.transport === undefined) {
      throw new CliError('USAGE', 'give --ssh HOST, --addr URL or --transport NAME', { hint: 'e.g. tether machine add --name gpu1 --ssh alice@gpu1.example' });
    }
    if (flags.name === 'local') throw new CliError('INVALID_ARGUMENT', '"local" is reserved for this machine', { hint: 'choose another name' });
    const entry: Record<string, unknown> = {
      name: flags.name,
      ...(flags.transport !== undefined ? { transport: flags.transport } : {}),
      ...(flags.ssh !== undefined ? { ssh: flags.ssh } : {}),
      ...(flags.addr !== undefined ? { addr: flags.addr } : {}),
      ...(flags.token !== undefined ? { token: flags.token } : {}),
      ...(flags['token-file'] !== undefined ? { token_file: flags['token-file'] } : {}),
      ...(flags['daemon-port'] !== undefined ? { daemon_port: flags['daemon-port'] } : {}),
      ...(flags['daemon-cmd'] !== undefined ? { daemon_cmd: flags['daemon-cmd'] } : {}),
      ...(flags.label ? { labels: flags.label } : {}),
    };
    const { path } = this.configFile();
    const { editMachines, findMachine } = await import('../../machineConfigEdit.js');
    let action = 'added';
    await editMachines(path, (doc, form) => {
      const at = findMachine(doc, form, flags.name);
      if (at !== undefined && !flags.force) {
        throw new CliError('INVALID_ARGUMENT', `machine ${flags.name} is already in ${path}`, { hint: 'give --force to replace it, or machine remove it first' });
      }
      if (at !== undefined) action = 'replaced';
      if (form === 'map') {
        const { name: _name, ...rest } = entry;
        doc.setIn(['machines', flags.name], doc.createNode(rest));
      } else if (at !== undefined) doc.setIn(['machines', at], doc.createNode(entry));
      else doc.addIn(['machines'], doc.createNode(entry));
    });
    this.emit({ ok: true, action, name: flags.name, config: path });
  }
}
