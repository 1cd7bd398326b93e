import { GpuGateOptions, TetherError, setLongTimeout, type GpuInfo, type GpuProbe, type GpuProbeResult, type GpuWaitResult, type LongTimer } from '@tether/core';
import type { SlurmCommands } from './slurmCommands.js';
import { slurmMessage } from './slurmCommands.js';

/** `sinfo` columns: one line per node and partition, `|`-separated (wide enough not to be cut). */
export const SINFO_GPU_ARGS = ['-h', '-N', '-O', 'NodeList:256|,Partition:256|,Gres:1024|,GresUsed:1024|,StateLong:64'];

/** One node as `sinfo -N` lists it, its partitions merged. */
export interface SlurmNodeGres {
  readonly node: string;
  readonly partitions: string[];
  readonly state: string;
  /** GPUs by type (`a100`, or `gpu` when the GRES has no type): how many, and which indexes a job holds. */
  readonly gpus: { readonly type: string; readonly count: number; readonly used: number; readonly usedIndexes: number[] | null }[];
}

/** Splits a GRES list on its commas, not on those inside `(…)` (`gpu:a100:2(S:0-1),gpu:v100:1`). */
function splitGres(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  if (current) parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p && p !== '(null)');
}

/** `0-1,3` → [0, 1, 3]; null for `N/A` or anything else. */
function parseIndexes(text: string): number[] | null {
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(text)) return null;
  const out: number[] = [];
  for (const range of text.split(',')) {
    const [a, b] = range.split('-').map(Number);
    for (let i = a!; i <= (b ?? a!); i++) out.push(i);
  }
  return out;
}

/** `gpu:a100:4(S:0-1)` / `gpu:2` / `gpu:fake:1(IDX:0)` → its type, count and (GresUsed) indexes. Other GRES (`shard`, `mps`) → undefined. */
function parseGpuGres(item: string): { type: string; count: number; indexes: number[] | null } | undefined {
  const match = /^gpu(?::([^:(]+))?:(\d+)(?:\((.*)\))?$/.exec(item);
  if (!match) return undefined;
  const idx = /IDX:([^)]*)/.exec(match[3] ?? '')?.[1];
  return { type: match[1] ?? 'gpu', count: Number(match[2]), indexes: idx === undefined ? null : parseIndexes(idx) };
}

/** The nodes of `sinfo` output (SINFO_GPU_ARGS), each once with all of its partitions. Lines it cannot read go to `warnings`. */
export function parseSinfoGres(stdout: string): { nodes: SlurmNodeGres[]; warnings: string[] } {
  const byNode = new Map<string, SlurmNodeGres>();
  const warnings: string[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split('|').map((f) => f.trim());
    const [node, partition, gres, gresUsed, state] = fields;
    if (!node || partition === undefined || gres === undefined || gresUsed === undefined) {
      warnings.push(`sinfo line not understood: ${line.trim().slice(0, 200)}`);
      continue;
    }
    let entry = byNode.get(node);
    if (!entry) {
      const used = new Map<string, { count: number; indexes: number[] | null }>();
      for (const item of splitGres(gresUsed)) {
        const gpu = parseGpuGres(item);
        if (gpu) used.set(gpu.type, { count: gpu.count, indexes: gpu.indexes });
      }
      const gpus = splitGres(gres).flatMap((item) => {
        const gpu = parseGpuGres(item.replace(/\(.*\)$/, ''));
        if (!gpu) return [];
        const u = used.get(gpu.type);
        return [{ type: gpu.type, count: gpu.count, used: u?.count ?? 0, usedIndexes: u?.indexes ?? null }];
      });
      entry = { node, partitions: [], state: state ?? '', gpus };
      byNode.set(node, entry);
    }
    const name = partition.replace(/\*$/, '');
    if (name && !entry.partitions.includes(name)) entry.partitions.push(name);
  }
  return { nodes: [...byNode.values()], warnings };
}

