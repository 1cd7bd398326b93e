import { Flags } from '@oclif/core';
import { open, readFile } from 'node:fs/promises';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { CliError } from '../../cliError.js';
import { machinePath, parseMode } from '../../fileJson.js';

/** Files up to this size go in one call; larger ones in chunks of this size (atomic either way). */
const CHUNK = 4 * 1024 * 1024;

export default class FileWrite extends TetherCommand {
  static override summary = 'Write a file on a machine, atomically.';
  static override description =
    'The file appears whole or not at all (written to a temporary file, then renamed). Content comes from --content or a local --src file (any size: large files go in chunks). Prints {"ok","path","bytes_written"}.';
  static override examples = [
    { description: 'Write a small file', command: "<%= config.bin %> file write --machine gpu1 --dst /data/run/config.json --content '{\"lr\":0.001}'" },
    { description: 'Upload a local file, creating the directories', command: '<%= config.bin %> file write --machine gpu1 --src ./model.pt --dst /data/models/model.pt --mkdir' },
  ];
  static override flags = {
    machine: machineFlag,
    dst: Flags.string({ description: 'the path on the machine', required: true }),
    content: Flags.string({ description: 'the text to write', exclusive: ['src'] }),
    src: Flags.string({ description: 'a local file to upload' }),
    mode: Flags.string({ description: 'permission bits of a new file, octal (0644)' }),
    mkdir: Flags.boolean({ description: 'create missing parent directories' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(FileWrite);
    this.useConfig(flags.config);
    const mode = flags.mode === undefined ? undefined : parseMode(flags.mode);
    if (flags.mode !== undefined && mode === undefined) throw new CliError('INVALID_ARGUMENT', `--mode: expected octal permission bits like 0644, got "${flags.mode}"`);
    if (flags.content === undefined && flags.src === undefined) throw new CliError('USAGE', 'give --content TEXT or --src FILE', { hint: 'tether file write --dst PATH --content TEXT' });
    const options = { ...(mode !== undefined ? { mode } : {}), mkdir: flags.mkdir };
    const { machine, isLocal } = await this.openMachine(flags.machine);
    const path = machinePath(flags.dst, isLocal);

    if (flags.content !== undefined) {
      const { bytesWritten } = await machine.fs.write(path, new TextEncoder().encode(flags.content), options);
      return this.emit({ ok: true, path, bytes_written: bytesWritten });
    }
    const src = flags.src!;
    const file = await open(src, 'r').catch((error: NodeJS.ErrnoException) => {
      throw new CliError('INVALID_ARGUMENT', `--src: cannot read ${src} (${error.code ?? String(error)})`, { hint: 'give a readable local file' });
    });
    try {
      const { size } = await file.stat();
      if (size <= CHUNK) {
        const { bytesWritten } = await machine.fs.write(path, new Uint8Array(await readFile(file)), options);
        return this.emit({ ok: true, path, bytes_written: bytesWritten });
      }
      const { uploadId } = await machine.fs.beginWrite(path, options);
      try {
        const buffer = Buffer.allocUnsafe(CHUNK);
        for (let offset = 0; offset < size; ) {
          const { bytesRead } = await file.read(buffer, 0, CHUNK, offset);
          if (bytesRead === 0) break;
          await machine.fs.writeChunk(uploadId, offset, new Uint8Array(buffer.subarray(0, bytesRead)));
          offset += bytesRead;
          this.progress(`uploading ${src}: ${Math.floor((offset / size) * 100)}%`);
        }
        const { bytesWritten } = await machine.fs.commitWrite(uploadId);
        this.stopProgress('done');
        this.emit({ ok: true, path, bytes_written: bytesWritten });
      } catch (error) {
        await machine.fs.abortWrite(uploadId).catch(() => undefined);
        throw error;
      }
    } finally {
      await file.close();
    }
  }
}
