// The dashboard's page: machines, executions, one execution with its live log, GPUs. Routes
// live in the URL's hash (#/executions?machine=gpu1&status=running) so a reload or a shared
// link opens the same view. Every value from a machine is rendered by preact as text.
import { html, render } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, getJson, machinePath, postJson, type MachineStatus, type Row } from './api.js';
import { bytes, outcome, outcomeClass, rowDuration, when } from './format.js';
import { GpuPage } from './gpuPage.js';
import { LogView } from './logView.js';

interface Route {
  readonly page: string;
  readonly parts: readonly string[];
  readonly params: URLSearchParams;
}

function currentRoute(): Route {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path = '', query = ''] = hash.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] ?? 'machines', parts: parts.slice(1), params: new URLSearchParams(query) };
}

export function go(page: string, parts: readonly string[] = [], params: Record<string, string | undefined> = {}): void {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) query.set(k, v);
  const qs = query.toString();
  location.hash = `#/${[page, ...parts].map(encodeURIComponent).join('/')}${qs ? `?${qs}` : ''}`;
}

function href(page: string, parts: readonly string[] = [], params: Record<string, string | undefined> = {}): string {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) query.set(k, v);
  const qs = query.toString();
  return `#/${[page, ...parts].map(encodeURIComponent).join('/')}${qs ? `?${qs}` : ''}`;
}

/** Re-runs `fn` every `ms` while mounted (and at once). */
function usePoll(fn: () => Promise<void> | void, ms: number, deps: unknown[]): void {
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        await fn();
      } finally {
        if (!stopped) timer = setTimeout(tick, ms);
      }
    };
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, deps);
}

function useMachineNames(): string[] {
  const [names, setNames] = useState<string[]>([]);
  useEffect(() => {
    getJson<{ machines: string[] }>('/api/machines').then((r) => setNames(r.machines), () => undefined);
  }, []);
  return names;
}

function App() {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const tab = (page: string, label: string) => html`<a href=${href(page)} class=${route.page === page || (page === 'executions' && route.page === 'exec') ? 'active' : ''} data-testid=${`nav-${page}`}>${label}</a>`;
  let body;
  switch (route.page) {
    case 'executions':
      body = html`<${ExecutionsPage} key=${location.hash} params=${route.params} />`;
      break;
    case 'exec':
      body = html`<${ExecutionPage} key=${route.parts.join('/')} machine=${route.parts[0] ?? ''} id=${route.parts[1] ?? ''} />`;
      break;
    case 'gpus':
      body = html`<${GpuPage} key=${route.params.get('machine') ?? ''} machine=${route.params.get('machine') ?? ''} />`;
      break;
    default:
      body = html`<${MachinesPage} />`;
  }
  return html`<header><span class="brand">tether</span><nav>${tab('machines', 'Machines')}${tab('executions', 'Executions')}${tab('gpus', 'GPUs')}</nav></header><main>${body}</main>`;
}

function ok(value: boolean | null): unknown {
  if (value === null) return html`<span class="muted">–</span>`;
  return value ? html`<span class="st-ok">ok</span>` : html`<span class="st-bad">fail</span>`;
}

