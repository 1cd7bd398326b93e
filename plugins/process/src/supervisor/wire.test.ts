import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FrameBuffers, FrameReader, MAX_FRAME_BYTES, encodeFrame, writeFrame, type Frame } from './wire.js';

/** Feeds `stream` to a FrameBuffers the way a socket's onread does, in reads of at most `most` bytes. */
function readAll(stream: Buffer, most: () => number): Frame[] {
  const reader = new FrameBuffers();
  const frames: Frame[] = [];
  let at = 0;
  while (at < stream.byteLength) {
    const target = reader.buffer();
    const n = Math.min(target.byteLength, most(), stream.byteLength - at);
    stream.copy(target, 0, at, at + n);
    at += n;
    const frame = reader.read(n);
    if (frame) frames.push(frame);
  }
  return frames;
}

/** The bytes writeFrame puts on a socket. */
function written(header: { t: string } & Record<string, unknown>, parts: Uint8Array[]): Buffer {
  const chunks: Uint8Array[] = [];
  let calls = 0;
  writeFrame({ cork: () => undefined, uncork: () => undefined, write: (data, done) => (chunks.push(data), done && calls++, true) }, header, parts, () => undefined);
  expect(calls).toBe(1); // the callback goes with the last write only
  return Buffer.concat(chunks);
}

describe('frames', () => {
  const sent = [
    { header: { t: 'hello', pid: 1 }, payload: Buffer.alloc(0) },
    { header: { t: 'out', off: 0, s: 'stdout' }, payload: randomBytes(70_000) },
    { header: { t: 'out', off: 70_000, s: 'stderr' }, payload: randomBytes(1) },
    { header: { t: 'out', off: 70_001, s: 'stdout' }, payload: randomBytes(1024 * 1024) },
    { header: { t: 'exit', off: 1_118_577, exitCode: 0 }, payload: Buffer.alloc(0) },
  ];

  it('a frame written in parts is the frame of the joined payload', () => {
    const payload = randomBytes(100_000);
    const parts = [payload.subarray(0, 1), payload.subarray(1, 65_536), payload.subarray(65_536)];
    expect(written({ t: 'out', off: 5, s: 'stdout' }, parts).equals(encodeFrame({ t: 'out', off: 5, s: 'stdout' }, payload))).toBe(true);
  });

  it('FrameBuffers gives back every frame, byte-identical, however the reads fall', () => {
    const stream = Buffer.concat(sent.map((f) => encodeFrame(f.header, f.payload)));
    for (const most of [() => 1, () => 3, () => 65_536, () => 1 + Math.floor(Math.random() * 200_000), () => Number.MAX_SAFE_INTEGER]) {
      const frames = readAll(stream, most);
      expect(frames.map((f) => f.header)).toEqual(sent.map((f) => f.header));
      frames.forEach((f, i) => expect(Buffer.compare(f.payload, sent[i]!.payload)).toBe(0));
    }
  });

  it('FrameBuffers and FrameReader refuse an oversized or malformed frame', () => {
    const oversized = Buffer.alloc(8);
    oversized.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
    expect(() => readAll(oversized, () => 8)).toThrow(/bad frame length/);
    expect(() => new FrameReader().push(oversized)).toThrow(/bad frame length/);
    const badHeader = Buffer.alloc(12);
    badHeader.writeUInt32BE(8, 0);
    badHeader.writeUInt32BE(100, 4);
    expect(() => readAll(badHeader, () => 12)).toThrow(/bad frame header length/);
    const notJson = encodeFrame({ t: 'x' });
    notJson.write('!', 8);
    expect(() => readAll(notJson, () => 100)).toThrow();
  });
});
