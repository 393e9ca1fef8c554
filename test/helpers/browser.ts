// The admin console's tests drive Debian's Chromium headless through playwright-core: one browser
// per test file, a fresh context (cookies, storage) per page at 1280×800, and a watch on each page
// for console errors, uncaught exceptions, Content-Security-Policy violations and dialogs (alert,
// confirm: an injected script would open one), so a test can assert that none happened.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { ROOT } from './server.js';

// Page-side code (run by Chromium) sees the DOM; the test program is typed without lib.dom.
declare const document: any;
declare const window: any;

export const CHROMIUM = process.env.AMP_TEST_CHROMIUM || '/usr/bin/chromium';
export const VIEWPORT = { width: 1280, height: 800 };
export const SCREENSHOT_DIR = join(ROOT, 'test-results', 'screenshots');
/** What any one browser step may take before the test fails (never an open-ended wait). */
export const STEP_MS = 10_000;

const ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Chromium, or an error saying how to install it (never a hang: launch has its own timeout). */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium not found at ${CHROMIUM}: run scripts/ensure-test-tools.sh (it installs chromium and chromium-driver)`,
    );
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 30_000 });
}

/** A page with what it reported: console errors, uncaught exceptions, CSP violations, dialogs. */
export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** console.error lines, other than "Failed to load resource" (a 4xx the test may have caused on purpose). */
  consoleErrors: string[];
  /** "Failed to load resource: ..." lines (HTTP error answers). */
  resourceErrors: string[];
  /** Uncaught exceptions in the page. */
  pageErrors: string[];
  /** Content-Security-Policy violations (securitypolicyviolation events and the console's "Refused to" lines). */
  cspViolations: string[];
  /** Messages of the dialogs the page opened (each dismissed at once). */
  dialogs: string[];
}

/** A fresh context (no cookies) and page at 1280×800, watched from its first script on. */
export async function watchedPage(browser: Browser): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: VIEWPORT, acceptDownloads: true });
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  const w: Omit<WatchedPage, 'page'> = {
    context,
    consoleErrors: [],
    resourceErrors: [],
    pageErrors: [],
    cspViolations: [],
    dialogs: [],
  };
  await context.exposeBinding('__ampCspViolation', (_src, text: string) => {
    w.cspViolations.push(text);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e: any) => {
      const report = (window as unknown as { __ampCspViolation?: (t: string) => void }).__ampCspViolation;
      report?.(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (/Content Security Policy/i.test(text)) w.cspViolations.push(text);
    else if (text.startsWith('Failed to load resource')) w.resourceErrors.push(text);
    else w.consoleErrors.push(text);
  });
  page.on('pageerror', (e) => w.pageErrors.push(String(e?.stack ?? e)));
  page.on('dialog', (d) => {
    w.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss().catch(() => {});
  });
  return { ...w, page };
}

/** Nothing went wrong in the page: no console error, exception, CSP violation or dialog. */
export function problems(w: WatchedPage): string[] {
  return [
    ...w.consoleErrors.map((e) => `console: ${e}`),
    ...w.pageErrors.map((e) => `exception: ${e}`),
    ...w.cspViolations.map((e) => `CSP: ${e}`),
    ...w.dialogs.map((e) => `dialog: ${e}`),
  ];
}

/** The viewport as it is, to test-results/screenshots/<name>.png (a folder git ignores). */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, timeout: STEP_MS });
  return path;
}
