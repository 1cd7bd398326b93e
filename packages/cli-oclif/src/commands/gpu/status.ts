import { TetherCommand, machineFlag } from '../../baseCommand.js';
import { gpuStatusJson } from '../../gpuJson.js';

export default class GpuStatus extends TetherCommand {
  static override summary = "Show a machine's GPUs and the processes on them.";
  static override description =
    'Prints {"available","gpus":[{"index","uuid","name","memory_used_mib","memory_total_mib","utilization_gpu","temperature_c"}],"processes":[{"pid","gpu_uuid","used_memory_mib"}],"probed_at"}, from nvidia-smi on the machine. available is false (with a "reason") where there is no NVIDIA driver; values the driver does not report are null.';
  static override examples = [{ description: 'GPUs of gpu1', command: '<%= config.bin %> gpu status --machine gpu1' }];
  static override flags = { machine: machineFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(GpuStatus);
    this.useConfig(flags.config);
    const { machine } = await this.openMachine(flags.machine);
    this.emit(gpuStatusJson(await machine.gpu.probe()));
  }
}
