// Which Node.js amp-relay runs on. The uWebSockets.js build we depend on (@trufflesuite/uws-js-unofficial
// 20.30) has a native binary for Node 20's ABI (115), not for 22 or later, and without its binary it
// falls back to a pure-JS server that crashes (src/transport/uws.ts). bin/amp-relay.js calls this before
// importing anything else, so another Node fails at once with this message instead of deep in a load.
// Keep in step with "engines" in package.json; README "Node versions" has the situation and upgrade path.

/** The supported range, for messages: Node 20, from 20.19 (as package.json's engines says). */
export const SUPPORTED_NODE = '20.19 or a later 20.x';
const MAJOR = 20;
const MIN_MINOR = 19;

/** Why this Node version cannot run amp-relay, or undefined when it can. `version` is process.versions.node. */
export function nodeVersionProblem(version: string): string | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  const ok = m !== null && Number(m[1]) === MAJOR && Number(m[2]) >= MIN_MINOR;
  if (ok) return undefined;
  return (
    `amp-relay runs on Node.js ${SUPPORTED_NODE}; this is Node.js ${version}. ` +
    'Its uWebSockets.js build has a native binary for Node 20 only (newer uWebSockets.js builds need ' +
    'glibc 2.38 or later). Install Node 20 (e.g. nvm install 20) and try again; ' +
    'the README section "Node versions" has the details.'
  );
}
