import { describe, expect, it } from 'vitest';
import { gpusOf, parseSinfoGres } from './slurmGpus.js';

// `sinfo -h -N -O NodeList:256|,Partition:256|,Gres:1024|,GresUsed:1024|,StateLong:64` as Slurm
// 22.05 prints it (columns padded), on a test node and in the shapes larger clusters show.
const pad = (cells: string[]) => cells.map((c, i) => (i < 4 ? `${c.padEnd(30)}|` : c.padEnd(20))).join('');
const captured = [
  pad(['vm', 'debug*', 'gpu:fake:2', 'gpu:fake:0(IDX:N/A)', 'idle']),
  pad(['vm', 'gpu', 'gpu:fake:2', 'gpu:fake:0(IDX:N/A)', 'idle']),
  pad(['gn01', 'gpu', 'gpu:a100:4(S:0-1)', 'gpu:a100:3(IDX:0-1,3)', 'mixed']),
  pad(['gn02', 'gpu', 'gpu:a100:2(S:0),gpu:v100:2(S:1)', 'gpu:a100:0(IDX:N/A),gpu:v100:1(IDX:3)', 'mixed']),
  pad(['gn03', 'long', 'gpu:2', 'gpu:2', 'allocated']),
  pad(['cpu01', 'debug*', '(null)', 'gpu:0', 'idle']),
].join('\n');

describe('the cluster\'s GPUs from sinfo', () => {
  it('lists each node once with its partitions and its GPUs by type, and which a job holds', () => {
    const { nodes, warnings } = parseSinfoGres(captured);
    expect(warnings).toEqual([]);
    expect(nodes.map((n) => [n.node, n.partitions, n.state])).toEqual([
      ['vm', ['debug', 'gpu'], 'idle'],
      ['gn01', ['gpu'], 'mixed'],
      ['gn02', ['gpu'], 'mixed'],
      ['gn03', ['long'], 'allocated'],
      ['cpu01', ['debug'], 'idle'],
    ]);
    expect(nodes[2]!.gpus).toEqual([
      { type: 'a100', count: 2, used: 0, usedIndexes: null },
      { type: 'v100', count: 2, used: 1, usedIndexes: [3] },
    ]);
    const gpus = gpusOf(nodes);
    expect(gpus).toHaveLength(2 + 4 + 4 + 2);
    expect(gpus.map((g) => g.index)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    const on = (node: string) => gpus.filter((g) => g.node === node).map((g) => [g.name, g.allocated]);
    expect(on('vm')).toEqual([['fake', false], ['fake', false]]);
    expect(on('gn01')).toEqual([['a100', true], ['a100', true], ['a100', false], ['a100', true]]);
    expect(on('gn02')).toEqual([['a100', false], ['a100', false], ['v100', false], ['v100', true]]);
    // No indexes given: the used count is what is held.
    expect(on('gn03')).toEqual([['gpu', true], ['gpu', true]]);
    expect(on('cpu01')).toEqual([]);
    expect(gpus[0]).toEqual({
      index: 0, uuid: 'slurm:vm:0', name: 'fake', node: 'vm', partitions: ['debug', 'gpu'], allocated: false,
      memoryUsedMiB: null, memoryTotalMiB: null, utilizationPct: null, temperatureC: null,
    });
  });

  it('a cluster without GPUs has none; a line it cannot read is a warning, not a GPU', () => {
    const none = parseSinfoGres(`${pad(['c1', 'batch*', '(null)', 'gpu:0', 'idle'])}\n${pad(['c2', 'batch*', '(null)', '(null)', 'idle'])}\n`);
    expect(gpusOf(none.nodes)).toEqual([]);
    expect(none.nodes).toHaveLength(2);
    const odd = parseSinfoGres('garbage without columns\n');
    expect(odd.nodes).toEqual([]);
    expect(odd.warnings[0]).toMatch(/not understood/);
  });
});
