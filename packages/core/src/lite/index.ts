// A light entry point for processes that must start fast and stay small (the process plugin's
// per-execution supervisor): the error type and signal names, without the schemas, the DI
// container or RxJS that the main entry point loads.
export { ErrorCodes, TetherError, isTetherError, isErrorCode, type ErrorCode } from '../errors.js';
export { normalizeSignal } from '../ids.js';
