#!/usr/bin/env node
// Entry point of the `amp-relay` command: runs the compiled CLI (npm run build makes dist/).
// In a clone before its first build (no dist/, but scripts/ensure-built.mjs and TypeScript are
// there), it compiles first, saying so on stderr. Without them (an installed package is always
// built), it says how to build, in one line. While another process builds (dist/.build-lock
// exists), it waits for that build (ensure-built.mjs) rather than load a half-written dist/. The
// Node version is checked before the CLI (and uWebSockets.js, lmdb, sodium) is imported.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const path = (rel) => fileURLToPath(new URL(rel, import.meta.url));
// cli.js first, then the lock: a cli.js seen while a build writes it is seen with the lock.
if (!existsSync(path('../dist/src/cli.js')) || existsSync(path('../dist/.build-lock'))) {
  const ensureBuilt = path('../scripts/ensure-built.mjs');
  if (!existsSync(ensureBuilt) || !existsSync(path('../node_modules/typescript/bin/tsc'))) {
    process.stderr.write(
      'amp-relay is not built: run `npm ci` (its dependencies) then `npm run build` in its directory\n',
    );
    process.exit(1);
  }
  // The compiler's output goes to stderr: stdout is the command's (`amp-relay keygen > key.pem`).
  if (spawnSync(process.execPath, [ensureBuilt], { stdio: ['ignore', 2, 2] }).status !== 0) process.exit(1);
}
const { nodeVersionProblem } = await import('../dist/src/node-version.js');
const problem = nodeVersionProblem(process.versions.node);
if (problem) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}
const { main } = await import('../dist/src/cli.js');
const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
