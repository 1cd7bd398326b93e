import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isMap, isSeq, parseDocument, type Document } from 'yaml';
import { CliError } from './cliError.js';
import { parseConfig } from './config/configFile.js';

/**
 * `machine add` / `machine remove`: edits the machines of the config file in place, keeping its
 * comments and layout (a list or a map of machines, whichever the file uses). The result is
 * validated as the CLI validates any config before it is written, and written atomically (temp
 * file + rename) with the file's mode (0600 for a new file: it may hold tokens).
 */
export async function editMachines(path: string, edit: (doc: Document, form: 'list' | 'map') => void): Promise<void> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw new CliError('CONFIG_INVALID', `cannot read the config file ${path}: ${error.code ?? String(error)}`, { hint: `check the permissions of ${path}` });
  });
  parseConfig(text || '{}', path); // refuse to edit a file that is already broken
  const doc = parseDocument(text);
  if (doc.contents === null) doc.contents = doc.createNode({}) as never;
  const machines = doc.get('machines');
  const form = isMap(machines) ? 'map' : 'list';
  if (machines === undefined || machines === null) doc.set('machines', doc.createNode([]));
  else if (!isSeq(machines) && !isMap(machines)) throw new CliError('CONFIG_INVALID', `${path}: machines: expected a list or a map`, { hint: `fix ${path}` });
  edit(doc, form);
  const next = doc.toString();
  parseConfig(next, path);
  const mode = ((await stat(path).catch(() => undefined))?.mode ?? 0o600) & 0o777;
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tether-${process.pid}.tmp`;
  try {
    const file = await open(temp, 'w', mode);
    try {
      await file.chmod(mode); // whatever the umask
      await file.writeFile(next);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw new CliError('PERMISSION_DENIED', `cannot write ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
}

/**
 * Sets one field of a configured machine (`machine trust`), through `editMachines`. `where` is
 * the machine's place as `ConfiguredMachine.where` says it (`machines[2]`, `machines.gpu1`).
 * Returns the field's previous value.
 */
export async function setMachineField(path: string, where: string, field: string, value: string): Promise<unknown> {
  const match = /^machines(?:\[(\d+)\]|\.(.+))$/.exec(where);
  if (!match) throw new CliError('CONFIG_INVALID', `${path}: cannot find ${where}`);
  const at = ['machines', match[1] !== undefined ? Number(match[1]) : match[2]!];
  let previous: unknown;
  await editMachines(path, (doc) => {
    previous = doc.getIn([...at, field]);
    if (doc.getIn(at) === null || doc.getIn(at) === undefined) doc.setIn(at, doc.createNode({ [field]: value }));
    else doc.setIn([...at, field], value);
  });
  return previous;
}

/** The index (list form) or key (map form) of machine `name`, or undefined. */
export function findMachine(doc: Document, form: 'list' | 'map', name: string): number | string | undefined {
  const machines = doc.get('machines');
  if (form === 'map' && isMap(machines)) return machines.has(name) ? name : undefined;
  if (!isSeq(machines)) return undefined;
  const index = machines.items.findIndex((item) => isMap(item) && item.get('name') === name);
  return index === -1 ? undefined : index;
}
