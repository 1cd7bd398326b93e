import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import type { MachineConfig } from '@tether/core';
import { CliError } from '../cliError.js';
import { formatIssues, type Issue } from './formatIssues.js';
import { suggestion } from './unknownFields.js';

/** A configured machine, with where it was written (for messages): `machines[2]`, `machines.gpu1`. */
export interface ConfiguredMachine {
  readonly config: MachineConfig;
  readonly where: string;
}

/** The config file, validated. A missing default file is an empty config: only `local`. */
export interface TetherConfig {
  /** The file read (or that would have been read). */
  readonly path: string;
  readonly exists: boolean;
  /** Configured machines besides `local`, in file order, each with its `transport` set. */
  readonly machines: readonly ConfiguredMachine[];
  /** Config of the local daemon's kernel plugins, by plugin name (`@tether/plugin-filesystem: { roots: [...] }`). */
  readonly plugins: Readonly<Record<string, unknown>>;
  /** True when this is codex-remote's config (`~/.config/codex-remote/config.yaml`), read because tether has none. */
  readonly codexRemote?: boolean;
  /** The projects of `local` (top-level `projects:`). */
  readonly projects?: Readonly<Record<string, string | { readonly mirror: string }>>;
  /** Settings of `daemon serve` on this machine (`daemon:` section): registering with a relay. */
  readonly daemon: DaemonSettings;
}

/** The `daemon:` section: `relay` and `environment` together, to serve through a relay. */
export const DaemonSection = z
  .strictObject({
    relay: z.string().regex(/^wss?:\/\/\S+$/, 'the relay URL: wss://host:port').optional(),
    environment: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'an environment is 1-64 letters, digits, _ or -').optional(),
    relay_credential_file: z.string().min(1).optional(),
    relay_ca_file: z.string().min(1).optional(),
    /** The daemon's default process backend (`slurm`): what executions run on when they name none. */
    default_backend: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'a backend name: 1-32 of a-z 0-9 - starting with a letter').optional(),
  })
  .refine((d) => (d.relay === undefined) === (d.environment === undefined), { message: 'set relay and environment together', path: ['environment'] });
export type DaemonSettings = z.infer<typeof DaemonSection>;

/**
 * The fields every machine may have: tether's `name` and `transport`, and the fields existing
 * `codex-remote` configs carry. A transport plugin validates its own fields on top (see
 * `machineSchemas` in the plugin guide); other fields are kept for it, and a field neither
 * knows is an error once the machine's transport is loaded (`checkMachineFields`).
 */
export const MachineFields = z.looseObject({
  name: z
    .string()
    .min(1)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a machine name is letters, digits, . _ - and starts with a letter or digit'),
  transport: z.string().min(1).optional(),
  ssh: z.string().min(1).optional(),
  addr: z.string().min(1).optional(),
  token: z.string().min(1).optional(),
  token_file: z.string().min(1).optional(),
  daemon_port: z.number().int().min(1).max(65535).optional(),
  daemon_cmd: z.string().min(1).optional(),
  use_direct_addr: z.boolean().optional(),
  /** Commands run with `sh -lc` and PYTHONUNBUFFERED=1 (as codexd runs them). Default true except on `local`. */
  login_shell: z.boolean().optional(),
  /** The process backend of `exec run/start` on this machine when `--backend` is not given (`slurm`). */
  default_backend: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'a backend name: 1-32 of a-z 0-9 - starting with a letter').optional(),
  /** Groups for fan-out: `--machine @gpu` addresses every machine labelled `gpu`. */
  labels: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a label is letters, digits, . _ - and starts with a letter or digit')).optional(),
  /** `exec start --project P --ref R`: git mirrors on the machine, by project name. */
  projects: z.lazy(() => Projects).optional(),
});

/** The names of the fields every machine may have, whatever its transport. */
export const COMMON_MACHINE_FIELDS: readonly string[] = Object.keys(MachineFields.shape);

/**
 * Aliases the YAML parser expands before it refuses the document (the library's default, made
 * explicit): a few anchors are normal (shared machine settings), an exponential "billion laughs"
 * expansion is not.
 */
const MAX_ALIASES = 100;

/** Projects: `name: /path/to/mirror.git` or `name: { mirror: /path/to/mirror.git }` (a bare clone, e.g. git clone --mirror). */
export const Projects = z.record(
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a project name is letters, digits, . _ - and starts with a letter or digit'),
  z.union([z.string().min(1), z.looseObject({ mirror: z.string().min(1) })]),
);

const ConfigShape = z.looseObject({
  machines: z.union([z.array(z.unknown()), z.record(z.string(), z.unknown()), z.null()]).optional(),
  plugins: z.union([z.record(z.string(), z.unknown()), z.null()]).optional(),
  /** The projects of `local`. */
  projects: z.union([Projects, z.null()]).optional(),
  daemon: z.union([DaemonSection, z.null()]).optional(),
});

/** The top-level sections of the config file; any other key is an error (a typo, most likely). */
export const TOP_LEVEL_FIELDS: readonly string[] = Object.keys(ConfigShape.shape);

/**
 * Reads and validates the config file. `explicit`: the path was given with `--config`, so a
 * missing file is an error rather than an empty config. Fails with `CONFIG_INVALID` naming the
 * file and the bad field (`machines[2].daemon_port: expected a number`).
 */
