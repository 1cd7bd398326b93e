// The public API of @tether/plugin-filesystem.
import { fileSystemPlugin } from './fileSystemPlugin.js';

export { LocalFileSystemBackend, type LocalFileSystemBackendOptions } from './localFileSystemBackend.js';
export { FileSystemConfig, type FileSystemConfigInput } from './fileSystemConfig.js';
export { fileSystemPlugin };
export default fileSystemPlugin;