function MachinesPage() {
  const names = useMachineNames();
  const [statuses, setStatuses] = useState<Record<string, MachineStatus>>({});
  usePoll(
    async () => {
      await Promise.all(
        names.map(async (name) => {
          const status = await getJson<MachineStatus>(machinePath(name, 'status')).catch(
            (error: Error): MachineStatus => ({ name, transport: null, ssh_ok: null, daemon_ok: false, latency_ms: null, checked_at: new Date().toISOString(), error: error.message, gpu: null }),
          );
          setStatuses((s) => ({ ...s, [name]: status }));
        }),
      );
    },
    5000,
    [names.join('\n')],
  );
  return html`<h1>Machines</h1>
    <table class="grid" data-testid="machines">
      <thead><tr><th>machine</th><th>transport</th><th>ssh</th><th>daemon</th><th>latency</th><th>version</th><th>GPUs</th><th>checked</th><th></th></tr></thead>
      <tbody>
        ${names.map((name) => {
          const s = statuses[name];
          const gpu = s?.gpu;
          return html`<tr data-testid="machine-row" data-machine=${name} data-daemon-ok=${s ? String(s.daemon_ok) : 'pending'}>
            <td><a href=${href('executions', [], { machine: name })}>${name}</a></td>
            <td>${s?.transport ?? ''}</td>
            <td>${s ? ok(s.ssh_ok) : '…'}</td>
            <td>${s ? ok(s.daemon_ok) : '…'}${s?.error ? html`<div class="error">${s.error}</div>` : null}</td>
            <td>${s?.latency_ms != null ? `${s.latency_ms} ms` : ''}</td>
            <td>${s?.daemon_version ?? ''}</td>
            <td>${gpu === null || gpu === undefined ? '' : gpu.available ? html`<a href=${href('gpus', [], { machine: name })}>${gpu.gpus.map((g) => `${g.name}: ${g.utilizationPct ?? '?'} %, ${g.memoryUsedMiB ?? '?'}/${g.memoryTotalMiB ?? '?'} MiB`).join('; ')}</a>` : html`<span class="muted">${gpu.reason ?? 'none'}</span>`}</td>
            <td class="muted">${s ? new Date(s.checked_at).toLocaleTimeString() : ''}</td>
            <td><a href=${href('executions', [], { machine: name })}>executions</a></td>
          </tr>`;
        })}
      </tbody>
    </table>`;
}

interface ListAnswer {
  items: Row[];
  cursor?: string;
  errors: Array<{ machine: string; message: string }>;
}

