import { describe, expect, it } from 'vitest';
import { isTetherError } from '../errors.js';
import { excludeMatcher } from './excludeMatcher.js';

const matches = (patterns: string[], path: string, isDirectory = false) => excludeMatcher(patterns).excludes(path, isDirectory);

describe('excludeMatcher', () => {
  it('matches a pattern without a slash against the name at any depth', () => {
    expect(matches(['node_modules'], 'node_modules', true)).toBe(true);
    expect(matches(['node_modules'], 'a/b/node_modules', true)).toBe(true);
    expect(matches(['node_modules'], 'a/node_modules_x', true)).toBe(false);
    expect(matches(['*.log'], 'x.log')).toBe(true);
    expect(matches(['*.log'], 'deep/er/x.log')).toBe(true);
    expect(matches(['*.log'], 'x.log.gz')).toBe(false);
    expect(matches(['?.txt'], 'dir/a.txt')).toBe(true);
    expect(matches(['?.txt'], 'dir/ab.txt')).toBe(false);
  });

  it('anchors a pattern with a slash at the root', () => {
    expect(matches(['build/**'], 'build/a')).toBe(true);
    expect(matches(['build/**'], 'build/a/b/c.o')).toBe(true);
    expect(matches(['build/**'], 'build', true)).toBe(false);
    expect(matches(['build/**'], 'sub/build/a')).toBe(false);
    expect(matches(['/dist'], 'dist', true)).toBe(true);
    expect(matches(['/dist'], 'a/dist', true)).toBe(false);
    expect(matches(['src/gen'], 'src/gen', true)).toBe(true);
    expect(matches(['src/*.js'], 'src/a.js')).toBe(true);
    expect(matches(['src/*.js'], 'src/sub/a.js')).toBe(false);
  });

  it('lets a ** segment match zero or more directories', () => {
    const pattern = ['a/' + '**' + '/b'];
    expect(matches(pattern, 'a/b')).toBe(true);
    expect(matches(pattern, 'a/x/y/b')).toBe(true);
    expect(matches(pattern, 'a/xb')).toBe(false);
    expect(matches(['**' + '/cache'], 'cache', true)).toBe(true);
    expect(matches(['**' + '/cache'], 'p/q/cache', true)).toBe(true);
  });

  it('applies a trailing slash to directories only', () => {
    expect(matches(['cache/'], 'x/cache', true)).toBe(true);
    expect(matches(['cache/'], 'x/cache', false)).toBe(false);
  });

  it('treats regex characters literally', () => {
    expect(matches(['a+b(1).txt'], 'a+b(1).txt')).toBe(true);
    expect(matches(['a.txt'], 'abtxt')).toBe(false);
  });

  it('refuses empty and negated patterns', () => {
    for (const bad of ['', '  ', '!keep', '/', '//']) {
      let error: unknown;
      try {
        excludeMatcher([bad]);
      } catch (e) {
        error = e;
      }
      expect(isTetherError(error, 'INVALID_ARGUMENT'), bad).toBe(true);
    }
    expect(excludeMatcher([]).empty).toBe(true);
    expect(excludeMatcher([]).excludes('anything', false)).toBe(false);
  });
});
