import type { Row } from './api.js';

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function duration(ms: number | null): string {
  if (ms === null || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

export function rowDuration(row: Row, now: number): string {
  if (row.startedAt === null) return '';
  return duration((row.finishedAt ?? now) - row.startedAt);
}

export function when(ms: number | null): string {
  if (ms === null) return '';
  const d = new Date(ms);
  const today = new Date();
  return d.toDateString() === today.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

/** `running`, `queued (GPU gate)`, or the end reason with its code. */
export function outcome(row: Row): string {
  if (row.status === 'queued') return row.gpuGate ? 'queued (GPU gate)' : 'queued';
  if (row.status === 'running') return 'running';
  switch (row.endReason) {
    case 'exited':
      return `exited ${row.exitCode}`;
    case 'signaled':
      return `signaled ${row.signal ?? ''}`.trim();
    default:
      return row.endReason ?? 'finished';
  }
}

export function outcomeClass(row: Row): string {
  if (row.status !== 'finished') return `st-${row.status}`;
  return row.endReason === 'exited' && row.exitCode === 0 ? 'st-ok' : 'st-bad';
}