/**
 * The cluster's GPUs, one GpuInfo each: numbered across the cluster in node order, named by
 * their GRES type, with their node, its partitions and whether a job holds them. Slurm does not
 * report memory, utilisation or temperature: those are null.
 */
export function gpusOf(nodes: readonly SlurmNodeGres[]): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const node of nodes) {
    let local = 0;
    for (const kind of node.gpus) {
      for (let i = 0; i < kind.count; i++, local++) {
        // Slurm's indexes are per node, over all of its GPUs; without them, the first `used` count as held.
        const allocated = kind.usedIndexes ? kind.usedIndexes.includes(local) : i < kind.used;
        gpus.push({
          index: gpus.length,
          uuid: `slurm:${node.node}:${local}`,
          name: kind.type,
          memoryUsedMiB: null,
          memoryTotalMiB: null,
          utilizationPct: null,
          temperatureC: null,
          node: node.node,
          partitions: [...node.partitions],
          allocated,
        });
      }
    }
  }
  return gpus;
}

/**
 * The machine's GPU probe on a Slurm login node: the cluster's GPUs from `sinfo` (GRES and
 * GRES in use), by node and partition. A GPU is free when no job holds it.
 */
export class SlurmGpuProbe implements GpuProbe {
  readonly #commands: SlurmCommands;

  constructor(commands: SlurmCommands) {
    this.#commands = commands;
  }

  async probe(): Promise<GpuProbeResult> {
    const probedAt = Date.now();
    let result;
    try {
      result = await this.#commands.run('sinfo', SINFO_GPU_ARGS);
    } catch (error) {
      return { available: false, reason: error instanceof Error ? error.message : String(error), gpus: [], processes: [], probedAt };
    }
    if (result.code !== 0) return { available: false, reason: `sinfo failed: ${slurmMessage(result)}`, gpus: [], processes: [], probedAt };
    const { nodes, warnings } = parseSinfoGres(result.stdout);
    return { available: true, gpus: gpusOf(nodes), processes: [], probedAt, ...(warnings.length > 0 ? { warnings } : {}) };
  }

  /** Resolves once a GPU (of `gpuIndexes`, if given) is held by no job; GATE_TIMEOUT / ABORTED as every probe. */
  waitFree(gateInput: GpuGateOptions, signal?: AbortSignal): Promise<GpuWaitResult> {
    const parsed = GpuGateOptions.safeParse(gateInput);
    if (!parsed.success) return Promise.reject(new TetherError('INVALID_ARGUMENT', `invalid GPU gate: ${parsed.error.issues[0]!.message}`));
    const gate = parsed.data;
    const started = performance.now();
    return new Promise((resolve, reject) => {
      let timer: LongTimer | undefined;
      let done = false;
      let last = 'no probe finished yet';
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        timer?.clear();
        deadline?.clear();
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = () => finish(() => reject(new TetherError('ABORTED', 'the wait for a free GPU was aborted')));
      const deadline =
        gate.timeoutMs === undefined
          ? undefined
          : setLongTimeout(() => finish(() => reject(new TetherError('GATE_TIMEOUT', `no GPU of the cluster became free within ${gate.timeoutMs} ms (${last})`, { timeoutMs: gate.timeoutMs }))), gate.timeoutMs);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const poll = async () => {
        const result = await this.probe();
        if (done) return;
        const candidates = gate.gpuIndexes ? result.gpus.filter((g) => gate.gpuIndexes!.includes(g.index)) : result.gpus;
        const free = candidates.filter((g) => !g.allocated);
        if (result.available && free.length > 0) return finish(() => resolve({ waitedMs: Math.round(performance.now() - started), gpus: free }));
        last = !result.available ? (result.reason ?? 'sinfo failed') : candidates.length === 0 ? 'no GPUs in the cluster' : `all ${candidates.length} GPUs held by jobs`;
        timer = setLongTimeout(() => void poll(), gate.pollMs);
      };
      void poll();
    });
  }
}
