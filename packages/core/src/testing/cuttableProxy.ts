// A TCP proxy for fault tests: every chunk passes through `onData`, which may cut the
// connection or swallow the chunk.
import { createServer, connect, type Server, type Socket } from 'node:net';

/** One connection through the proxy, as `onData` sees it. */
export interface ProxiedConnection {
  /** Bytes seen so far, client → daemon and daemon → client. */
  up: number;
  down: number;
  /** Free for the test (e.g. a frame parser's state). */
  readonly state: Record<string, unknown>;
}

/**
 * A TCP proxy between a client and the daemon that the test can cut. `onData` sees every chunk
 * in each direction and may answer `'cut'` (destroy this connection pair at once) or `'drop'`
 * (swallow the chunk: a reply that never arrives).
 */
export class CuttableProxy {
  readonly #server: Server;
  readonly #pairs = new Set<{ client: Socket; upstream: Socket }>();
  /** Connections accepted so far. */
  accepted = 0;
  /** Connections cut by `onData` or `cutAll`. */
  cuts = 0;
  onData: (direction: 'up' | 'down', chunk: Buffer, connection: ProxiedConnection) => 'cut' | 'drop' | void = () => undefined;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(target: { host: string; port: number }): Promise<CuttableProxy> {
    const server = createServer();
    const proxy = new CuttableProxy(server);
    server.on('connection', (client) => {
      proxy.accepted++;
      const upstream = connect(target.port, target.host);
      const pair = { client, upstream };
      proxy.#pairs.add(pair);
      const connection: ProxiedConnection = { up: 0, down: 0, state: {} };
      const drop = () => {
        proxy.#pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      const forward = (direction: 'up' | 'down', to: Socket) => (chunk: Buffer) => {
        connection[direction] += chunk.length;
        const verdict = proxy.onData(direction, chunk, connection);
        if (verdict === 'cut') {
          proxy.cuts++;
          return drop();
        }
        if (verdict !== 'drop') to.write(chunk);
      };
      client.on('data', forward('up', upstream));
      upstream.on('data', forward('down', client));
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as { port: number }).port;
  }

  /** Destroys every open connection pair. */
  cutAll(): void {
    for (const { client, upstream } of this.#pairs) {
      this.cuts++;
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
