import { describe, expect, it } from 'vitest';
import { exitOf, parseExitCode, parseSqueue, phaseOf } from './jobState.js';
import { jobScript } from './jobScript.js';
import { sbatchFlags } from './slurmBackend.js';

describe('Slurm job states', () => {
  it('reads squeue lines (id|state|reason|nodes|partition)', () => {
    expect(parseSqueue('12|PENDING|Resources||gpu\n13|RUNNING|None|gn01|debug\n\n')).toEqual([
      { jobId: '12', state: 'PENDING', reason: 'Resources', nodes: '', partition: 'gpu' },
      { jobId: '13', state: 'RUNNING', reason: 'None', nodes: 'gn01', partition: 'debug' },
    ]);
  });

  it('puts each state in a phase', () => {
    expect(['PENDING', 'REQUEUED', 'REQUEUE_HOLD'].map(phaseOf)).toEqual(['queued', 'queued', 'queued']);
    expect(['RUNNING', 'COMPLETING', 'SUSPENDED', 'CONFIGURING'].map(phaseOf)).toEqual(['running', 'running', 'running', 'running']);
    expect(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'OUT_OF_MEMORY'].map(phaseOf)).toEqual(Array(7).fill('ended'));
  });

  it('maps the end: exit code or signal, cancelled by someone else, timed out, lost with the reason', () => {
    expect(parseExitCode('JobId=5 JobState=FAILED ExitCode=3:0 DerivedExitCode=0:0')).toEqual({ code: 3, signal: 0 });
    expect(parseExitCode('nothing here')).toBeNull();
    expect(exitOf('COMPLETED', 'None', { code: 0, signal: 0 })).toEqual({ exitCode: 0, signal: null });
    expect(exitOf('FAILED', 'NonZeroExitCode', { code: 3, signal: 0 })).toEqual({ exitCode: 3, signal: null });
    expect(exitOf('FAILED', 'None', { code: 0, signal: 9 })).toEqual({ exitCode: null, signal: 'SIGKILL' });
    // scancel by tether (cancel, signal): the signal is the end; by anyone else: cancelled.
    expect(exitOf('CANCELLED', 'None', { code: 0, signal: 15 }, true)).toEqual({ exitCode: null, signal: 'SIGTERM' });
    expect(exitOf('CANCELLED', 'None', { code: 0, signal: 15 }, false)).toEqual({ exitCode: null, signal: 'SIGTERM', stopReason: 'cancel' });
    expect(exitOf('TIMEOUT', 'None', { code: 0, signal: 15 })).toMatchObject({ stopReason: 'timeout' });
    expect(exitOf('NODE_FAIL', 'NodeDown', null)).toEqual({ exitCode: null, signal: null, lost: 'Slurm ended the job NODE_FAIL (NodeDown)' });
    expect(exitOf('PREEMPTED', 'None', null).lost).toBe('Slurm ended the job PREEMPTED');
  });
});

describe('the submission', () => {
  it('maps the options to sbatch flags, --time from the timeout and its grace in whole minutes', () => {
    expect(sbatchFlags({ partition: 'gpu', account: 'p1', gres: 'gpu:2', cpusPerTask: 4, mem: '8G', nodes: 1, sbatchArgs: ['--qos=high'] }, { timeoutMs: 90_000, killGraceMs: 5_000 })).toEqual([
      '--partition=gpu', '--account=p1', '--gres=gpu:2', '--cpus-per-task=4', '--mem=8G', '--nodes=1', '--time=3', '--qos=high',
    ]);
    expect(sbatchFlags({ time: '1:00:00' }, { timeoutMs: 1000 })).toEqual(['--time=1:00:00']);
    expect(sbatchFlags({}, {})).toEqual([]);
  });

  it('writes a job script that checks the program, then execs it with the environment, quoted', () => {
    const script = jobScript({ id: 'e1', argv: ['python3', "it's.py", '$HOME'], envMode: 'exact', stdin: false, env: { A: 'x y' } }, '/spool/e1/failed');
    expect(script).toContain("exec env -i 'A=x y' 'TETHER_EXEC_ID=e1' 'python3' 'it'\\''s.py' '$HOME'");
    expect(script).toContain("command -v \"$p\"");
    expect(script).toContain("'/spool/e1/failed'");
  });
});
