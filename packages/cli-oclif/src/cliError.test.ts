import { describe, expect, it } from 'vitest';
import { TetherError } from '@tether/core';
import { CliError, EXIT_CODES, describeError } from './cliError.js';

describe('describeError', () => {
  it('turns a TetherError into {code, message, hint} and its exit code', () => {
    const { json, exitCode } = describeError(new TetherError('EXEC_NOT_FOUND', 'exec_id not found: x1'), { machine: 'gpu1' });
    expect(json).toEqual({ error: { code: 'EXEC_NOT_FOUND', message: 'exec_id not found: x1', hint: 'list the executions on this machine: tether exec list --machine gpu1' } });
    expect(exitCode).toBe(5);
  });

  it('keeps the phrases agents triage on, even when a message lacks them', () => {
    expect(describeError(new TetherError('CONNECTION_LOST', 'the socket closed')).json.error.message).toBe('connection reset by peer: the socket closed');
    expect(describeError(new TetherError('CONNECTION_LOST', 'connection refused: nothing there')).json.error.message).toBe('connection refused: nothing there');
    expect(describeError(new TetherError('UNAUTHORIZED', 'bad token')).json.error.message).toBe('unauthorized: bad token');
    expect(describeError(new TetherError('UNKNOWN_MACHINE', 'gpu9?')).json.error.message).toBe('unknown machine: gpu9?');
    // codex-remote retries on "timeout": a timed-out call says so in those words.
    expect(describeError(new TetherError('TIMEOUT', 'the call timed out after 8s')).json.error.message).toBe('timeout: the call timed out after 8s');
    expect(describeError(new TetherError('GATE_TIMEOUT', 'no GPU was free within 30m')).json.error.message).toBe('timeout: no GPU was free within 30m');
    expect(describeError(new TetherError('TIMEOUT', 'timeout waiting for x')).json.error.message).toBe('timeout waiting for x');
  });

  it('points at the local daemon for local connection failures, at machine check for others', () => {
    const lost = new TetherError('CONNECTION_LOST', 'connection refused');
    expect(describeError(lost, { machine: 'local', daemonLog: '/s/daemon.log' }).json.error.hint).toMatch(/daemon status.*\/s\/daemon\.log/);
    expect(describeError(lost, { machine: 'gpu1' }).json.error.hint).toMatch(/machine check --machine gpu1/);
  });

  it('gives the command that fixes a host key refused by the ssh transport as the hint', () => {
    const unknown = new TetherError('UNAUTHORIZED', 'unauthorized: the host key of [10.0.0.5]:2222 is not known', {
      reason: 'host-key-unknown',
      fingerprint: 'SHA256:abc',
      command: 'ssh-keyscan -p 2222 10.0.0.5 >> ~/.ssh/known_hosts',
    });
    expect(describeError(unknown, { machine: 'gpu1', transport: 'ssh' }).json.error.hint).toBe('if SHA256:abc is the host\'s key, trust it with: ssh-keyscan -p 2222 10.0.0.5 >> ~/.ssh/known_hosts');
    const changed = new TetherError('UNAUTHORIZED', 'unauthorized: WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED', { reason: 'host-key-changed', command: 'ssh-keygen -R gpu1' });
    expect(describeError(changed, { machine: 'gpu1', transport: 'ssh' }).json.error.hint).toMatch(/^if the host key was changed on purpose, remove the old one with: ssh-keygen -R gpu1/);
    expect(describeError(new TetherError('UNAUTHORIZED', 'refused every key', { reason: 'auth-failed' }), { machine: 'gpu1', transport: 'ssh' }).json.error.hint).toMatch(/without a password/);
  });

  it('recognises a CliError from another copy of this module (the runtime bundle) by its brand', () => {
    const foreign = Object.assign(new Error('bad field'), { [Symbol.for('tether.CliError')]: true, code: 'CONFIG_INVALID', hint: 'fix it', details: {} });
    expect(describeError(foreign)).toEqual({ json: { error: { code: 'CONFIG_INVALID', message: 'bad field', hint: 'fix it' } }, exitCode: 3 });
  });

  it('uses a CliError as is; anything else is INTERNAL (exit 1)', () => {
    expect(describeError(new CliError('USAGE', 'no', { hint: 'do this' }))).toEqual({ json: { error: { code: 'USAGE', message: 'no', hint: 'do this' } }, exitCode: 2 });
    expect(describeError(new Error('boom'))).toMatchObject({ json: { error: { code: 'INTERNAL', message: 'boom' } }, exitCode: 1 });
  });

  it('gives distinct exit codes to the failures agents tell apart', () => {
    const codes = ['USAGE', 'CONFIG_INVALID', 'UNKNOWN_MACHINE', 'EXEC_NOT_FOUND', 'CONNECTION_LOST', 'UNAUTHORIZED', 'TIMEOUT', 'PATH_NOT_FOUND', 'EXEC_FINISHED', 'BACKEND_UNAVAILABLE', 'DISK_FULL'];
    expect(new Set(codes.map((c) => EXIT_CODES[c])).size).toBe(codes.length);
  });

  it('tells where to free space when the event store is full', () => {
    const { json, exitCode } = describeError(new TetherError('DISK_FULL', 'No space left for the event store at /data/events', { dir: '/data/events' }));
    expect(exitCode).toBe(12);
    expect(json.error.code).toBe('DISK_FULL');
    expect(json.error.hint).toContain('free space under /data/events');
    expect(describeError(new TetherError('STORE_WRITE_FAILED', 'x', { dir: '/d' })).json.error.hint).not.toMatch(/bug/);
  });
});
