import { TetherCommand, fanOutMachineFlag } from '../../baseCommand.js';
import { gpuStatusJson } from '../../gpuJson.js';

export default class GpuStatus extends TetherCommand {
  static override summary = "Show a machine's GPUs and the processes on them.";
  static override description =
    'Prints {"available","gpus":[{"index","uuid","name","memory_used_mib","memory_total_mib","utilization_gpu","temperature_c"}],"processes":[{"pid","gpu_uuid","used_memory_mib"}],"probed_at"}, from nvidia-smi on the machine. available is false (with a "reason") where there is no NVIDIA driver; values the driver does not report are null.';
  static override examples = [
    { description: 'GPUs of gpu1', command: '<%= config.bin %> gpu status --machine gpu1' },
    { description: 'GPUs of every machine labelled gpu', command: '<%= config.bin %> gpu status --machine @gpu' },
  ];
  static override flags = { machine: fanOutMachineFlag('one line each, with "machine"') };

  async run(): Promise<void> {
    const { flags } = await this.parse(GpuStatus);
    this.useConfig(flags.config);
    const { isFanOut, resolveTargets, resultPerTarget } = await import('../../fanOut.js');
    if (isFanOut(flags.machine)) {
      const machines = await this.machines();
      const targets = await resolveTargets(machines, flags.machine);
      const code = await resultPerTarget(
        targets,
        async (name) => {
          const { machine } = await machines.open(name);
          return { line: { machine: name, ...gpuStatusJson(await machine.gpu.probe()) } };
        },
        (line) => this.emit(line),
      );
      if (code !== 0) process.exitCode = code;
      return;
    }
    const { machine } = await this.openMachine(flags.machine);
    this.emit(gpuStatusJson(await machine.gpu.probe()));
  }
}
