import type { ExecutionState } from '@tether/core';
import { CliError } from './cliError.js';

/** The error reported when an execution could not start (bad cwd, no such program, GPU gate timed out…). */
export function failedToStart(state: ExecutionState): CliError {
  const code = state.error?.code ?? 'SPAWN_FAILED';
  const known: Record<string, string> = {
    ENOENT: 'the program or the shell was not found: check --cmd, --shell and PATH on the machine',
    EACCES: 'the program is not executable, or the cwd is not accessible',
    CWD_NOT_FOUND: 'the working directory does not exist on the machine: check --cwd',
    GATE_TIMEOUT: 'no GPU became free in time: raise --gpu-gate-timeout or check gpu status',
  };
  return new CliError(code === 'CWD_NOT_FOUND' || code === 'GATE_TIMEOUT' ? code : 'SPAWN_FAILED', `${state.id} failed to start: ${state.error?.message ?? 'unknown reason'}`, {
    hint: known[code] ?? 'see the error message; exec result shows the execution',
    details: { exec_id: state.id, errno: code },
  });
}