function ExecutionsPage({ params }: { params: URLSearchParams }) {
  const names = useMachineNames();
  const machine = params.get('machine') ?? '';
  const status = params.get('status') ?? '';
  const q = params.get('q') ?? '';
  const [text, setText] = useState(q);
  const [pages, setPages] = useState<Array<string | undefined>>([undefined]);
  const [answer, setAnswer] = useState<ListAnswer | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [now, setNow] = useState(Date.now());
  const cursor = pages.at(-1);
  usePoll(
    async () => {
      try {
        const result = await getJson<ListAnswer>('/api/executions', { machine: machine || '*', status, q, cursor, limit: 50 });
        setAnswer(result);
        setError(undefined);
        setNow(Date.now());
      } catch (e) {
        setError((e as Error).message);
      }
    },
    cursor === undefined ? 3000 : 3_600_000,
    [machine, status, q, cursor],
  );
  // The text filter applies after a short pause in typing.
  useEffect(() => {
    if (text === q) return;
    const timer = setTimeout(() => go('executions', [], { machine, status, q: text }), 300);
    return () => clearTimeout(timer);
  }, [text]);
  return html`<h1>Executions</h1>
    <${RunForm} names=${names} machine=${machine} />
    <div class="filters">
      <label>machine <select data-testid="filter-machine" value=${machine} onChange=${(e: Event) => go('executions', [], { machine: (e.target as HTMLSelectElement).value, status, q })}>
        <option value="">all</option>${names.map((n) => html`<option value=${n}>${n}</option>`)}
      </select></label>
      <label>status <select data-testid="filter-status" value=${status} onChange=${(e: Event) => go('executions', [], { machine, status: (e.target as HTMLSelectElement).value, q })}>
        <option value="">any</option><option value="queued">queued</option><option value="running">running</option><option value="finished">finished</option>
      </select></label>
      <label>text <input data-testid="filter-text" type="search" placeholder="id, command, cwd, label" value=${text} onInput=${(e: Event) => setText((e.target as HTMLInputElement).value)} /></label>
    </div>
    ${error ? html`<div class="error">${error}</div>` : null}
    ${answer?.errors.map((e) => html`<div class="error">${e.machine}: ${e.message}</div>`)}
    <table class="grid" data-testid="executions">
      <thead><tr><th>machine</th><th>id</th><th>command</th><th>status</th><th>started</th><th>duration</th><th>stdout</th><th>stderr</th></tr></thead>
      <tbody>
        ${answer?.items.map(
          (row) => html`<tr data-testid="execution-row" data-id=${row.id} data-status=${row.status}>
            <td>${row.machine}</td>
            <td><a href=${href('exec', [row.machine, row.id])}>${row.id}</a></td>
            <td class="cmd">${row.command}</td>
            <td class=${outcomeClass(row)}>${outcome(row)}</td>
            <td>${when(row.startedAt ?? row.requestedAt)}</td>
            <td>${rowDuration(row, now)}</td>
            <td>${bytes(row.bytes.stdout + row.bytes.pty)}</td>
            <td>${bytes(row.bytes.stderr)}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${answer && answer.items.length === 0 ? html`<p class="muted" data-testid="no-executions">${answer.cursor ? 'nothing on this page (the search continues on the next one)' : 'no executions'}</p>` : null}
    <div class="pager">
      <button disabled=${pages.length === 1} onClick=${() => setPages([undefined])}>newest</button>
      <button disabled=${pages.length === 1} onClick=${() => setPages(pages.slice(0, -1))}>previous</button>
      <span class="muted">page ${pages.length}</span>
      <button data-testid="next-page" disabled=${!answer?.cursor} onClick=${() => answer?.cursor && setPages([...pages, answer.cursor])}>next</button>
    </div>`;
}

function RunForm({ names, machine }: { names: string[]; machine: string }) {
  const [target, setTarget] = useState(machine || 'local');
  const [command, setCommand] = useState('');
  const [error, setError] = useState<string | undefined>();
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const started = await postJson<{ machine: string; id: string }>(machinePath(target, 'executions'), { command });
      go('exec', [started.machine, started.id]);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return html`<form class="run" onSubmit=${submit} data-testid="run-form">
    <select data-testid="run-machine" value=${target} onChange=${(e: Event) => setTarget((e.target as HTMLSelectElement).value)}>${names.map((n) => html`<option value=${n}>${n}</option>`)}</select>
    <input data-testid="run-command" class="grow" placeholder="command to run (sh -c)" value=${command} onInput=${(e: Event) => setCommand((e.target as HTMLInputElement).value)} />
    <button type="submit" data-testid="run-submit" disabled=${command.trim() === ''}>run</button>
    ${error ? html`<span class="error">${error}</span>` : null}
  </form>`;
}

interface ExecAnswer {
  row: Row;
  state: Record<string, unknown> & { spec: unknown };
}

function ExecutionPage({ machine, id }: { machine: string; id: string }) {
  const [exec, setExec] = useState<ExecAnswer | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [live, setLive] = useState<'loading' | 'live' | 'ended' | 'reconnecting'>('loading');
  const [streams, setStreams] = useState({ stdout: true, stderr: true });
  const [query, setQuery] = useState('');
  const [hits, setHits] = useState<number | undefined>();
  const [signal, setSignal] = useState('INT');
  const [notice, setNotice] = useState<string | undefined>();
  const box = useRef<HTMLDivElement>(null);
  const view = useRef<LogView | undefined>(undefined);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    const log = new LogView();
    view.current = log;
    box.current?.append(log.el);
    let source: EventSource | undefined;
    let closed = false;
    (async () => {
      try {
        setExec(await getJson<ExecAnswer>(machinePath(machine, 'executions', id)));
        // Tail first: the last lines at once, however long the log; then live from their seq.
        const tail = await getJson<{ lastSeq: number; lines: Array<{ s: string; t: string; cut?: number; start?: false }> }>(machinePath(machine, 'executions', id, 'tail'));
        for (const line of tail.lines) log.addLine(line.s, line.t, line.cut, line.start === false);
        log.scrollToEnd();
        if (closed) return;
        source = new EventSource(`${machinePath(machine, 'executions', id, 'events')}?after=${tail.lastSeq}`);
        source.addEventListener('open', () => setLive('live'));
        source.addEventListener('output', (e) => {
          for (const piece of JSON.parse((e as MessageEvent<string>).data) as Array<{ s: string; t: string }>) log.append(piece.s, piece.t);
        });
        source.addEventListener('state', (e) => setExec(JSON.parse((e as MessageEvent<string>).data) as ExecAnswer));
        source.addEventListener('end', () => {
          source?.close();
          setLive('ended');
        });
        source.addEventListener('failure', (e) => setError((JSON.parse((e as MessageEvent<string>).data) as { message: string }).message));
        source.addEventListener('error', () => {
          if (source?.readyState !== EventSource.CLOSED) setLive('reconnecting');
        });
      } catch (e) {
        setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
      }
    })();
    return () => {
      closed = true;
      source?.close();
      log.el.remove();
    };
  }, [machine, id]);

  useEffect(() => {
    if (exec?.row.status === 'finished') return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [exec?.row.status]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    el.classList.toggle('hide-stdout', !streams.stdout);
    el.classList.toggle('hide-stderr', !streams.stderr);
  }, [streams]);

  useEffect(() => {
    const timer = setTimeout(() => setHits(view.current && query !== '' ? view.current.search(query) : (view.current?.search(''), undefined)), 200);
    return () => clearTimeout(timer);
  }, [query]);

  const act = async (what: 'cancel' | 'signal') => {
    try {
      if (what === 'cancel') {
        setNotice('cancelling…');
        const r = await postJson<{ cancelled: boolean; reason: string | null; row: Row }>(machinePath(machine, 'executions', id, 'cancel'));
        setNotice(r.cancelled ? 'cancelled' : `not cancelled: ${r.reason ?? ''}`);
      } else {
        await postJson(machinePath(machine, 'executions', id, 'signal'), { signal });
        setNotice(`sent ${signal}`);
      }
    } catch (e) {
      setNotice((e as Error).message);
    }
  };

  // The log's class follows the checkbox in the same event (not after the next render), so a
  // stream is hidden the moment its box is unchecked.
  const showStream = (name: 'stdout' | 'stderr') => (e: Event) => {
    const on = (e.target as HTMLInputElement).checked;
    box.current?.classList.toggle(`hide-${name}`, !on);
    setStreams((now) => ({ ...now, [name]: on }));
  };

  const row = exec?.row;
  const running = row !== undefined && row.status !== 'finished';
  const download = (stream: string) => `${machinePath(machine, 'executions', id, 'download')}?stream=${stream}`;
  return html`<h1><a href=${href('executions', [], { machine })}>${machine}</a> / <span data-testid="exec-id">${id}</span></h1>
    ${error ? html`<div class="error" data-testid="exec-error">${error}</div>` : null}
    ${row
      ? html`<div class="summary">
          <span class=${outcomeClass(row)} data-testid="exec-status" data-status=${row.status} data-end-reason=${row.endReason ?? ''}>${outcome(row)}</span>
          <span>started ${when(row.startedAt ?? row.requestedAt)}</span>
          <span>${rowDuration(row, now)}</span>
          <span>stdout ${bytes(row.bytes.stdout + row.bytes.pty)}, stderr ${bytes(row.bytes.stderr)}${row.truncatedBytes > 0 ? `, ${bytes(row.truncatedBytes)} dropped by the output cap` : ''}</span>
          <span class="muted" data-testid="live-state">${live}</span>
        </div>
        <pre class="cmd" data-testid="exec-command">${row.command}</pre>
        <details><summary>spec and state</summary><pre data-testid="exec-spec">${JSON.stringify(exec.state, null, 2)}</pre></details>`
      : null}
    <div class="toolbar">
      <button data-testid="cancel" disabled=${!running} onClick=${() => act('cancel')}>cancel</button>
      <select data-testid="signal-name" value=${signal} onChange=${(e: Event) => setSignal((e.target as HTMLSelectElement).value)}>${['INT', 'TERM', 'HUP', 'USR1', 'USR2', 'KILL'].map((s) => html`<option value=${s}>${s}</option>`)}</select>
      <button data-testid="signal" disabled=${!running} onClick=${() => act('signal')}>send signal</button>
      <label><input type="checkbox" data-testid="show-stdout" checked=${streams.stdout} onChange=${showStream('stdout')} /> stdout</label>
      <label><input type="checkbox" data-testid="show-stderr" checked=${streams.stderr} onChange=${showStream('stderr')} /> stderr</label>
      <input type="search" data-testid="log-search" placeholder="search the log" value=${query} onInput=${(e: Event) => setQuery((e.target as HTMLInputElement).value)} />
      ${hits !== undefined ? html`<span class="muted" data-testid="log-hits">${hits} lines</span>` : null}
      <span class="grow"></span>
      download <a href=${download('all')} download data-testid="download">all</a> <a href=${download('stdout')} download>stdout</a> <a href=${download('stderr')} download>stderr</a>
      ${notice ? html`<span class="notice" data-testid="notice">${notice}</span>` : null}
    </div>
    <div class="logbox" ref=${box}></div>`;
}

const root = document.getElementById('app');
if (root) render(html`<${App} />`, root);
