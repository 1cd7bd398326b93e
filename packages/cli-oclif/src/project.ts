import type { ExecStartParams, MachineApi } from '@tether/core';
import { CliError } from './cliError.js';
import type { Machines } from './machines.js';

/** Labels a project execution carries, so `exec result` shows what the user asked for. */
export const PROJECT_LABELS = { project: 'tether.project', ref: 'tether.ref', commit: 'tether.commit', cmd: 'tether.cmd' } as const;

/** The line the project wrapper prints on stderr with the artifacts manifest before the worktree is removed. */
export const ARTIFACTS_MARKER = '[tether] artifacts: ';

/**
 * Runs the user's command in a fresh git worktree of the mirror at the commit, then removes the
 * worktree (also when the command fails, or is cancelled with TERM/INT/HUP). Everything user-given
 * arrives in environment variables, never spliced into the script. Before the removal, a
 * `.codex/artifacts.json` the command left in the worktree is printed on stderr after
 * ARTIFACTS_MARKER (one line), so it outlives the worktree in the execution's record.
 */
const WRAPPER = `set -u
m=$TETHER_PROJECT_MIRROR
case $m in "~"|"~/"*) m=$HOME\${m#"~"} ;; esac
w=$(mktemp -d "\${TMPDIR:-/tmp}/tether-worktree.XXXXXX") || exit 125
cleanup() {
  if [ -f "$w/tree/.codex/artifacts.json" ]; then
    printf '%s' '${ARTIFACTS_MARKER}' >&2
    tr -d '\\n\\r' < "$w/tree/.codex/artifacts.json" | head -c 65536 >&2
    echo >&2
  fi
  git -C "$m" worktree remove --force "$w/tree" >/dev/null 2>&1
  rm -rf "$w"
  git -C "$m" worktree prune >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP
git -C "$m" worktree add --detach --quiet "$w/tree" "$TETHER_PROJECT_COMMIT" >&2 || { echo "tether: could not create a worktree of $m at $TETHER_PROJECT_COMMIT" >&2; exit 125; }
cd "$w/tree/\${TETHER_PROJECT_SUBDIR:-.}" || exit 125
TETHER_WORKTREE=$w/tree
export TETHER_WORKTREE
"\${TETHER_PROJECT_SHELL:-sh}" -c "$TETHER_PROJECT_CMD"
`;

/** Finds the ref in the mirror (fetching once if the mirror lacks it) and prints the commit. */
const RESOLVE = `m=$1 ref=$2
case $m in "~"|"~/"*) m=$HOME\${m#"~"} ;; esac
[ -d "$m" ] || { echo "no such directory: $m" >&2; exit 3; }
git -C "$m" rev-parse --git-dir >/dev/null 2>&1 || { echo "not a git repository: $m" >&2; exit 3; }
git -C "$m" rev-parse --verify --quiet "$ref^{commit}" && exit 0
git -C "$m" fetch --quiet --prune >/dev/null 2>&1
git -C "$m" rev-parse --verify --quiet "$ref^{commit}" || { echo "no commit for ref $ref in $m" >&2; exit 4; }
`;

/** The mirror of project `project` on machine `machine` (from `projects:` in the config). */
export async function projectMirror(machines: Machines, machine: string, project: string): Promise<string> {
  const config = await machines.config();
  const projects = machine === 'local' ? config.projects : (await machines.configured(machine)).config['projects'];
  const entry = (projects as Record<string, string | { mirror: string }> | undefined)?.[project];
  if (entry === undefined) {
    const known = Object.keys(projects ?? {});
    throw new CliError('INVALID_ARGUMENT', `unknown project_id: ${project} (machine ${machine} has no project ${project})`, {
      hint: known.length > 0 ? `projects of ${machine}: ${known.join(', ')}` : `add it to ${config.path}: ${machine === 'local' ? 'projects' : `machines[…].projects`}: { ${project}: /path/to/${project}.git }`,
    });
  }
  return typeof entry === 'string' ? entry : entry.mirror;
}

/**
 * The execution spec for `--project P --ref R`: checks the ref on the machine first (a bad ref
 * or mirror is a clear error before anything runs), then wraps the command to run in a worktree
 * at the resolved commit. `cwd`, if given, is a directory inside the worktree.
 */
