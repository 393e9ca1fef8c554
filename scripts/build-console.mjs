#!/usr/bin/env node
// Build the admin console (src/console/web) with esbuild: one bundled, minified ES module
// (app.js) and its stylesheet (app.css) under <outdir>/assets, and index.html copied next to
// <outdir>/assets. The server serves <outdir> (default dist/console) at /admin.
//   node scripts/build-console.mjs [--outdir DIR] [--external MOD,MOD...]   (or AMP_CONSOLE_OUTDIR=DIR)
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
export const CONSOLE_SRC = join(root, 'src', 'console', 'web');
export const DEFAULT_OUTDIR = join(root, 'dist', 'console');

/**
 * Build into `outdir` (its assets/ emptied first). `external` leaves those imports out of the bundle (the
 * tests use it to look at the console's own code without Preact's runtime).
 */
export async function buildConsole({ outdir = DEFAULT_OUTDIR, external = [] } = {}) {
  const assets = join(outdir, 'assets');
  rmSync(assets, { recursive: true, force: true });
  mkdirSync(assets, { recursive: true });
  const result = await build({
    entryPoints: [
      { in: join(CONSOLE_SRC, 'main.tsx'), out: 'app' },
      { in: join(CONSOLE_SRC, 'app.css'), out: 'app' },
    ],
    outdir: assets,
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(CONSOLE_SRC, 'tsconfig.json'),
    external,
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
  });
  copyFileSync(join(CONSOLE_SRC, 'index.html'), join(outdir, 'index.html'));
  return result;
}

function arg(argv, name) {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const out = arg(argv, '--outdir') ?? process.env.AMP_CONSOLE_OUTDIR;
  const external = (arg(argv, '--external') ?? '').split(',').filter(Boolean);
  try {
    await buildConsole({ outdir: out ? resolve(out) : DEFAULT_OUTDIR, external });
  } catch (e) {
    process.stderr.write(`amp-relay: building the admin console failed: ${e instanceof Error ? e.message : e}\n`);
    process.exitCode = 1;
  }
}
