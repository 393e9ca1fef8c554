// The console's built files (npm run build writes them to dist/console): index.html for every page
// of the single-page app, and what is under assets/. Only regular files under the assets directory
// are ever served: a request's path is resolved and must stay inside it.

import { statSync } from 'node:fs';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `<repo>/dist/console`, from src/console/ (tsx) or dist/src/console/ (built). */
export function defaultConsoleDir(): string {
  const up = import.meta.url.endsWith('.ts') ? '../../dist/console' : '../../../dist/console';
  return fileURLToPath(new URL(up, import.meta.url));
}

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The headers of the console's HTML page. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/html; charset=utf-8',
  'Content-Security-Policy': CONSOLE_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

const TYPES: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** A file to stream: where, how big, and its headers. */
export interface StaticFile {
  path: string;
  size: number;
  headers: Record<string, string>;
}

export type StaticAnswer = { kind: 'file'; file: StaticFile } | { kind: 'not_built' } | { kind: 'not_found' };

export class ConsoleFiles {
  private readonly root: string;
  private readonly assets: string;

  constructor(dir: string = defaultConsoleDir()) {
    this.root = resolve(dir);
    this.assets = resolve(this.root, 'assets');
  }

  /** index.html, for /admin, /admin/... and /agents/authorize. */
  page(): StaticAnswer {
    const size = fileSize(resolve(this.root, 'index.html'));
    if (size === undefined) return { kind: 'not_built' };
    return { kind: 'file', file: { path: resolve(this.root, 'index.html'), size, headers: { ...PAGE_HEADERS } } };
  }

  /** A file under assets/, by its path segments (already URL-decoded by the router). */
  asset(segments: readonly string[]): StaticAnswer {
    if (fileSize(resolve(this.root, 'index.html')) === undefined) return { kind: 'not_built' };
    // No empty, dot-leading or separator-holding segment: '..', '%2e%2e', '%2f' never get this far.
    if (segments.some((s) => s === '' || s.startsWith('.') || /[/\\\0]/.test(s))) return { kind: 'not_found' };
    const path = resolve(this.assets, ...segments);
    if (!path.startsWith(this.assets + sep)) return { kind: 'not_found' };
    const size = fileSize(path);
    if (size === undefined) return { kind: 'not_found' };
    const headers = {
      'Content-Type': TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream',
      'X-Content-Type-Options': 'nosniff',
      // Opened directly (an SVG, say), an asset runs nothing on our origin.
      'Content-Security-Policy': "default-src 'none'",
      'Cache-Control': 'no-cache',
    };
    return { kind: 'file', file: { path, size, headers } };
  }
}

/** The size of a regular file, or undefined (absent, a directory, unreadable). */
function fileSize(path: string): number | undefined {
  const st = statSync(path, { throwIfNoEntry: false });
  return st?.isFile() ? st.size : undefined;
}