export async function projectSpec(machine: MachineApi, spec: ExecStartParams, options: { project: string; ref: string; mirror: string; subdir?: string }): Promise<ExecStartParams> {
  const { project, ref, mirror, subdir } = options;
  if (spec.command === undefined) throw new CliError('USAGE', '--project needs --cmd (or --script)');
  if (subdir !== undefined && (subdir.startsWith('/') || subdir.split('/').includes('..'))) {
    throw new CliError('INVALID_ARGUMENT', '--cwd with --project is a directory inside the worktree: a relative path without ..', { hint: 'e.g. --cwd src/app' });
  }
  const check = await machine.exec.start({ argv: ['sh', '-c', RESOLVE, 'sh', mirror, ref], labels: { 'tether.preflight': 'project' }, env: { GIT_TERMINAL_PROMPT: '0' } });
  const done = check.status === 'finished' ? check : await machine.exec.wait(check.id);
  const { lines } = await machine.exec.logs(check.id, { streams: ['stdout', 'stderr'], tailLines: 5 });
  if (done.endReason !== 'exited' || done.exitCode !== 0) {
    const why = lines.map((l) => l.line).filter((l) => l !== '').join('; ') || done.error?.message || `exit ${done.exitCode}`;
    throw new CliError('INVALID_ARGUMENT', `--project ${project} --ref ${ref}: ${why}`, {
      hint: done.exitCode === 4 ? `check the ref: git -C ${mirror} branch -a / tag (the mirror was fetched once)` : `check the mirror of ${project} on the machine (projects: in the config); create it with git clone --mirror URL ${mirror}`,
    });
  }
  const commit = lines.find((l) => l.stream === 'stdout' && /^[0-9a-f]{40,64}$/.test(l.line))?.line;
  if (!commit) throw new CliError('INTERNAL', `--project ${project}: could not read the commit of ${ref}`);
  // The wrapper starts in the daemon's directory and changes into the worktree itself.
  const { cwd: _cwd, ...rest } = spec;
  return {
    ...rest,
    command: WRAPPER,
    shell: 'sh',
    env: {
      ...spec.env,
      GIT_TERMINAL_PROMPT: '0',
      TETHER_PROJECT: project,
      TETHER_PROJECT_MIRROR: mirror,
      TETHER_PROJECT_REF: ref,
      TETHER_PROJECT_COMMIT: commit,
      TETHER_PROJECT_CMD: spec.command,
      ...(spec.shell !== undefined ? { TETHER_PROJECT_SHELL: spec.shell } : {}),
      ...(subdir !== undefined ? { TETHER_PROJECT_SUBDIR: subdir } : {}),
    },
    labels: { ...spec.labels, [PROJECT_LABELS.project]: project, [PROJECT_LABELS.ref]: ref, [PROJECT_LABELS.commit]: commit, [PROJECT_LABELS.cmd]: spec.command },
  };
}

/** What `exec result` adds for a project execution: the project, the ref and the commit it ran at. */
export function projectOf(labels: Readonly<Record<string, string>> | undefined): { name: string; ref: string; commit: string } | undefined {
  const name = labels?.[PROJECT_LABELS.project];
  if (name === undefined) return undefined;
  return { name, ref: labels![PROJECT_LABELS.ref] ?? '', commit: labels![PROJECT_LABELS.commit] ?? '' };
}

const ARTIFACTS_MAX_BYTES = 64 * 1024;

/**
 * The artifacts manifest (`.codex/artifacts.json`, any JSON) of a finished execution: for a
 * project execution the copy its wrapper printed before removing the worktree; otherwise the
 * file in its working directory, if the machine lets us read it. Undefined when there is none.
 */
export async function artifactsOf(machine: MachineApi, state: { id: string; status: string; spec: { cwd?: string; labels?: Record<string, string> } | null }): Promise<unknown> {
  if (state.status !== 'finished') return undefined;
  if (state.spec?.labels?.[PROJECT_LABELS.project] !== undefined) {
    const { lines } = await machine.exec.logs(state.id, { streams: ['stderr'], tailBytes: ARTIFACTS_MAX_BYTES + 4096 });
    const line = [...lines].reverse().find((l) => l.line.startsWith(ARTIFACTS_MARKER));
    return line === undefined ? undefined : parseManifest(line.line.slice(ARTIFACTS_MARKER.length));
  }
  const cwd = state.spec?.cwd;
  if (cwd === undefined) return undefined;
  try {
    const page = await machine.fs.read(`${cwd.replace(/\/$/, '')}/.codex/artifacts.json`, { length: ARTIFACTS_MAX_BYTES });
    return parseManifest(new TextDecoder().decode(page.data));
  } catch {
    return undefined; // no manifest, or outside the machine's roots
  }
}

function parseManifest(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { error: 'the artifacts manifest is not valid JSON', text: text.slice(0, 1000) };
  }
}
