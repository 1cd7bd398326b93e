import { describe, expect, it } from 'vitest';
import { parseListenAddress } from './listenAddress.js';
import { parseDaemonUrl } from './connectWs.js';

describe('parseListenAddress', () => {
  it('reads host:port, [ipv6]:port and socket paths', () => {
    expect(parseListenAddress('127.0.0.1:7337')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 7337 });
    expect(parseListenAddress('localhost:0')).toEqual({ kind: 'tcp', host: 'localhost', port: 0 });
    expect(parseListenAddress('[::1]:80')).toEqual({ kind: 'tcp', host: '::1', port: 80 });
    expect(parseListenAddress('/run/tether.sock')).toEqual({ kind: 'unix', path: '/run/tether.sock' });
    expect(parseListenAddress('unix:/tmp/d.sock')).toEqual({ kind: 'unix', path: '/tmp/d.sock' });
  });

  it('refuses anything else', () => {
    for (const bad of ['', '7337', 'host', 'host:99999', '::1:80', 'unix:relative.sock', 'a b:1']) {
      expect(() => parseListenAddress(bad)).toThrow(/listen address|absolute/);
    }
  });
});

describe('parseDaemonUrl', () => {
  it('accepts ws://, wss://, host:port and socket paths', () => {
    expect(parseDaemonUrl('ws://127.0.0.1:7337').wsUrl).toBe('ws://127.0.0.1:7337/');
    expect(parseDaemonUrl('wss://gpu1.example:7337').display).toBe('wss://gpu1.example:7337');
    expect(parseDaemonUrl('gpu1:7337').wsUrl).toBe('ws://gpu1:7337/');
    expect(parseDaemonUrl('/run/t.sock').wsUrl).toBe('ws+unix:///run/t.sock:/');
    expect(parseDaemonUrl('unix:/run/t.sock').wsUrl).toBe('ws+unix:///run/t.sock:/');
  });

  it('refuses credentials in the URL and other schemes, without echoing the secret', () => {
    for (const bad of ['ws://h:1/?token=s3cr3t-value', 'ws://h:1/?access_token=s3cr3t-value', 'ws://user:s3cr3t-value@h:1']) {
      expect(() => parseDaemonUrl(bad)).toThrow(/credentials/);
      expect(() => parseDaemonUrl(bad)).not.toThrow(/s3cr3t/);
    }
    expect(() => parseDaemonUrl('ftp://h:1')).toThrow(/unsupported scheme/);
  });

  it("takes http:// and https:// (codex-remote's direct addresses) as the daemon's ws:// and wss://", () => {
    expect(parseDaemonUrl('http://127.0.0.1:7337')).toMatchObject({ wsUrl: 'ws://127.0.0.1:7337/', display: 'ws://127.0.0.1:7337', tcp: { host: '127.0.0.1', port: 7337 } });
    expect(parseDaemonUrl('HTTPS://gpu1.example:8443')).toMatchObject({ wsUrl: 'wss://gpu1.example:8443/' });
    expect(() => parseDaemonUrl('http://user:s3cr3t@h:1')).toThrow(/credentials/);
  });
});
