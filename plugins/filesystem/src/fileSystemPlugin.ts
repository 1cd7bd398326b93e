import { FileSystemBackend, PLUGIN_API_VERSION, definePlugin } from '@tether/core';
import { FileSystemConfig } from './fileSystemConfig.js';
import { LocalFileSystemBackend } from './localFileSystemBackend.js';

/**
 * `@tether/plugin-filesystem`: provides `FileSystemBackend` as a `LocalFileSystemBackend`
 * confined to the configured roots (see `FileSystemConfig`). Open uploads are aborted when the
 * kernel is disposed.
 */
export const fileSystemPlugin = definePlugin({
  name: '@tether/plugin-filesystem',
  apiVersion: PLUGIN_API_VERSION,
  configSchema: FileSystemConfig,
  register(ctx) {
    const backend = new LocalFileSystemBackend(ctx.config);
    ctx.provide(FileSystemBackend, { useValue: backend });
    ctx.onDispose(() => backend.close());
  },
});
