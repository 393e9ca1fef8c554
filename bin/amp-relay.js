#!/usr/bin/env node
// Entry point of the `amp-relay` command: runs the compiled CLI (npm run build makes dist/).
import { main } from '../dist/src/cli.js';

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
