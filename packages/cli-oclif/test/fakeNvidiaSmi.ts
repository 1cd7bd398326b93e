import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A stand-in `nvidia-smi` that prints the CSV the test puts in its directory (there is no GPU here). */
export class FakeNvidiaSmi {
  readonly command: string;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.command = join(dir, 'nvidia-smi');
    writeFileSync(
      this.command,
      `#!/bin/sh\ncase "$1" in\n  --query-gpu=*) cat '${dir}/gpu.csv' ;;\n  --query-compute-apps=*) cat '${dir}/apps.csv' ;;\n  *) exit 2 ;;\nesac\n`,
    );
    chmodSync(this.command, 0o755);
    this.set({ busy: false });
  }

  /** One A100; busy: 90 % used with a compute process on it. */
  set({ busy }: { busy: boolean }): void {
    const uuid = 'GPU-4b8e1d2c-6f3a-9c1e-2a7d-5e0f8b3c9a14';
    writeFileSync(join(this.dir, 'gpu.csv'), `0, ${uuid}, NVIDIA A100-SXM4-80GB, ${busy ? 70000 : 3}, 81920, ${busy ? 90 : 0}, ${busy ? 71 : 31}\n`);
    writeFileSync(join(this.dir, 'apps.csv'), busy ? `4242, ${uuid}, 69990\n` : '');
  }
}
