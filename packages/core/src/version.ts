/** tether's version, reported by `info()` and the daemon's hello. Kept equal to package.json by a test. */
export const VERSION = '0.1.0';
