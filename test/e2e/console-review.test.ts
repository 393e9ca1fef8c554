// Review of issue 17's console (i17-review2): what the reviewer reproduced, as failing tests.
// A session that ends while the overview is open (signed out in another tab, expired, or a server
// restart) must bring the page to the signed-out view, and its live stream must end with it.

import { describe, expect, it } from 'vitest';
import { asAdmin, pendingRegistration } from '../helpers/aid.js';
import { problems, STEP_MS } from '../helpers/browser.js';
import { CONSOLE_API, consoleSuite, eventually, pageFetch, sessionOf, signIn, tid } from '../helpers/console.js';
import { register } from '../helpers/server.js';

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

// Behaviours the issue asks for that console-flows/console-security do not exercise: with each of
// these broken in src/console/web (banner never shown, pending not first, "Older" not paging, the
// authorize page's Reject approving) both files still pass; these tests fail.
describe('console review: behaviours the other browser tests leave out', () => {
  it("an action the server refuses shows the server's message in the error banner", async () => {
    const aid = await s.aid();
    const { id } = await pendingRegistration(aid, await register(s.t.api, 'rev-refused', 'acme'));
    const w = await s.page();
    await signIn(w.page, await s.loginLink());
    await w.page.locator(tid('nav-registrations')).click();
    const row = w.page.locator(`${tid('reg-row')}[data-id="${id}"]`);
    await row.locator(tid('reg-approve')).waitFor();
    // Rejected behind the page's back: approving it now is refused (422, invalid_transition).
    expect((await asAdmin(aid, 'POST', `/${id}/reject`, { reason: 'elsewhere' })).status).toBe(200);
    await row.locator(tid('reg-approve')).click();
    await eventually(() => w.page.locator(tid('error-banner')).textContent()).toBe(
      'Cannot approve a registration in status rejected',
    );
    expect(problems(w)).toEqual([]);
  });

  it('pending registrations are listed before newer decided ones', async () => {
    const aid = await s.aid();
    const { id: older } = await pendingRegistration(aid, await register(s.t.api, 'rev-older', 'acme'));
    for (const n of ['rev-new-1', 'rev-new-2']) {
      const { id } = await pendingRegistration(aid, await register(s.t.api, n, 'acme'));
      expect((await asAdmin(aid, 'POST', `/${id}/reject`, { reason: 'no' })).status).toBe(200);
    }
    const w = await s.page();
    await signIn(w.page, await s.loginLink());
    await w.page.locator(tid('nav-registrations')).click();
    await w.page.locator(`${tid('reg-row')}[data-id="${older}"]`).waitFor();
    const statuses = await w.page.locator(tid('reg-status')).allTextContents();
    const firstDecided = statuses.findIndex((x) => x !== 'pending');
    expect(statuses.slice(firstDecided).includes('pending'), statuses.join(',')).toBe(false);
  });

  it("the audit log's Older / Newer buttons page through the events", async () => {
    const w = await s.page();
    await signIn(w.page, await s.loginLink({ email: 'pager@acme.com' }));
    const agent = await register(s.t.api, 'rev-pager', 'acme');
    const { csrf_token } = await sessionOf(w.page);
    for (let i = 0; i < 14; i++)
      for (const a of ['suspend', 'unsuspend'])
        expect(
          (
            await pageFetch(w.page, `/v1/agents/${agent.agent_id}/${a}`, {
              method: 'POST',
              json: {},
              headers: { 'X-CSRF-Token': csrf_token },
            })
          ).status,
        ).toBe(200);
    await w.page.locator(tid('nav-audit')).click();
    await w.page.locator(tid('audit-actor')).fill('pager@');
    await w.page.locator(tid('audit-apply')).click();
    await eventually(() => w.page.locator(tid('audit-page')).textContent()).toBe('1 / 2');
    const first = await w.page.locator(tid('audit-row')).allTextContents();
    await w.page.locator(tid('audit-next')).click();
    await eventually(() => w.page.locator(tid('audit-page')).textContent()).toBe('2 / 2');
    await eventually(() => w.page.locator(tid('audit-row')).count()).toBe(28 - first.length);
    await w.page.locator(tid('audit-prev')).click();
    await eventually(() => w.page.locator(tid('audit-page')).textContent()).toBe('1 / 2');
  });

  it("the authorize page's Reject rejects, with the reason typed", async () => {
    const aid = await s.aid();
    const { id, userCode } = await pendingRegistration(aid, await register(s.t.api, 'rev-authz', 'acme'));
    const w = await s.page();
    await signIn(w.page, await s.loginLink());
    await w.page.goto(`${s.base}/agents/authorize`);
    await w.page.locator(tid('authz-code')).fill(userCode);
    await w.page.locator(tid('authz-lookup')).click();
    await w.page.locator(tid('authz-reject')).click();
    await w.page.locator(tid('action-reason')).fill('unknown agent');
    await w.page.locator(tid('action-confirm')).click();
    await eventually(() => w.page.locator(tid('authz-result')).textContent()).toContain('rejected');
    const r = await asAdmin(aid, 'GET', `/${id}`);
    expect(r.body.data.attributes).toMatchObject({ status: 'rejected', rejection_reason: 'unknown agent' });
  });
});
