#!/usr/bin/env node
// Compile TypeScript to dist/ when dist/ is missing or older than any source file, so that
// `npm start` and `npm test` work right after `npm ci` and always run current code.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const marker = join(root, 'dist', 'src', 'cli.js');

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const sourcesTime = Math.max(
  newest(join(root, 'src')),
  newest(join(root, 'proto')),
  statSync(join(root, 'tsconfig.json')).mtimeMs,
);
if (!existsSync(marker) || statSync(marker).mtimeMs < sourcesTime) {
  process.stderr.write('amp-relay: compiling TypeScript (tsc)...\n');
  try {
    execFileSync(
      process.execPath,
      [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')],
      { stdio: 'inherit' },
    );
  } catch {
    process.stderr.write('amp-relay: TypeScript compilation failed (see above)\n');
    process.exit(1);
  }
}
