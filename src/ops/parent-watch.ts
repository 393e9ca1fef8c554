// A server started by `npm start` ends with its npm. The start script execs node, so npm's own
// signal forwarding delivers a supervisor's SIGTERM to the server; this watch covers an npm that dies
// without forwarding (SIGKILL, a crash): the server would otherwise be re-parented and keep listening,
// holding the port and the data dir lock, with nobody left to stop it.
// `npx amp-relay serve` (npm exec) is watched too: npm exec does not forward a SIGTERM at all, so
// `kill <npx pid>` would orphan the server. Only under npm: a server started with
// `nohup amp-relay serve &` must outlive its shell (under `nohup npx …`, npx lives on, and so does it).

import { readFileSync } from 'node:fs';

const PARENT_POLL_MS = 1000;

/** The parent when this module loaded, at process start: npm may die before the server is up. */
export const PARENT_AT_START = process.ppid;

/**
 * True when npm started this process: an `npm start` script, or `npx` / `npm exec`. npm's variables
 * are inherited by everything below it (a test run under `npx vitest` that spawns a server through
 * bash), so npm must also be the parent, or the parent of the `sh -c` it runs us with.
 */
export function startedByNpm(env: NodeJS.ProcessEnv = process.env): boolean {
  const event = env.npm_lifecycle_event;
  if (event !== 'start' && event !== 'npx' && env.npm_command !== 'exec') return false;
  let pid = PARENT_AT_START;
  for (let hop = 0; hop < 2 && pid > 1; hop++) {
    const proc = procInfo(pid);
    if (!proc) return false;
    if (/^npm\b|[/\\]np[mx]-cli\.js\b/.test(proc.cmdline)) return true;
    pid = proc.ppid;
  }
  return false;
}

/** A process's command line and parent from /proc (Linux); undefined elsewhere or when it is gone. */
function procInfo(pid: number): { cmdline: string; ppid: number } | undefined {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return { cmdline, ppid };
  } catch {
    return undefined;
  }
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