export async function loadConfig(path: string, explicit: boolean, fallback?: string): Promise<TetherConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) {
      const legacy = fallback === undefined ? undefined : await readFile(fallback, 'utf8').catch(() => undefined);
      if (legacy !== undefined) return fromCodexRemote(parseConfig(legacy, fallback!));
      return { path, exists: false, machines: [], plugins: {}, daemon: {} };
    }
    throw new CliError('CONFIG_INVALID', `cannot read the config file ${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? String(error))}`, {
      hint: explicit ? 'check the path given with --config' : `check the permissions of ${path}`,
      cause: error,
    });
  }
  return parseConfig(text, path);
}

/**
 * A codex-remote config read in place of tether's own (same machine fields). A `daemon_cmd`
 * that starts codexd is dropped: `machine up` must start tether's daemon, not codexd.
 */
function fromCodexRemote(config: TetherConfig): TetherConfig {
  const machines = config.machines.map(({ config: machine, where }) => {
    if (typeof machine.daemon_cmd !== 'string' || !/\bcodexd\b/.test(machine.daemon_cmd)) return { config: machine, where };
    const { daemon_cmd: _codexd, ...rest } = machine;
    return { config: rest as MachineConfig, where };
  });
  return { ...config, machines, codexRemote: true };
}

/** Validates config text (YAML). Exported for tests and for `machine add`-style tools. */
export function parseConfig(text: string, path: string): TetherConfig {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const where = first.linePos?.[0] ? ` at line ${first.linePos[0].line}, column ${first.linePos[0].col}` : '';
    const message = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new CliError('CONFIG_INVALID', `${path}: invalid YAML${where}: ${message}`, {
      hint: `fix the YAML syntax of ${path} (or pass another file with --config)`,
    });
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIASES }) ?? {};
  } catch (error) {
    // The yaml library throws a ReferenceError for alias expansion past maxAliasCount.
    throw new CliError('CONFIG_INVALID', `${path}: invalid YAML: ${(error as Error).message}`, {
      hint: `${path} expands YAML aliases (*name) more than ${MAX_ALIASES} times: write the values out instead of nesting aliases`,
      cause: error,
    });
  }
  const shape = ConfigShape.safeParse(raw);
  if (!shape.success) throw invalid(path, shape.error.issues, []);
  const unknownTop = Object.keys(shape.data).find((key) => !TOP_LEVEL_FIELDS.includes(key));
  if (unknownTop !== undefined) {
    throw new CliError('CONFIG_INVALID', `${path}: ${unknownTop}: unknown field${suggestion(unknownTop, TOP_LEVEL_FIELDS)}`, {
      hint: `the top level of ${path} has ${TOP_LEVEL_FIELDS.join(', ')} only: rename or remove ${unknownTop}`,
    });
  }

  const machines: ConfiguredMachine[] = [];
  const entries: Array<{ where: string; path: Array<string | number>; value: unknown }> = [];
  const list = shape.data.machines;
  if (Array.isArray(list)) {
    list.forEach((value, i) => entries.push({ where: `machines[${i}]`, path: ['machines', i], value }));
  } else if (list) {
    for (const [name, value] of Object.entries(list)) {
      const withName = value === null ? { name } : typeof value === 'object' && !Array.isArray(value) ? { name, ...(value as object) } : value;
      entries.push({ where: `machines.${name}`, path: ['machines', name], value: withName });
    }
  }
  const seen = new Set<string>();
  for (const entry of entries) {
    const parsed = MachineFields.safeParse(entry.value);
    if (!parsed.success) throw invalid(path, parsed.error.issues, entry.path);
    const machine = parsed.data;
    if (machine.name === 'local') {
      throw new CliError('CONFIG_INVALID', `${path}: ${entry.where}.name: "local" is reserved for this machine (served by the local daemon)`, {
        hint: 'rename the machine',
      });
    }
    if (seen.has(machine.name)) {
      throw new CliError('CONFIG_INVALID', `${path}: ${entry.where}.name: machine "${machine.name}" is configured twice`, { hint: 'remove or rename one of them' });
    }
    seen.add(machine.name);
    const transport = machine.transport ?? (machine.ssh !== undefined ? 'ssh' : machine.addr !== undefined ? 'ws' : undefined);
    if (transport === undefined) {
      throw new CliError('CONFIG_INVALID', `${path}: ${entry.where}: machine "${machine.name}" has no transport: set transport, or ssh (ssh transport) or addr (ws transport)`, {
        hint: 'e.g. "- { name: gpu1, ssh: gpu1.example }" or "- { name: box, addr: ws://10.0.0.5:7337, token_file: ~/.config/tether/box.token }"',
      });
    }
    machines.push({ config: { ...machine, transport } as MachineConfig, where: entry.where });
  }
  return { path, exists: true, machines, plugins: shape.data.plugins ?? {}, daemon: shape.data.daemon ?? {}, ...(shape.data.projects ? { projects: shape.data.projects } : {}) };
}

function invalid(path: string, issues: readonly Issue[], prefix: ReadonlyArray<string | number>): CliError {
  return new CliError('CONFIG_INVALID', `${path}: ${formatIssues(issues, prefix)}`, {
    hint: `fix the field in ${path} (machines: a list of { name, transport?, ssh?, addr?, token?, token_file?, daemon_port?, daemon_cmd?, use_direct_addr?, labels? })`,
  });
}
