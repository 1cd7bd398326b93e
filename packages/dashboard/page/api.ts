// Calls to the dashboard's own server (same origin, the session cookie goes along by itself).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function answer<T>(response: Response): Promise<T> {
  const body = (await response.json().catch(() => undefined)) as { error?: { code: string; message: string } } | undefined;
  if (!response.ok) throw new ApiError(response.status, body?.error?.code ?? 'HTTP', body?.error?.message ?? `HTTP ${response.status}`);
  return body as T;
}

export async function getJson<T>(path: string, params: Record<string, string | number | undefined> = {}): Promise<T> {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '') query.set(key, String(value));
  const qs = query.toString();
  return answer<T>(await fetch(qs ? `${path}?${qs}` : path, { credentials: 'same-origin', headers: { accept: 'application/json' } }));
}

export async function postJson<T>(path: string, body: unknown = {}): Promise<T> {
  return answer<T>(
    await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
    }),
  );
}

export function machinePath(machine: string, ...rest: string[]): string {
  return ['/api/machines', machine, ...rest].map((p, i) => (i === 0 ? p : encodeURIComponent(p))).join('/');
}

export interface Row {
  machine: string;
  id: string;
  status: 'queued' | 'running' | 'finished';
  endReason: string | null;
  exitCode: number | null;
  signal: string | null;
  command: string;
  requestedAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  bytes: { stdout: number; stderr: number; pty: number };
  truncatedBytes: number;
  gpuGate: boolean;
}

export interface Gpu {
  index: number;
  uuid: string;
  name: string;
  memoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
  utilizationPct: number | null;
  temperatureC: number | null;
}

export interface MachineStatus {
  name: string;
  transport: string | null;
  ssh_ok: boolean | null;
  daemon_ok: boolean;
  latency_ms: number | null;
  checked_at: string;
  daemon_version?: string;
  error?: string;
  gpu: { available: boolean; reason: string | null; count: number; gpus: Gpu[]; processes: number } | null;
}
