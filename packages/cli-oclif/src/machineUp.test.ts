import { describe, expect, it } from 'vitest';
import * as ssh from '@tether/transport-ssh';
import { daemonCommand } from './machineUp.js';

const target = (fields: Record<string, unknown>) => ({ ssh, config: ssh.machineSchema.parse({ ssh: 'gpu1', ...fields }) as never });

describe('daemonCommand', () => {
  it('is `tether daemon serve` on the daemon_port by default', () => {
    expect(daemonCommand(target({}))).toBe('tether daemon serve --listen 127.0.0.1:7337');
    expect(daemonCommand(target({ daemon_port: 9000 }))).toBe('tether daemon serve --listen 127.0.0.1:9000');
  });

  it('gives a daemon_cmd that serves without --listen the daemon_port, and leaves others as they are', () => {
    expect(daemonCommand(target({ daemon_cmd: '/opt/node/bin/node /opt/tether/bin/run.js daemon serve --data-dir /srv/t', daemon_port: 7400 }))).toBe(
      '/opt/node/bin/node /opt/tether/bin/run.js daemon serve --data-dir /srv/t --listen 127.0.0.1:7400',
    );
    expect(daemonCommand(target({ daemon_cmd: 'tether daemon serve --listen 127.0.0.1:7500', daemon_port: 7400 }))).toBe('tether daemon serve --listen 127.0.0.1:7500');
    expect(daemonCommand(target({ daemon_cmd: 'tether daemon serve --listen=none' }))).toBe('tether daemon serve --listen=none');
    expect(daemonCommand(target({ daemon_cmd: 'systemctl --user start tether' }))).toBe('systemctl --user start tether');
  });
});
