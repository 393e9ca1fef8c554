// Review of issue 17's console (i17-review2): what the reviewer reproduced, as failing tests.
// A session that ends while the overview is open (signed out in another tab, expired, or a server
// restart) must bring the page to the signed-out view, and its live stream must end with it.

import { describe, expect, it } from 'vitest';
import { STEP_MS } from '../helpers/browser.js';
import { CONSOLE_API, consoleSuite, eventually, sessionOf, signIn, tid } from '../helpers/console.js';

const s = consoleSuite();

/** Snapshot events read from /v1/console/live with `cookie` until the stream ends or `ms` pass. */
async function countSnapshots(
  cookie: string,
  ms: number,
  during: () => Promise<void>,
): Promise<{ before: number; after: number; ended: boolean }> {
  const ac = new AbortController();
  const res = await fetch(`${s.t.url}${CONSOLE_API}/live`, {
    headers: { Cookie: `amp_console=${cookie}` },
    signal: ac.signal,
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let count = 0;
  let ended = false;
  const pump = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          ended = true;
          return;
        }
        buf += dec.decode(value, { stream: true });
        count = buf.split('event: snapshot').length - 1;
      }
    } catch {
      // aborted
    }
  })();
  await eventually(() => count).toBeGreaterThan(0);
  await during();
  const before = count;
  await new Promise((r) => setTimeout(r, ms));
  const after = count;
  ac.abort();
  await pump;
  return { before, after, ended };
}

describe('console review: a session ending while the page is open', () => {
  it('the overview goes to the signed-out view when the session is signed out in another tab', async () => {
    const w = await s.page();
    await signIn(w.page, await s.loginLink());
    await eventually(() => w.page.locator(tid('ov-live-status')).textContent()).toBe('live');
    // Another tab of the same browser signs out (same cookie): the session is over.
    const other = await w.context.newPage();
    await other.goto(`${s.base}/admin/audit`);
    await other.locator(tid('sign-out')).click();
    await other.locator(tid('signed-out')).waitFor();
    // The overview makes no other request than its live stream: it must notice by itself.
    await w.page.locator(tid('signed-out')).waitFor({ timeout: STEP_MS });
  });

  it('the live stream of a session ends when the session is signed out', async () => {
    const w = await s.page();
    await signIn(w.page, await s.loginLink());
    const cookie = (await w.context.cookies()).find((c) => c.name === 'amp_console')!.value;
    const { csrf_token } = await sessionOf(w.page);
    const r = await countSnapshots(cookie, 3_000, async () => {
      const out = await fetch(`${s.t.url}${CONSOLE_API}/session`, {
        method: 'DELETE',
        headers: { Cookie: `amp_console=${cookie}`, 'X-CSRF-Token': csrf_token },
      });
      expect(out.status).toBe(200);
    });
    // No more server figures for a cookie that no longer signs anyone in.
    expect(r, 'snapshots kept coming after sign-out').toMatchObject({ ended: true });
    expect(r.after - r.before).toBeLessThanOrEqual(1);
  });
});
