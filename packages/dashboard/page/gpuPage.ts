// GPUs of one machine: utilisation and memory over time (uPlot), compute processes, and the
// executions a GPU gate holds queued. Samples are kept for the time the page is open.
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { getJson, machinePath, type Gpu, type Row } from './api.js';
import { when } from './format.js';

interface GpuAnswer {
  probe: { available: boolean; reason?: string; gpus: Gpu[]; processes: Array<{ pid: number; gpuUuid: string; usedMemoryMiB: number | null }>; probedAt: number; warnings?: string[] };
  gated: Array<Row & { gate?: Record<string, unknown> }>;
}

/** Samples kept per GPU (at one every 2 s: 20 minutes). */
const HISTORY = 600;
const POLL_MS = 2000;

export function GpuPage({ machine }: { machine: string }) {
  const [names, setNames] = useState<string[]>([]);
  const [answer, setAnswer] = useState<GpuAnswer | undefined>();
  const [error, setError] = useState<string | undefined>();
  const history = useRef(new Map<string, { t: number[]; util: Array<number | null>; mem: Array<number | null> }>());
  const [tick, setTick] = useState(0);
  const selected = machine || names[0] || '';

  useEffect(() => {
    getJson<{ machines: string[] }>('/api/machines').then((r) => setNames(r.machines), () => undefined);
  }, []);

  useEffect(() => {
    if (!selected) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const result = await getJson<GpuAnswer>(machinePath(selected, 'gpu'));
        if (stopped) return;
        for (const gpu of result.probe.gpus) {
          let h = history.current.get(gpu.uuid);
          if (!h) history.current.set(gpu.uuid, (h = { t: [], util: [], mem: [] }));
          const t = result.probe.probedAt / 1000;
          if (h.t.at(-1) === t) continue; // a cached answer: the same sample
          h.t.push(t);
          h.util.push(gpu.utilizationPct);
          h.mem.push(gpu.memoryUsedMiB !== null && gpu.memoryTotalMiB ? (100 * gpu.memoryUsedMiB) / gpu.memoryTotalMiB : null);
          if (h.t.length > HISTORY) for (const a of [h.t, h.util, h.mem]) a.shift();
        }
        setAnswer(result);
        setError(undefined);
        setTick((n) => n + 1);
      } catch (e) {
        if (!stopped) setError((e as Error).message);
      } finally {
        if (!stopped) timer = setTimeout(poll, POLL_MS);
      }
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [selected]);

  const probe = answer?.probe;
  return html`<h1>GPUs</h1>
    <div class="filters"><label>machine <select data-testid="gpu-machine" value=${selected} onChange=${(e: Event) => (location.hash = `#/gpus?machine=${encodeURIComponent((e.target as HTMLSelectElement).value)}`)}>
      ${names.map((n) => html`<option value=${n}>${n}</option>`)}
    </select></label></div>
    ${error ? html`<div class="error">${error}</div>` : null}
    ${probe && !probe.available ? html`<p class="muted" data-testid="gpu-unavailable">no GPUs: ${probe.reason ?? 'unavailable'}</p>` : null}
    <div class="gpus">
      ${probe?.gpus.map((gpu) => html`<${GpuCard} key=${gpu.uuid} gpu=${gpu} history=${history.current.get(gpu.uuid)} tick=${tick} processes=${probe.processes.filter((p) => p.gpuUuid === gpu.uuid)} />`)}
    </div>
    <h2>Executions waiting for a GPU</h2>
    <table class="grid" data-testid="gpu-gated">
      <thead><tr><th>id</th><th>command</th><th>queued since</th><th>gate</th></tr></thead>
      <tbody>
        ${answer?.gated.map(
          (row) => html`<tr data-testid="gated-row"><td><a href=${`#/exec/${encodeURIComponent(row.machine)}/${encodeURIComponent(row.id)}`}>${row.id}</a></td><td class="cmd">${row.command}</td><td>${when(row.requestedAt)}</td><td class="cmd">${JSON.stringify(row.gate ?? {})}</td></tr>`,
        )}
      </tbody>
    </table>
    ${answer && answer.gated.length === 0 ? html`<p class="muted">none</p>` : null}`;
}

function GpuCard({ gpu, history, tick, processes }: { gpu: Gpu; history?: { t: number[]; util: Array<number | null>; mem: Array<number | null> }; tick: number; processes: GpuAnswer['probe']['processes'] }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | undefined>(undefined);
  useEffect(() => {
    if (!box.current) return;
    chart.current = new uPlot(
      {
        width: 520,
        height: 200,
        scales: { y: { range: [0, 100] } },
        axes: [{}, { label: '%' }],
        series: [{}, { label: 'utilisation %', stroke: '#2a7ae2', width: 2 }, { label: 'memory %', stroke: '#d9822b', width: 2 }],
      },
      [[], [], []],
      box.current,
    );
    return () => chart.current?.destroy();
  }, []);
  useEffect(() => {
    if (history) chart.current?.setData([history.t, history.util, history.mem]);
  }, [tick]);
  return html`<div class="gpu" data-testid="gpu-card" data-index=${gpu.index} data-samples=${history?.t.length ?? 0}>
    <h3>GPU ${gpu.index}: ${gpu.name}</h3>
    <p>utilisation ${gpu.utilizationPct ?? 'n/a'} % · memory ${gpu.memoryUsedMiB ?? 'n/a'} / ${gpu.memoryTotalMiB ?? 'n/a'} MiB · ${gpu.temperatureC ?? 'n/a'} °C</p>
    <div class="chart" ref=${box}></div>
    <table class="grid small"><thead><tr><th>pid</th><th>memory</th></tr></thead><tbody>
      ${processes.map((p) => html`<tr data-testid="gpu-process"><td>${p.pid}</td><td>${p.usedMemoryMiB ?? 'n/a'} MiB</td></tr>`)}
    </tbody></table>
    ${processes.length === 0 ? html`<p class="muted">no compute processes</p>` : null}
  </div>`;
}
