import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { CliError } from '../cliError.js';

/**
 * Sets one field of a configured machine in the config file, keeping its comments and layout.
 * `where` is the machine's place as `ConfiguredMachine.where` says it (`machines[2]`,
 * `machines.gpu1`). The file is replaced atomically with the same mode. Returns the field's
 * previous value.
 */
export async function setMachineField(path: string, where: string, field: string, value: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  const doc = parseDocument(text);
  const match = /^machines(?:\[(\d+)\]|\.(.+))$/.exec(where);
  if (!match) throw new CliError('CONFIG_INVALID', `${path}: cannot find ${where}`);
  const key = match[1] !== undefined ? Number(match[1]) : match[2]!;
  const at = ['machines', key];
  const previous = doc.getIn([...at, field]);
  if (doc.getIn(at) === null || doc.getIn(at) === undefined) doc.setIn(at, doc.createNode({ [field]: value }));
  else doc.setIn([...at, field], value);
  const mode = (await stat(path)).mode & 0o777;
  const temp = `${path}.${process.pid}.tmp`;
  try {
    const file = await open(temp, 'w', mode);
    try {
      await file.writeFile(doc.toString());
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw new CliError('PERMISSION_DENIED', `cannot write ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
  }
  return previous;
}
