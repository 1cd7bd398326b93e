import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { TetherError, isErrorCode } from '@tether/core';
import type { CredentialKind } from './credentials.js';
import { relayHttpBase } from './relayProtocol.js';
import type { EnvironmentStatus } from './relayServer.js';

export interface RelayAdminOptions {
  /** The relay: `wss://host:port` (or `ws://` on loopback). */
  readonly relay: string;
  /** The relay operator's token (`<relay data dir>/admin-token`). */
  readonly adminToken: string;
  /** CA certificates to trust for a relay with a private certificate. */
  readonly ca?: string | Buffer;
  /**
   * The name the relay's certificate is checked against, when `relay` addresses it otherwise
   * (the operator on the relay's own host reaching `wss://127.0.0.1:8443` whose certificate
   * names `relay.example`). Default: the URL's host.
   */
  readonly servername?: string;
  /** Per request. Default 10 000 ms. */
  readonly timeoutMs?: number;
}

/** The relay operator's methods, over HTTP(S) with the admin token. */
export class RelayAdmin {
  readonly #options: RelayAdminOptions;

  constructor(options: RelayAdminOptions) {
    relayHttpBase(options.relay);
    this.#options = options;
  }

  /** Enrols an environment (a daemon) or a client and returns its credential: the only time it is shown. */
  enroll(kind: CredentialKind, name: string, options: { rotate?: boolean } = {}): Promise<{ kind: CredentialKind; name: string; credential: string; rotated: boolean }> {
    return this.#call('POST', `/v1/${kind === 'client' ? 'clients' : 'environments'}/${encodeURIComponent(name)}/enroll${options.rotate ? '?rotate=1' : ''}`) as never;
  }

  /** Revokes a credential; its registration and sessions are closed. */
  revoke(kind: CredentialKind, name: string): Promise<{ kind: CredentialKind; name: string; revoked: boolean; disconnected: number }> {
    return this.#call('POST', `/v1/${kind === 'client' ? 'clients' : 'environments'}/${encodeURIComponent(name)}/revoke`) as never;
  }

  /** Enrolled environments, online and offline (or only one of them). */
  async status(filter?: 'online' | 'offline'): Promise<EnvironmentStatus[]> {
    const body = (await this.#call('GET', `/v1/environments${filter ? `?status=${filter}` : ''}`)) as { environments: EnvironmentStatus[] };
    return body.environments;
  }

  #call(method: string, path: string): Promise<unknown> {
    const base = relayHttpBase(this.#options.relay);
    const url = new URL(`${base}${path}`);
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          headers: { Authorization: `Bearer ${this.#options.adminToken}` },
          ca: this.#options.ca,
          ...(this.#options.servername ? { servername: this.#options.servername } : {}),
          timeout: this.#options.timeoutMs ?? 10_000,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
            if (text.length > 16 * 1024 * 1024) req.destroy(new Error('reply too large'));
          });
          res.on('end', () => {
            let body: { error?: { code?: unknown; message?: unknown } } & Record<string, unknown>;
            try {
              body = JSON.parse(text);
            } catch {
              return reject(new TetherError('CONNECTION_LOST', `the relay at ${base} answered HTTP ${res.statusCode} with something other than JSON`));
            }
            if (res.statusCode === 200) return resolve(body);
            const code = isErrorCode(body.error?.code) ? body.error.code : res.statusCode === 401 ? 'UNAUTHORIZED' : 'INTERNAL';
            reject(new TetherError(code, typeof body.error?.message === 'string' ? body.error.message : `the relay answered HTTP ${res.statusCode}`, { status: res.statusCode }));
          });
        },
      );
      req.on('timeout', () => req.destroy(new TetherError('TIMEOUT', `the relay at ${base} did not answer in time`)));
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (error instanceof TetherError) return reject(error);
        if (error.code === 'ECONNREFUSED') return reject(new TetherError('CONNECTION_LOST', `connection refused: no relay is listening at ${base}`, { errno: error.code }, { cause: error }));
        if (error.code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(error.code)) {
          return reject(new TetherError('UNAUTHORIZED', `unauthorized: the relay's TLS certificate is not trusted (${error.code})`, { errno: error.code }, { cause: error }));
        }
        reject(new TetherError('CONNECTION_LOST', `connection reset by peer: ${base} (${error.code ?? error.message})`, { errno: error.code }, { cause: error }));
      });
      req.end();
    });
  }
}
