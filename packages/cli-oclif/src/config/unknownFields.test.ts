import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { COMMON_MACHINE_FIELDS } from './configFile.js';
import { checkMachineFields, didYouMean } from './unknownFields.js';
import { WsMachineFields } from './wsMachineFields.js';

/** A strict schema that does not say which fields it has (only its issues tell). */
const opaqueStrict = {
  '~standard': {
    validate: (value: unknown) => {
      const extra = Object.keys(value as object).filter((k) => k !== 'target');
      return extra.length > 0 ? { issues: extra.map((k) => ({ message: `Unknown key ${k}`, path: [k] })) } : { value };
    },
  },
};

describe('unknown machine fields', () => {
  it('suggests a close field name, nothing for a far one', () => {
    expect(didYouMean('daemon_prot', ['daemon_port', 'daemon_cmd', 'token'])).toBe('daemon_port');
    expect(didYouMean('colour', ['daemon_port', 'token'])).toBeUndefined();
  });

  it('a field neither every machine nor the transport has is named, before other issues', async () => {
    const machine = { name: 'box', transport: 'ws', adr: 'ws://h:1', token: '0123456789abcdef0' };
    expect(await checkMachineFields(WsMachineFields, machine, COMMON_MACHINE_FIELDS)).toMatchObject({ unknown: 'adr', known: expect.arrayContaining(['addr', 'ca_file']) });
  });

  it('fields every machine may have (codex-remote ones too) are not unknown to a strict schema', async () => {
    const machine = { name: 'box', transport: 'ws', addr: 'ws://h:1', token: '0123456789abcdef0', daemon_port: 7, use_direct_addr: true };
    expect(await checkMachineFields(WsMachineFields, machine, COMMON_MACHINE_FIELDS)).toBeUndefined();
    expect(await checkMachineFields(WsMachineFields, { name: 'box', addr: 'ws://h:1' }, COMMON_MACHINE_FIELDS)).toMatchObject({ issue: { message: expect.stringMatching(/set token or token_file/) } });
  });

  it('works from a loose zod schema (its shape) and from a strict schema that does not list its fields', async () => {
    const loose = z.looseObject({ target: z.string() });
    expect(await checkMachineFields(loose, { name: 'a', target: 'x', targte: 'y' }, COMMON_MACHINE_FIELDS)).toMatchObject({ unknown: 'targte' });
    expect(await checkMachineFields(opaqueStrict, { name: 'a', target: 'x' }, COMMON_MACHINE_FIELDS)).toBeUndefined();
    expect(await checkMachineFields(opaqueStrict, { name: 'a', target: 'x', secret: 'y' }, COMMON_MACHINE_FIELDS)).toMatchObject({ unknown: 'secret' });
  });
});
