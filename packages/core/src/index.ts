import 'reflect-metadata';
// The public API of @tether/core. Anything not exported here is internal.
export { ErrorCodes, TetherError, isTetherError, isErrorCode, type ErrorCode } from './errors.js';
export * from './events.js';
export {
  initialState,
  evolve,
  foldEvents,
  durationMs,
  type ExecutionState,
  type ExecutionStatus,
  type EndReason,
  type NotificationRecord,
} from './state.js';
export { CompletionNotifier, completionSummary, type CompletionNotifierOptions, type CompletionSummary } from './completionNotifier.js';
export {
  EventStore,
  type AppendOptions,
  type AppendResult,
  type ReadOptions,
  type ListOptions,
  type ListPage,
  type StoreHealth,
} from './eventStore.js';
export { InMemoryEventStore } from './inMemoryEventStore.js';
export { replayThenLive } from './follow.js';
export {
  checkAppend,
  stampEvents,
  sliceRead,
  countWithinBytes,
  listPage,
  compareNewestFirst,
  encodeListCursor,
  decodeListCursor,
} from './storeSupport.js';
export * from './backends.js';
export { Transport, type Channel, type MachineConfig } from './transport.js';
export {
  PLUGIN_API_VERSION,
  definePlugin,
  loadPlugins,
  type Plugin,
  type PluginDefinition,
  type PluginContext,
  type PluginEntry,
  type PluginReport,
  type PluginFailure,
  type Provider,
} from './plugin.js';
export { createKernel, type Kernel, type KernelOptions } from './kernel.js';
export { LocalMachine, type LocalMachineOptions } from './localMachine.js';
export type {
  MachineApi,
  ExecApi,
  FsApi,
  GpuApi,
  MachineInfo,
  MachineHealth,
  ExecStartParams,
  ExecReadOptions,
  ExecReadResult,
  LogsOptions,
  LogsResult,
  LogLine,
  CancelOptions,
  CancelResult,
  WriteOptions,
} from './machine.js';
export { readOutputTail, toLines, lastBytes, LineCutter, type OutputSlice, type TailOptions } from './logs.js';
export { followLines, outputLines, type FollowLinesOptions } from './followLines.js';
export { newExecutionId, normalizeSignal } from './ids.js';
export { setLongTimeout, MAX_TIMER_MS, type LongTimer } from './longTimer.js';
export { restrictUmask, withUserUmask } from './umask.js';
export { VERSION } from './version.js';
export { PROTOCOL_VERSION, methods as protocolMethods, isRetrySafe, NOTIFICATIONS, type MethodName } from './protocol/methods.js';
export { JsonRpcCodes, RpcErrorNumbers, toRpcError, fromRpcError } from './protocol/jsonRpc.js';
export { serveMachine, type RpcServerOptions, type RpcSession } from './protocol/rpcServer.js';
export { RemoteMachine, type RemoteMachineOptions, type ReconnectOptions } from './protocol/remoteMachine.js';
export { createChannelPair } from './protocol/memoryChannel.js';
export { eventToJson, eventFromJson, encodeEventsFrame, decodeEventsFrame, toBase64, fromBase64 } from './protocol/wire.js';
export {
  syncDirectory,
  type SyncEndpoint,
  type SyncOptions,
  type SyncCompare,
  type SyncProgress,
  type SyncResult,
  type SyncSkipped,
  type SyncSkipReason,
} from './sync/syncDirectory.js';
export { excludeMatcher, type ExcludeMatcher } from './sync/excludeMatcher.js';
