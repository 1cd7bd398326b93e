import type { GpuInfo, GpuProcess } from '@tether/core';

/**
 * The `--query-gpu` fields the probe asks for, in the order `parseGpuCsv` expects them.
 * `name` is third because it is the one field that may contain a comma: nvidia-smi does not
 * quote, so the parser takes two fields from the left and four from the right.
 */
export const GPU_QUERY_FIELDS = [
  'index',
  'uuid',
  'name',
  'memory.used',
  'memory.total',
  'utilization.gpu',
  'temperature.gpu',
] as const;

/** The `--query-compute-apps` fields the probe asks for, in the order `parseComputeAppsCsv` expects them. */
export const COMPUTE_APPS_QUERY_FIELDS = ['pid', 'gpu_uuid', 'used_memory'] as const;

/** A line of nvidia-smi output that was skipped, or a value that could not be read. */
export interface ParseIssue {
  /** 1-based line number in the output. */
  readonly line: number;
  /** The offending line, trimmed and clipped to 200 characters. */
  readonly text: string;
  /** What was wrong with it. */
  readonly problem: string;
}

export interface GpuCsvParse {
  /** One entry per well-formed line, in output order. */
  readonly gpus: GpuInfo[];
  /** Lines that were skipped, and metrics that were neither a number nor a known "not available" marker. */
  readonly issues: ParseIssue[];
}

export interface ComputeAppsCsvParse {
  /** One entry per well-formed line; empty when nothing runs. */
  readonly processes: GpuProcess[];
  readonly issues: ParseIssue[];
}

/**
 * Parse `nvidia-smi --query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu,temperature.gpu
 * --format=csv,noheader,nounits`. Pure; never throws.
 *
 * - Metrics shown as `[N/A]`, `N/A`, `[Not Supported]`, any other `[...]` marker, or blank become
 *   `null`; a metric that is anything else non-numeric also becomes `null` and is reported.
 * - A line without the seven fields, or whose index/uuid/name is unusable (a warning nvidia-smi
 *   printed, "Unable to determine the device handle…") is skipped and reported.
 * - CRLF line ends, surrounding whitespace and blank lines are tolerated.
 *
 * @example parseGpuCsv('0, GPU-1a2b…, NVIDIA A100-SXM4-80GB, 3, 81920, 0, 31\n').gpus[0].memoryTotalMiB // 81920
 */
export function parseGpuCsv(output: string): GpuCsvParse {
  const gpus: GpuInfo[] = [];
  const issues: ParseIssue[] = [];
  forEachLine(output, (text, line) => {
    const raw = text.split(',');
    const fields = raw.map((f) => f.trim());
    if (fields.length < GPU_QUERY_FIELDS.length) {
      issues.push(issue(line, text, `expected ${GPU_QUERY_FIELDS.length} comma-separated fields, found ${fields.length}`));
      return;
    }
    const index = parseCount(fields[0]);
    const uuid = fields[1] ?? '';
    const name = raw.slice(2, -4).join(',').trim();
    if (index === null) {
      issues.push(issue(line, text, 'the GPU index is not a whole number'));
      return;
    }
    if (!isIdentifier(uuid)) {
      issues.push(issue(line, text, 'the GPU uuid is missing or malformed'));
      return;
    }
    if (name === '') {
      issues.push(issue(line, text, 'the GPU name is empty'));
      return;
    }
    const [memoryUsed, memoryTotal, utilization, temperature] = fields.slice(-4);
    const metric = (value: string | undefined, field: string): number | null => {
      const read = parseMetric(value);
      if (read === undefined) {
        issues.push(issue(line, text, `${field} is not a number: "${value ?? ''}"`));
        return null;
      }
      return read;
    };
    gpus.push({
      index,
      uuid,
      name,
      memoryUsedMiB: metric(memoryUsed, 'memory.used'),
      memoryTotalMiB: metric(memoryTotal, 'memory.total'),
      utilizationPct: metric(utilization, 'utilization.gpu'),
      temperatureC: metric(temperature, 'temperature.gpu'),
    });
  });
  return { gpus, issues };
}

/**
 * Parse `nvidia-smi --query-compute-apps=pid,gpu_uuid,used_memory --format=csv,noheader,nounits`.
 * Pure; never throws. Empty output and a "No running processes found" line mean no processes.
 * `used_memory` shown as `[N/A]` (WDDM, MIG, unified memory) becomes `null`. Other lines that are
 * not `pid, uuid, memory` are skipped and reported.
 */
export function parseComputeAppsCsv(output: string): ComputeAppsCsvParse {
  const processes: GpuProcess[] = [];
  const issues: ParseIssue[] = [];
  forEachLine(output, (text, line) => {
    if (/^no running (compute )?processes found/i.test(text)) return;
    const fields = text.split(',').map((f) => f.trim());
    if (fields.length !== COMPUTE_APPS_QUERY_FIELDS.length) {
      issues.push(issue(line, text, `expected ${COMPUTE_APPS_QUERY_FIELDS.length} comma-separated fields, found ${fields.length}`));
      return;
    }
    const [pidField, gpuUuid = '', usedMemory] = fields;
    const pid = parseCount(pidField);
    if (pid === null || pid === 0) {
      issues.push(issue(line, text, 'the pid is not a positive whole number'));
      return;
    }
    if (!isIdentifier(gpuUuid)) {
      issues.push(issue(line, text, 'the GPU uuid is missing or malformed'));
      return;
    }
    let usedMemoryMiB = parseMetric(usedMemory);
    if (usedMemoryMiB === undefined) {
      issues.push(issue(line, text, `used_memory is not a number: "${usedMemory ?? ''}"`));
      usedMemoryMiB = null;
    }
    processes.push({ pid, gpuUuid, usedMemoryMiB });
  });
  return { processes, issues };
}

/** Describe an issue in one line, for a `reason` or a warning. */
export function formatParseIssue(issue: ParseIssue): string {
  return `line ${issue.line}: ${issue.problem} (${JSON.stringify(issue.text)})`;
}

function forEachLine(output: string, fn: (text: string, line: number) => void): void {
  const lines = output.split(/\r?\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const text = (lines[i] ?? '').trim();
    if (text !== '') fn(text, i + 1);
  }
}

function issue(line: number, text: string, problem: string): ParseIssue {
  return { line, text: text.length > 200 ? `${text.slice(0, 200)}…` : text, problem };
}

/** A non-negative integer written in decimal, or null. */
function parseCount(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,15}$/.test(value)) return null;
  return Number(value);
}

/**
 * A metric: a non-negative decimal number, `null` for the markers nvidia-smi prints when it has
 * no value (`[N/A]`, `N/A`, `[Not Supported]`, `[Unknown Error]`, blank), or `undefined` when it
 * is something else.
 */
function parseMetric(value: string | undefined): number | null | undefined {
  if (value === undefined || value === '') return null;
  if (/^\[[^\]]*\]$/.test(value) || /^(n\/a|not supported)$/i.test(value)) return null;
  if (!/^\d{1,15}(\.\d+)?$/.test(value)) return undefined;
  return Number(value);
}

/** uuids look like `GPU-8f3c…` or `MIG-…`: one token, no spaces. */
function isIdentifier(value: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/.test(value);
}
