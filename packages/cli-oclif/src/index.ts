// The public API of @tether/cli, for plugin authors and tools around the CLI (the CLI itself is
// bin/run.js). Importing it loads the config parser, not the kernel.
export type { KernelPluginDeclaration, StandardSchema, StandardResult } from './kernelPlugins.js';
export { loadConfig, parseConfig, MachineFields, type TetherConfig, type ConfiguredMachine } from './config/configFile.js';
export { tetherPaths, daemonFiles, type TetherPaths, type DaemonFiles } from './paths.js';
export { EXIT_CODES } from './cliError.js';
export { parseDuration, parseTime } from './duration.js';
