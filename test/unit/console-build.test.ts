// The admin console's build (scripts/build-console.mjs): index.html works under the strict CSP
// the server sends (no inline script or style, no other origin: every script and stylesheet is
// a built file under /admin/assets/), and neither its sources nor the code it bundles (Preact's
// renderer aside) writes HTML: all server and agent text is rendered as text.

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../helpers/server.js';

const SCRIPT = join(ROOT, 'scripts', 'build-console.mjs');
const SRC = join(ROOT, 'src', 'console', 'web');
const HTML_SINKS = /dangerouslySetInnerHTML|innerHTML|outerHTML|insertAdjacentHTML|document\.write|srcdoc/;
const out = tempDir('amp-console-build-');
const own = tempDir('amp-console-own-');

function build(dir: string, extra: string[] = []): void {
  execFileSync(process.execPath, [SCRIPT, '--outdir', dir, ...extra], { cwd: ROOT, stdio: 'pipe' });
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );
}

beforeAll(() => {
  build(out);
  build(own, ['--external', 'preact,preact/hooks,preact/jsx-runtime']);
}, 60_000);
afterAll(() => {
  rmSync(out, { recursive: true, force: true });
  rmSync(own, { recursive: true, force: true });
});

describe('admin console build', () => {
  it('writes index.html and its assets into the out dir given', () => {
    expect(existsSync(join(out, 'index.html'))).toBe(true);
    expect(existsSync(join(out, 'assets', 'app.js'))).toBe(true);
    expect(existsSync(join(out, 'assets', 'app.css'))).toBe(true);
  });

  it('index.html has no inline script or style and names only built files under /admin/assets/', () => {
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    expect(html).not.toMatch(/\sstyle\s*=/i);
    expect(html).not.toMatch(/<style[\s>]/i);
    expect(html).not.toMatch(/\son[a-z]+\s*=/i);
    expect(html).not.toMatch(/javascript:/i);
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(body.trim(), 'inline script').toBe('');
      expect(attrs).toMatch(/\bsrc="[^"]+"/);
    }
    // `data:,` is the empty icon (no favicon request); everything else is a built file.
    const refs = [...html.matchAll(/\b(?:src|href)="([^"]*)"/gi)].map((m) => m[1]).filter((r) => r !== 'data:,');
    expect(refs).toContain('/admin/assets/app.js');
    expect(refs).toContain('/admin/assets/app.css');
    for (const ref of refs) {
      expect(ref).toMatch(/^\/admin\/assets\/[\w.-]+$/);
      expect(existsSync(join(out, 'assets', ref.slice('/admin/assets/'.length))), ref).toBe(true);
    }
  });

  it('the console code writes no HTML: sources and its own bundled code use no HTML sink', () => {
    const offenders = files(SRC)
      .filter((f) => /\.(tsx?|html)$/.test(f))
      .filter((f) => HTML_SINKS.test(readFileSync(f, 'utf8')));
    expect(offenders).toEqual([]);
    const bundle = readFileSync(join(own, 'assets', 'app.js'), 'utf8');
    expect(bundle).toMatch(/from\s*"preact/); // Preact left out: this is the console's own code
    expect(bundle).not.toMatch(HTML_SINKS);
  });

  it('the full bundle loads nothing from elsewhere and has no eval', () => {
    const js = readFileSync(join(out, 'assets', 'app.js'), 'utf8');
    expect(js).not.toMatch(/\bimport\s*\(|from\s*"[^"]*"/); // one self-contained module
    expect(js).not.toMatch(/\beval\(|new Function\(/);
    const css = readFileSync(join(out, 'assets', 'app.css'), 'utf8');
    expect(css).not.toMatch(/@import|url\(\s*['"]?(https?:)?\/\//);
  });
});
