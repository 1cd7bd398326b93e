import type { MachineApi, OutputStream } from '@tether/core';
import { LineSplitter, type LogRecord } from './lineSplitter.js';

/**
 * `exec logs --full`: every line of the selected streams after `afterSeq`, read forward in pages
 * of events (so a line cut across events is whole, and nothing is capped), up to the last seq at
 * the time of the call.
 */
export async function fullLog(
  machine: MachineApi,
  id: string,
  options: { streams: ReadonlySet<OutputStream>; afterSeq: number; since?: number; until?: number },
  print: (record: LogRecord) => void,
): Promise<void> {
  const lines = new LineSplitter();
  const end = (await machine.exec.get(id)).lastSeq;
  let after = options.afterSeq;
  while (after < end) {
    const page = await machine.exec.read(id, { afterSeq: after, limit: 1000 });
    if (page.events.length === 0) break;
    for (const event of page.events) {
      if (event.seq > end) break;
      after = event.seq;
      if (event.type !== 'OutputProduced' || !options.streams.has(event.data.stream)) continue;
      if ((options.since !== undefined && event.ts < options.since) || (options.until !== undefined && event.ts >= options.until)) continue;
      for (const record of lines.push(event.data.stream, event.data.data, event.seq)) print(record);
    }
    if (page.events[page.events.length - 1]!.seq >= end) break;
  }
  for (const record of lines.flush()) print(record);
}
