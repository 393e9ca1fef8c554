// The admin console as an operator uses it: the real server (in this process, port 0) serving the
// BUILT console (dist/console), sign-in links made by the real CLI (`amp-relay admin login`, its
// own process), and Chromium (browser.ts) on the server's public base (http://localhost:<port>,
// the host the login link and the AID authorization_url name, so the cookie is on it).

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, expect } from 'vitest';
import type { StartOptions } from '../../src/server.js';
import { adminToken, issuerOf, type AidServer } from './aid.js';
import { launchBrowser, STEP_MS, type WatchedPage, watchedPage } from './browser.js';
import { ROOT, startTestServer, type TestServer } from './server.js';
import { setupOrFailEveryTest } from './setup.js';
import { closeAllWs } from './ws.js';

// Page-side code (run by Chromium) sees the DOM; the test program is typed without lib.dom.
declare const location: any;

const PROC_TIMEOUT_MS = 60_000;
export const CONSOLE_DIR = join(ROOT, 'dist', 'console');
/** The console's own API (the contract's `/v1/console/...`). */
export const CONSOLE_API = '/v1/console';
export const tid = (id: string) => `[data-testid="${id}"]`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runNode(args: string[], timeoutMs = PROC_TIMEOUT_MS): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const c = (err as { code?: unknown } | null)?.code;
        resolve({ code: err ? (typeof c === 'number' ? c : null) : 0, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

const BUILD_LOCK = join(ROOT, 'dist', '.console-build-lock');
const BUILD_WAIT_MS = 120_000;

/**
 * dist/ current (the CLI runs from it), and the console built if dist/console is missing. Test
 * files run in parallel and the build empties its outdir first: one builds (it made the lock dir,
 * mkdir being atomic), the others wait (bounded) for its index.html.
 */
export async function ensureConsoleBuilt(): Promise<void> {
  const built = await runNode(['scripts/ensure-built.mjs'], 300_000);
  if (built.code !== 0) throw new Error(`scripts/ensure-built.mjs failed (${built.code}): ${built.stderr}`);
  const index = join(CONSOLE_DIR, 'index.html');
  const deadline = Date.now() + BUILD_WAIT_MS;
  while (!existsSync(index)) {
    if (takeLock()) {
      try {
        if (!existsSync(index)) await buildConsole();
      } finally {
        rmSync(BUILD_LOCK, { recursive: true, force: true });
      }
    } else if (Date.now() > deadline) {
      throw new Error(`dist/console not built within ${BUILD_WAIT_MS} ms (lock ${BUILD_LOCK})`);
    } else {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The build lock, when free or left by a build that died (older than the wait). */
function takeLock(): boolean {
  try {
    mkdirSync(BUILD_LOCK);
    return true;
  } catch {
    const age = Date.now() - (statSync(BUILD_LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > BUILD_WAIT_MS) rmSync(BUILD_LOCK, { recursive: true, force: true });
    return false;
  }
}

async function buildConsole(): Promise<void> {
  const script = join(ROOT, 'scripts', 'build-console.mjs');
  if (!existsSync(script))
    throw new Error('dist/console is missing and there is no scripts/build-console.mjs to build it');
  const r = await runNode([script], BUILD_WAIT_MS);
  if (r.code !== 0 || !existsSync(join(CONSOLE_DIR, 'index.html')))
    throw new Error(`node scripts/build-console.mjs failed (${r.code}): ${r.stderr}${r.stdout}`);
}

export interface LoginOptions {
  tenant?: string;
  email?: string;
  scopes?: string[];
  ttl?: number;
}

export interface ConsoleSuite {
  t: TestServer;
  browser: Browser;
  /** http://localhost:<port>: where the browser goes. */
  base: string;
  /** A fresh watched page (own context, no cookies); closed after the test. */
  page(): Promise<WatchedPage>;
  /** `amp-relay admin login ...` run as its own process: the link it printed. */
  loginLink(o?: LoginOptions): Promise<string>;
  /** The AID side of `tenant` (its routes, issuer and a write admin token), for the aid.ts helpers. */
  aid(tenant?: string): Promise<AidServer>;
}

/**
 * One server and one browser for the test file (set up once; a failed setup fails every test
 * with its reason), a fresh context per page, every page and WebSocket closed after each test.
 */
export function consoleSuite(opts: StartOptions = {}): ConsoleSuite {
  const open: WatchedPage[] = [];
  const s = {
    page: async () => {
      const w = await watchedPage(s.browser);
      open.push(w);
      return w;
    },
    loginLink: (o: LoginOptions = {}) => loginLink(s.t, o),
    aid: async (tenant = 'acme'): Promise<AidServer> => ({
      t: s.t,
      tenant,
      issuer: issuerOf(s.t, tenant),
      url: `${s.t.url}/${tenant}`,
      admin: await adminToken(s.t, { tenant, scopes: ['agent_registrations:write'] }),
      mint: (email: string) => adminToken(s.t, { tenant, email }),
    }),
  } as ConsoleSuite;
  setupOrFailEveryTest(async () => {
    await ensureConsoleBuilt();
    s.t = await startTestServer(opts);
    s.base = s.t.publicBase;
    s.browser = await launchBrowser();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.context.close().catch(() => {})));
    await closeAllWs();
  });
  afterAll(async () => {
    await s.browser?.close().catch(() => {});
    await s.t?.close();
  });
  return s;
}

/** Runs `amp-relay admin login` against the server's data dir and public base; the one line it printed. */
export async function loginLink(t: TestServer, o: LoginOptions = {}): Promise<string> {
  // The server's own settings, as an operator's shell has them (the port: the issuer the link is signed for).
  const args = ['bin/amp-relay.js', 'admin', 'login', '--data-dir', t.dataDir, '--port', String(t.server.port)];
  args.push('--url', t.publicBase);
  args.push('--tenant', o.tenant ?? 'acme', '--email', o.email ?? 'ops@acme.com');
  if (o.scopes) args.push('--scopes', o.scopes.join(','));
  if (o.ttl !== undefined) args.push('--ttl', String(o.ttl));
  const r = await runNode(args);
  if (r.code !== 0) throw new Error(`amp-relay admin login exited ${r.code}: ${r.stderr}`);
  const lines = r.stdout.split('\n').filter(Boolean);
  expect(lines, `stdout of admin login: ${r.stdout}`).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^${t.publicBase.replace(/[.]/g, '\\.')}/admin/#login=[A-Za-z0-9_.-]+$`));
  return lines[0]!;
}

/** The claims of a login link's token (unverified). */
export function linkClaims(link: string): Record<string, any> {
  const token = link.split('#login=')[1] ?? '';
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
}

/** Open the link and wait until the page shows the signed-in admin's e-mail; that e-mail. */
export async function signIn(page: Page, link: string): Promise<string> {
  await page.goto(link);
  const email = page.locator(tid('session-email'));
  await email.waitFor({ state: 'visible', timeout: STEP_MS });
  // The token must not stay in the address bar (nor in history).
  await page.waitForFunction(() => !location.hash.includes('login='), undefined, { timeout: STEP_MS });
  return (await email.textContent()) ?? '';
}

export interface PageReply {
  status: number;
  body: any;
  headers: Record<string, string>;
}

/** fetch() from inside the page (its cookies, its origin); JSON bodies parsed. */
export async function pageFetch(
  page: Page,
  path: string,
  init: { method?: string; json?: unknown; headers?: Record<string, string> } = {},
): Promise<PageReply> {
  return page.evaluate(
    async ({ path, method, json, headers }) => {
      const h: Record<string, string> = { ...headers };
      if (json !== undefined) h['Content-Type'] = 'application/json';
      const r = await fetch(path, {
        method: method ?? 'GET',
        headers: h,
        body: json === undefined ? undefined : JSON.stringify(json),
        credentials: 'same-origin',
      });
      const text = await r.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON
      }
      const hs: Record<string, string> = {};
      r.headers.forEach((v, k) => {
        hs[k] = v;
      });
      return { status: r.status, body, headers: hs };
    },
    { path, method: init.method, json: init.json, headers: init.headers },
  );
}

/** The signed-in session as the server tells the page (GET /v1/console/session): its csrf_token and scopes. */
export async function sessionOf(page: Page): Promise<{ csrf_token: string; scopes: string[]; email: string }> {
  const r = await pageFetch(page, `${CONSOLE_API}/session`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

/** The text of every element with this test id, in order. */
export async function texts(page: Page, testId: string): Promise<string[]> {
  return page.locator(tid(testId)).allTextContents();
}

/** expect.poll with the browser step's bound (vitest's default, 1 s, is short for a page and its API calls). */
export function eventually<T>(probe: () => T | Promise<T>, timeout = STEP_MS): ReturnType<typeof expect.poll<T>> {
  return expect.poll(probe, { timeout, interval: 50 });
}
