// The public API of @tether/transport-ws.
import { definePlugin, PLUGIN_API_VERSION, Transport } from '@tether/core';
import { WsTransport } from './wsTransport.js';

export { wsChannel, DEFAULT_PING_INTERVAL_MS, DEFAULT_PONG_TIMEOUT_MS, type KeepaliveOptions } from './wsChannel.js';
export { WsListener, type WsListenerOptions, type AcceptOptions, type ConnectionInfo, type LogEntry } from './wsListener.js';
export { connectWs, identifyPeer, type ConnectWsOptions, type PeerKind } from './connectWs.js';
export { WsTransport, remoteMachine, type RemoteWsMachineOptions } from './wsTransport.js';
export { startDaemon, type Daemon, type DaemonOptions } from './startDaemon.js';
export { loadOrCreateToken, readToken, TokenVerifier, MIN_TOKEN_LENGTH } from './daemonToken.js';
export { parseListenAddress, type ListenAddress } from './listenAddress.js';

/** Provides the `ws` transport: machines with `transport: ws` and an `addr`. */
export default definePlugin({
  name: '@tether/transport-ws',
  apiVersion: PLUGIN_API_VERSION,
  register(ctx) {
    ctx.provide(Transport, { useValue: new WsTransport() });
  },
});
