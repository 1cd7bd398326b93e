import { Flags } from '@oclif/core';
import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { parseDuration } from '../../duration.js';
import { gpuJson } from '../../gpuJson.js';

export default class GpuWait extends TetherCommand {
  static override summary = 'Wait until a GPU is free.';
  static override description =
    'Blocks until a GPU is at most --max-util % busy with at most --max-mem-mib MiB in use (and, with --free, no compute process on it), then prints {"ok":true,"waited_ms","gpus"} with the GPUs that were free. Fails with GATE_TIMEOUT (exit 8) after --timeout.';
  static override examples = [
    { description: 'Wait for an idle GPU, up to 30 minutes', command: '<%= config.bin %> gpu wait --machine gpu1 --free --timeout 30m' },
    { description: 'Wait until GPU 2 or 3 has less than 4 GiB in use', command: '<%= config.bin %> gpu wait --machine gpu1 --gpu 2 --gpu 3 --max-mem-mib 4096 --max-util 100' },
  ];
  static override flags = {
    machine: machineFlag,
    free: Flags.boolean({ description: 'also require that no compute process runs on the GPU' }),
    'max-util': Flags.integer({ description: 'highest utilisation (%) of a free GPU', default: 10, min: 0, max: 100 }),
    'max-mem-mib': Flags.integer({ description: 'most memory in use (MiB) on a free GPU', default: 1000, min: 0 }),
    gpu: Flags.integer({ description: 'only consider this GPU index; repeatable', multiple: true, min: 0 }),
    timeout: Flags.string({ description: 'give up after this long', default: '30m' }),
    poll: Flags.string({ description: 'how often to probe', default: '2s' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(GpuWait);
    this.useConfig(flags.config);
    const timeoutMs = parseDuration(flags.timeout, 'timeout');
    const pollMs = Math.max(50, parseDuration(flags.poll, 'poll'));
    const { machine } = await this.openMachine(flags.machine);
    this.progress('waiting for a free GPU');
    const result = await machine.gpu.waitFree({
      maxUtilizationPct: flags['max-util'],
      maxMemoryUsedMiB: flags['max-mem-mib'],
      requireNoProcesses: flags.free,
      timeoutMs,
      pollMs,
      ...(flags.gpu ? { gpuIndexes: flags.gpu } : {}),
    });
    this.stopProgress('free');
    this.emit({ ok: true, waited_ms: result.waitedMs, gpus: result.gpus.map(gpuJson) });
  }
}
