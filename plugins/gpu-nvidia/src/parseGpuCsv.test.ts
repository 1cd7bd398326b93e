import { describe, expect, it } from 'vitest';
import { fixture } from '../test/fakeNvidiaSmi.js';
import { formatParseIssue, parseComputeAppsCsv, parseGpuCsv } from './parseGpuCsv.js';

describe('parseGpuCsv on recorded output', () => {
  it('reads a single A100', () => {
    expect(parseGpuCsv(fixture('a100-single.gpu.csv'))).toEqual({
      gpus: [
        {
          index: 0,
          uuid: 'GPU-4b8e1d2c-6f3a-9c1e-2a7d-5e0f8b3c9a14',
          name: 'NVIDIA A100-SXM4-80GB',
          memoryUsedMiB: 3,
          memoryTotalMiB: 81920,
          utilizationPct: 0,
          temperatureC: 31,
        },
      ],
      issues: [],
    });
  });

  it('reads 8× H100 in order', () => {
    const { gpus, issues } = parseGpuCsv(fixture('h100x8.gpu.csv'));
    expect(issues).toEqual([]);
    expect(gpus.map((g) => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(gpus.map((g) => g.uuid)).size).toBe(8);
    expect(gpus.every((g) => g.name === 'NVIDIA H100 80GB HBM3' && g.memoryTotalMiB === 81559)).toBe(true);
    expect(gpus[6]).toMatchObject({ memoryUsedMiB: 18932, utilizationPct: 41, temperatureC: 52 });
  });

  it('gives null, not a number, for memory a unified-memory GH200 reports as [N/A]', () => {
    const { gpus, issues } = parseGpuCsv(fixture('gh200.gpu.csv'));
    expect(issues).toEqual([]);
    expect(gpus).toEqual([
      expect.objectContaining({ name: 'NVIDIA GH200 480GB', memoryUsedMiB: null, memoryTotalMiB: null, utilizationPct: 0, temperatureC: 29 }),
    ]);
  });

  it('gives null for [Not Supported] fields without reporting them as problems', () => {
    const { gpus, issues } = parseGpuCsv(fixture('not-supported.gpu.csv'));
    expect(issues).toEqual([]);
    expect(gpus[0]).toMatchObject({ name: 'NVIDIA GeForce GT 710', memoryUsedMiB: 231, utilizationPct: null, temperatureC: 41 });
    expect(gpus[1]).toMatchObject({ name: 'Tesla K80', utilizationPct: 0, temperatureC: null });
  });

  it('handles CRLF output from Windows nvidia-smi', () => {
    const text = fixture('windows-rtx4090.gpu.csv');
    expect(text).toContain('\r\n');
    const { gpus, issues } = parseGpuCsv(text);
    expect(issues).toEqual([]);
    expect(gpus).toEqual([expect.objectContaining({ name: 'NVIDIA GeForce RTX 4090', temperatureC: 45 })]);
  });

  it('keeps the good GPUs and reports a line for a GPU that fell off the bus', () => {
    const { gpus, issues } = parseGpuCsv(fixture('gpu-lost.gpu.csv'));
    expect(gpus.map((g) => g.name)).toEqual(['NVIDIA A100-PCIE-40GB']);
    expect(issues).toEqual([
      {
        line: 2,
        text: 'Unable to determine the device handle for GPU0000:81:00.0: Unknown Error',
        problem: expect.stringContaining('expected 7'),
      },
    ]);
    expect(formatParseIssue(issues[0]!)).toMatch(/^line 2: .*Unable to determine/);
  });

  it('reads nothing from the driver-failure text, without throwing', () => {
    const { gpus, issues } = parseGpuCsv(fixture('driver-failure.txt'));
    expect(gpus).toEqual([]);
    expect(issues).toHaveLength(1);
  });
});

describe('parseGpuCsv edge cases', () => {
  it('keeps commas inside the name: two fields from the left, four from the right', () => {
    const { gpus, issues } = parseGpuCsv('3, GPU-aaaa-bbbb, Acme, Inc. Compute,Model 9 , 10, 100, 5, 40\n');
    expect(issues).toEqual([]);
    expect(gpus).toEqual([
      {
        index: 3,
        uuid: 'GPU-aaaa-bbbb',
        name: 'Acme, Inc. Compute,Model 9',
        memoryUsedMiB: 10,
        memoryTotalMiB: 100,
        utilizationPct: 5,
        temperatureC: 40,
      },
    ]);
  });

  it('turns N/A, blank and other [markers] into null', () => {
    const { gpus, issues } = parseGpuCsv('1, GPU-x1, Some GPU, N/A, , [Unknown Error], Not Supported\n');
    expect(issues).toEqual([]);
    expect(gpus[0]).toMatchObject({ memoryUsedMiB: null, memoryTotalMiB: null, utilizationPct: null, temperatureC: null });
  });

  it('reports a metric that is not a number and leaves it null rather than guessing', () => {
    const { gpus, issues } = parseGpuCsv('0, GPU-x1, Some GPU, 12 MiB, -5, 7.5, 40\n');
    expect(gpus[0]).toMatchObject({ memoryUsedMiB: null, memoryTotalMiB: null, utilizationPct: 7.5, temperatureC: 40 });
    expect(issues.map((i) => i.problem)).toEqual(['memory.used is not a number: "12 MiB"', 'memory.total is not a number: "-5"']);
  });

  it('tolerates trailing whitespace, blank lines and a missing final newline', () => {
    const { gpus, issues } = parseGpuCsv('\n  0, GPU-a, A, 1, 2, 3, 4   \r\n\n\t1, GPU-b, B, 5, 6, 7, 8');
    expect(issues).toEqual([]);
    expect(gpus.map((g) => [g.index, g.name, g.temperatureC])).toEqual([
      [0, 'A', 4],
      [1, 'B', 8],
    ]);
  });

  it('reports a header line, a bad index, a bad uuid and an empty name', () => {
    const { gpus, issues } = parseGpuCsv(
      [
        'index, uuid, name, memory.used [MiB], memory.total [MiB], utilization.gpu [%], temperature.gpu',
        'x, GPU-a, A, 1, 2, 3, 4',
        '0, GPU with space, A, 1, 2, 3, 4',
        '0, GPU-a, , 1, 2, 3, 4',
        '0, GPU-a, Fine, 1, 2, 3, 4',
      ].join('\n'),
    );
    expect(gpus.map((g) => g.name)).toEqual(['Fine']);
    expect(issues.map((i) => [i.line, i.problem])).toEqual([
      [1, 'the GPU index is not a whole number'],
      [2, 'the GPU index is not a whole number'],
      [3, 'the GPU uuid is missing or malformed'],
      [4, 'the GPU name is empty'],
    ]);
  });

  it('survives arbitrary garbage and clips long lines in reports', () => {
    const long = 'x'.repeat(1000);
    const { gpus, issues } = parseGpuCsv(`\u0000\u00ff,,,\n${long}\n,,,,,,,,,,\n`);
    expect(gpus).toEqual([]);
    expect(issues).toHaveLength(3);
    expect(issues[1]!.text.length).toBeLessThanOrEqual(201);
  });

  it('reads empty output as no GPUs and no issues', () => {
    expect(parseGpuCsv('')).toEqual({ gpus: [], issues: [] });
    expect(parseGpuCsv('\r\n \n')).toEqual({ gpus: [], issues: [] });
  });
});

describe('parseComputeAppsCsv', () => {
  it('reads the processes of a busy 8× H100 box', () => {
    const { processes, issues } = parseComputeAppsCsv(fixture('h100x8.apps.csv'));
    expect(issues).toEqual([]);
    expect(processes).toHaveLength(6);
    expect(processes[4]).toEqual({ pid: 3310442, gpuUuid: 'GPU-6dbc9a7e-dd18-4f6e-92c7-8fe0aec17cd6', usedMemoryMiB: 18924 });
  });

  it('gives null for used memory reported as [N/A] (unified memory, WDDM) and handles CRLF', () => {
    expect(parseComputeAppsCsv(fixture('gh200.apps.csv')).processes).toEqual([
      { pid: 118204, gpuUuid: 'GPU-9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d', usedMemoryMiB: null },
    ]);
    const windows = parseComputeAppsCsv(fixture('windows-rtx4090.apps.csv'));
    expect(windows.issues).toEqual([]);
    expect(windows.processes.map((p) => [p.pid, p.usedMemoryMiB])).toEqual([
      [14220, null],
      [9876, null],
    ]);
  });

  it('reads no processes from empty output or a "No running processes found" line', () => {
    expect(parseComputeAppsCsv(fixture('no-apps.apps.csv'))).toEqual({ processes: [], issues: [] });
    expect(parseComputeAppsCsv(fixture('no-running-processes.apps.txt'))).toEqual({ processes: [], issues: [] });
  });

  it('reports malformed lines and keeps the rest', () => {
    const { processes, issues } = parseComputeAppsCsv(
      ['0, GPU-a, 10', 'abc, GPU-a, 10', '12, GPU-a', '13, GPU-a, lots', '14, GPU-b, 20'].join('\n'),
    );
    expect(processes).toEqual([
      { pid: 13, gpuUuid: 'GPU-a', usedMemoryMiB: null },
      { pid: 14, gpuUuid: 'GPU-b', usedMemoryMiB: 20 },
    ]);
    expect(issues.map((i) => i.line)).toEqual([1, 2, 3, 4]);
  });
});
