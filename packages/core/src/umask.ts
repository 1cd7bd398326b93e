/** The umask the process had before `restrictUmask`, while a restriction is in force. */
let userUmask: number | undefined;

/**
 * Makes every file and directory this process creates from now on private to its user
 * (umask 077), including those a native library creates on its own threads (LevelDB's tables,
 * logs and manifests). A daemon calls it before opening its store. Returns a function that puts
 * the previous umask back. Child processes should not inherit the restriction: spawn them inside
 * `withUserUmask`.
 */
export function restrictUmask(): () => void {
  const previous = process.umask(0o077);
  if (userUmask === undefined) userUmask = previous;
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    process.umask(previous);
    if (previous === userUmask) userUmask = undefined;
  };
}

/**
 * Runs `spawn` with the umask the user had before `restrictUmask`, so a command started inside
 * creates files as it would from the user's shell (umask is inherited at fork). `spawn` must be
 * synchronous (`child_process.spawn`, node-pty's `spawn`): the restriction is back before any
 * other code runs. Without a restriction in force it just runs `spawn`.
 */
export function withUserUmask<T>(spawn: () => T): T {
  if (userUmask === undefined) return spawn();
  const restricted = process.umask(userUmask);
  try {
    return spawn();
  } finally {
    process.umask(restricted);
  }
}
