import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import every workspace package from its TypeScript source, so a test run needs no
// build of the package under test. Child processes started by tests use the built `dist/`.
const workspaces: string[] = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).workspaces;

const alias = workspaces.flatMap((dir) => {
  const pkg = JSON.parse(readFileSync(new URL(`./${dir}/package.json`, import.meta.url), 'utf8'));
  return Object.keys(pkg.exports ?? { '.': null }).map((sub) => {
    const specifier = sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`;
    const entry = sub === '.' ? 'src/index.ts' : `src/${sub.slice(2)}/index.ts`;
    return {
      find: new RegExp(`^${specifier.replace(/[/.]/g, '\\$&')}$`),
      replacement: fileURLToPath(new URL(`./${dir}/${entry}`, import.meta.url)),
    };
  });
});

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      ...workspaces.map((dir) => ({
        extends: true,
        test: {
          name: JSON.parse(readFileSync(new URL(`./${dir}/package.json`, import.meta.url), 'utf8')).name,
          root: fileURLToPath(new URL(`./${dir}`, import.meta.url)),
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      })),
      // Tests across packages: the kernel with real backends and the LevelDB store, the README.
      {
        extends: true,
        test: { name: 'integration', root: fileURLToPath(new URL('./test', import.meta.url)), include: ['**/*.test.ts'], testTimeout: 120_000, hookTimeout: 60_000 },
      },
    ],
  },
});
