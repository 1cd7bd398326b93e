import { z } from 'zod';
import { ErrorCodes, TetherError, isErrorCode, isTetherError, type ErrorCode } from '../errors.js';

/** JSON-RPC 2.0's own error codes. */
export const JsonRpcCodes = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
} as const;

/**
 * tether's error codes on the wire: numbers outside JSON-RPC's reserved range
 * (-32768..-32000), one per code, never reused. The string code also travels in `error.data.code`.
 */
export const RpcErrorNumbers: Readonly<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: JsonRpcCodes.INVALID_PARAMS,
  INTERNAL: JsonRpcCodes.INTERNAL_ERROR,
  EXEC_NOT_FOUND: 1001,
  EXEC_FINISHED: 1002,
  STDIN_CLOSED: 1003,
  NOT_A_TTY: 1004,
  APPEND_CONFLICT: 1010,
  STORE_CLOSED: 1011,
  STORE_LOCKED: 1012,
  STORE_CORRUPT: 1013,
  DISK_FULL: 1014,
  STORE_WRITE_FAILED: 1015,
  BACKEND_UNAVAILABLE: 1020,
  SPAWN_FAILED: 1021,
  CWD_NOT_FOUND: 1022,
  PLUGIN_DUPLICATE: 1030,
  PLUGIN_API_MISMATCH: 1031,
  PLUGIN_LOAD_FAILED: 1032,
  UNKNOWN_MACHINE: 1040,
  TRANSPORT_UNAVAILABLE: 1041,
  PATH_OUTSIDE_ROOT: 1050,
  PATH_NOT_FOUND: 1051,
  PATH_EXISTS: 1052,
  NOT_A_FILE: 1053,
  NOT_A_DIRECTORY: 1054,
  DIRECTORY_NOT_EMPTY: 1055,
  PERMISSION_DENIED: 1056,
  TOO_LARGE: 1060,
  GATE_TIMEOUT: 1070,
  TIMEOUT: 1071,
  CONNECTION_LOST: 1080,
  OUTCOME_UNKNOWN: 1081,
  UNAUTHORIZED: 1082,
  ABORTED: 1083,
};

const Id = z.union([z.string().max(200), z.number().int()]);

export const JsonRpcRequest = z.object({
  jsonrpc: z.literal('2.0'),
  id: Id.optional(),
  method: z.string().min(1).max(100),
  params: z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional(),
});
export type JsonRpcRequest = z.infer<typeof JsonRpcRequest>;

export interface JsonRpcErrorObject {
  readonly code: number;
  readonly message: string;
  readonly data?: { readonly code: string; readonly details?: Readonly<Record<string, unknown>> };
}

export const JsonRpcResponse = z.union([
  z.object({ jsonrpc: z.literal('2.0'), id: Id.nullable(), result: z.unknown() }),
  z.object({
    jsonrpc: z.literal('2.0'),
    id: Id.nullable(),
    error: z.object({
      code: z.number().int(),
      message: z.string(),
      data: z.object({ code: z.string(), details: z.record(z.string(), z.unknown()).optional() }).optional(),
    }),
  }),
]);

/** A TetherError (or anything thrown) as a JSON-RPC error object. Internal details stay inside. */
export function toRpcError(error: unknown): JsonRpcErrorObject {
  if (isTetherError(error)) {
    return { code: RpcErrorNumbers[error.code], message: error.message, data: { code: error.code, details: error.details } };
  }
  return { code: JsonRpcCodes.INTERNAL_ERROR, message: 'internal error', data: { code: 'INTERNAL' } };
}

/** A JSON-RPC error from the peer as a TetherError with the same code. */
export function fromRpcError(error: JsonRpcErrorObject): TetherError {
  const code = error.data?.code;
  if (isErrorCode(code)) return new TetherError(code, error.message, error.data?.details ?? {});
  const byNumber: Partial<Record<number, ErrorCode>> = {
    [JsonRpcCodes.METHOD_NOT_FOUND]: 'INVALID_ARGUMENT',
    [JsonRpcCodes.INVALID_PARAMS]: 'INVALID_ARGUMENT',
    [JsonRpcCodes.INVALID_REQUEST]: 'INVALID_ARGUMENT',
    [JsonRpcCodes.PARSE_ERROR]: 'INVALID_ARGUMENT',
  };
  return new TetherError(byNumber[error.code] ?? 'INTERNAL', error.message || ErrorCodes.INTERNAL, { rpcCode: error.code });
}

/**
 * Deepest nesting of arrays/objects in a JSON text, stopping early past `limit`; a cheap scan run
 * before JSON.parse so a deeply nested message cannot exhaust the parser's stack.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
