#!/usr/bin/env node
// Entry point of the `amp-relay` command: runs the compiled CLI (npm run build makes dist/).
// The Node version is checked first, before the CLI (and uWebSockets.js, lmdb, sodium) is imported.
import { nodeVersionProblem } from '../dist/src/node-version.js';

const problem = nodeVersionProblem(process.versions.node);
if (problem) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}
const { main } = await import('../dist/src/cli.js');
const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
