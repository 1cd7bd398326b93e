import { Flags } from '@oclif/core';
import { open, rename, rm } from 'node:fs/promises';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { machinePath } from '../../fileJson.js';

export default class FileRead extends TetherCommand {
  static override summary = 'Read a file from a machine.';
  static override description =
    'Prints {"ok","path","size","content"} with the content in base64, or, with --dst, saves it to a local file and prints {"ok","path","size","dst"}. Large files are read in ranges.';
  static override examples = [
    { description: 'Read a file (base64 in "content")', command: '<%= config.bin %> file read --machine gpu1 --path /data/run/metrics.json' },
    { description: 'Download it', command: '<%= config.bin %> file read --machine gpu1 --path /data/models/model.pt --dst ./model.pt' },
  ];
  static override flags = {
    machine: machineFlag,
    path: Flags.string({ description: 'the path on the machine', required: true }),
    dst: Flags.string({ description: 'save to this local file instead of printing the content' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(FileRead);
    this.useConfig(flags.config);
    const { machine, isLocal } = await this.openMachine(flags.machine);
    const path = machinePath(flags.path, isLocal);
    if (flags.dst === undefined) {
      const chunks: Uint8Array[] = [];
      let size = 0;
      for (let offset = 0; ; ) {
        const page = await machine.fs.read(path, { offset });
        chunks.push(page.data);
        offset += page.data.byteLength;
        size = page.size;
        if (page.eof || page.data.byteLength === 0) break;
      }
      return this.emit({ ok: true, path, size, content: Buffer.concat(chunks).toString('base64') });
    }
    // Written next to the destination, then renamed: a failed download leaves no partial file.
    const dst = flags.dst;
    const temp = `${dst}.tether-${process.pid}.part`;
    const file = await open(temp, 'w');
    let size = 0;
    try {
      for (let offset = 0; ; ) {
        const page = await machine.fs.read(path, { offset });
        await file.write(page.data);
        offset += page.data.byteLength;
        size = page.size;
        if (page.size > 0) this.progress(`downloading ${path}: ${Math.floor((offset / page.size) * 100)}%`);
        if (page.eof || page.data.byteLength === 0) break;
      }
      await file.close();
      await rename(temp, dst);
      this.stopProgress('done');
    } catch (error) {
      await file.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw error;
    }
    this.emit({ ok: true, path, size, dst });
  }
}
