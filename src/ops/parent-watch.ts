// A server started by `npm start` ends with its npm. The start script execs node, so npm's own
// signal forwarding delivers a supervisor's SIGTERM to the server; this watch covers an npm that dies
// without forwarding (SIGKILL, a crash): the server would otherwise be re-parented and keep listening,
// holding the port and the data dir lock, with nobody left to stop it.
// Only under npm: a server started with `nohup amp-relay serve &` must outlive its shell.

const PARENT_POLL_MS = 1000;

/** True when this process runs as an `npm start` script (npm sets npm_lifecycle_event for scripts). */
export function startedByNpmStart(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.npm_lifecycle_event === 'start';
}

/** Calls onGone once when the parent process changes (it exited and we were re-parented). Returns a stop function. */
export function watchParent(onGone: (parentPid: number) => void, pollMs = PARENT_POLL_MS): () => void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone(parent);
  }, pollMs);
  timer.unref();
  return () => clearInterval(timer);
}
