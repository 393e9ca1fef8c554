// A server started by `npm start` ends with its npm. The start script execs node, so npm's own
// signal forwarding delivers a supervisor's SIGTERM to the server; this watch covers an npm that dies
// without forwarding (SIGKILL, a crash): the server would otherwise be re-parented and keep listening,
// holding the port and the data dir lock, with nobody left to stop it.
// Only under npm: a server started with `nohup amp-relay serve &` must outlive its shell.

const PARENT_POLL_MS = 1000;

/** The parent when this module loaded, at process start: npm may die before the server is up. */
export const PARENT_AT_START = process.ppid;

/** True when this process runs as an `npm start` script (npm sets npm_lifecycle_event for scripts). */
export function startedByNpmStart(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.npm_lifecycle_event === 'start';
}

/**
 * Calls onGone once as soon as `parent` is no longer this process's parent (it exited and we were
 * re-parented), checking at once and then every pollMs. Returns a function that ends the watch.
 */
export function watchParent(parent: number, onGone: () => void, pollMs = PARENT_POLL_MS): () => void {
  const check = () => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone();
  };
  const timer = setInterval(check, pollMs);
  setImmediate(check);
  timer.unref();
  return () => clearInterval(timer);
}
