import { TetherError } from '../errors.js';

/** Decides which entries a sync leaves alone. */
export interface ExcludeMatcher {
  /** True when no pattern was given (nothing is ever excluded). */
  readonly empty: boolean;
  /**
   * Whether the entry at `relPath` (relative to the sync root, `/`-separated, no leading `/`)
   * is excluded. Callers do not descend into an excluded directory, so everything below it is
   * excluded too.
   */
  excludes(relPath: string, isDirectory: boolean): boolean;
}

/**
 * Compiles exclude patterns (the `--exclude` values of `tether sync`), a small subset of
 * gitignore's syntax:
 *
 * - A pattern without a `/` (`node_modules`, `*.log`, `.env?`) matches an entry by its name, at
 *   any depth.
 * - A pattern with a `/` (`build/**`, `src/generated`, `/dist`) is matched against the whole
 *   path from the sync root; a leading `/` only anchors it there.
 * - A trailing `/` (`cache/`) matches directories only (it does not make the pattern anchored).
 * - `*` matches any run of characters except `/`, `?` one character except `/`, `**` any run
 *   including `/`. A `**` that fills a whole path segment may also match no segment at all:
 *   `a/`, `**`, `/b` written together match `a/b` as well as `a/x/y/b`. Everything else is
 *   literal (no `[…]` classes, no `\` escapes).
 * - Negation (`!pattern`) is not supported and is refused.
 *
 * `build/**` excludes what is inside `build` but not `build` itself (an empty `build/` is
 * still created); `build` excludes the directory and everything in it.
 *
 * Fails with `INVALID_ARGUMENT` for an empty pattern or one starting with `!`.
 */
export function excludeMatcher(patterns: readonly string[]): ExcludeMatcher {
  const rules = patterns.map(compile);
  return {
    empty: rules.length === 0,
    excludes(relPath, isDirectory) {
      const name = relPath.slice(relPath.lastIndexOf('/') + 1);
      return rules.some((rule) => (!rule.directoryOnly || isDirectory) && rule.regex.test(rule.anchored ? relPath : name));
    },
  };
}

interface Rule {
  readonly regex: RegExp;
  readonly anchored: boolean;
  readonly directoryOnly: boolean;
}

function compile(pattern: string): Rule {
  if (typeof pattern !== 'string' || pattern.trim() === '') throw new TetherError('INVALID_ARGUMENT', 'an exclude pattern must not be empty', { pattern });
  if (pattern.startsWith('!')) throw new TetherError('INVALID_ARGUMENT', `negated exclude patterns are not supported: ${pattern}`, { pattern });
  let body = pattern;
  const directoryOnly = body.endsWith('/');
  while (body.endsWith('/')) body = body.slice(0, -1);
  const anchored = body.includes('/');
  while (body.startsWith('/')) body = body.slice(1);
  if (body === '') throw new TetherError('INVALID_ARGUMENT', `the exclude pattern matches nothing: ${pattern}`, { pattern });
  return { regex: new RegExp(`^${globToRegExp(body)}$`, 's'), anchored, directoryOnly };
}

function globToRegExp(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      i++;
      if (glob[i + 1] === '/') {
        i++;
        out += '(?:.*/)?';
      } else {
        out += '.*';
      }
    } else if (c === '*') {
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else {
      out += c.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
    }
  }
  return out;
}
