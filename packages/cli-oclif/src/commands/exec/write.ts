import { Flags } from '@oclif/core';
import { readFile } from 'node:fs/promises';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';

export default class ExecWrite extends TetherCommand {
  static override summary = "Write to a running execution's stdin.";
  static override description =
    'The execution must have been started with --stdin. The bytes come from --data, --file, or this command\'s own stdin when it is not a terminal. --eof closes stdin after writing. Prints {"ok","bytes"}.';
  static override examples = [
    { description: 'Send a line', command: "<%= config.bin %> exec write --id repl-1 --data $'print(1+1)\\n'" },
    { description: 'Send a file and close stdin', command: '<%= config.bin %> exec write --id sort-1 --file ./input.txt --eof' },
    { description: 'Pipe into it', command: 'echo hello | <%= config.bin %> exec write --id cat-1' },
  ];
  static override flags = {
    machine: machineFlag,
    id: Flags.string({ description: 'the execution id (exec_id)', required: true }),
    data: Flags.string({ description: 'the text to write', exclusive: ['file'] }),
    file: Flags.string({ description: 'a local file whose bytes to write' }),
    eof: Flags.boolean({ description: 'close stdin after writing' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ExecWrite);
    this.useConfig(flags.config);
    let data: Uint8Array;
    if (flags.data !== undefined) data = new TextEncoder().encode(flags.data);
    else if (flags.file !== undefined) data = await readLocal(flags.file);
    else if (!process.stdin.isTTY) data = await readStdin();
    else if (flags.eof) data = new Uint8Array();
    else throw new CliError('USAGE', 'nothing to write: give --data, --file, or pipe into this command', { hint: 'e.g. tether exec write --id ID --data "text"' });
    const { machine } = await this.openMachine(flags.machine);
    const { bytes } = await machine.exec.write(flags.id, data, { eof: flags.eof });
    this.emit({ ok: true, bytes });
  }
}

async function readLocal(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    throw new CliError('INVALID_ARGUMENT', `--file: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { hint: 'give a readable local file' });
  }
}

async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}
