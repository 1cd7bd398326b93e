import { describe, expect, it } from 'vitest';
import { initialState, type ExecutionState } from '@tether/core';
import { commandExitCode, commandText, resultJson } from './resultJson.js';

const base: ExecutionState = {
  ...initialState('x1'),
  status: 'finished',
  endReason: 'exited',
  exitCode: 3,
  pid: 42,
  spec: { command: 'make test', envMode: 'merge', stdin: false, killGraceMs: 3000 },
  requestedAt: Date.parse('2024-05-01T12:00:00.000Z'),
  startedAt: Date.parse('2024-05-01T12:00:00.010Z'),
  finishedAt: Date.parse('2024-05-01T12:00:01.510Z'),
  bytes: { stdout: 10, stderr: 4, pty: 0 },
  lastSeq: 7,
};

describe('resultJson', () => {
  it('maps a finished execution to the contract fields', () => {
    expect(resultJson(base, 'gpu1', '/home/a')).toEqual({
      exec_id: 'x1',
      machine: 'gpu1',
      status: 'finished',
      end_reason: 'exited',
      exit_code: 3,
      pid: 42,
      cmd: 'make test',
      cwd: '/home/a',
      started_at: '2024-05-01T12:00:00.010Z',
      finished_at: '2024-05-01T12:00:01.510Z',
      duration_ms: 1500,
      stdout_bytes: 10,
      stderr_bytes: 4,
      last_seq: 7,
    });
  });

  it('leaves end_reason, exit_code and finished_at out while running', () => {
    const running = resultJson({ ...base, status: 'running', endReason: null, exitCode: null, finishedAt: null }, 'local', null, base.startedAt! + 250);
    expect(running).not.toHaveProperty('end_reason');
    expect(running).not.toHaveProperty('exit_code');
    expect(running).not.toHaveProperty('finished_at');
    expect(running.duration_ms).toBe(250);
  });

  it('quotes an argv for a shell', () => {
    expect(commandText({ ...base, spec: { argv: ['echo', 'two words', "it's"], envMode: 'merge', stdin: false, killGraceMs: 3000 } })).toBe(`echo 'two words' 'it'\\''s'`);
  });
});

describe('commandExitCode', () => {
  it('is the exit code, 128+N for a signal, 124 for a timeout, 127 when it could not start, 255 when lost', () => {
    expect(commandExitCode(base)).toBe(3);
    expect(commandExitCode({ ...base, endReason: 'signaled', exitCode: null, signal: 'SIGKILL' })).toBe(137);
    expect(commandExitCode({ ...base, endReason: 'cancelled', exitCode: null, signal: 'SIGTERM' })).toBe(143);
    expect(commandExitCode({ ...base, endReason: 'timed_out', exitCode: null })).toBe(124);
    expect(commandExitCode({ ...base, endReason: 'failed_to_start', exitCode: null })).toBe(127);
    expect(commandExitCode({ ...base, endReason: 'lost', exitCode: null })).toBe(255);
  });
});
