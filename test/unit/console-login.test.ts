// The sign-in step apart from HTTP: what is kept of a spent link, and for how long.

import { describe, expect, it } from 'vitest';
import { ConsoleLogin, SPENT_MARGIN_S } from '../../src/console/login.js';
import { ConsoleSessions } from '../../src/console/sessions.js';

describe('console sign-in', () => {
  it("keeps a spent link's id past its expiry by more than the 5 s the check allows an expired link", async () => {
    const kept: { key: string; value: { exp: number } }[] = [];
    const exp = Math.floor(Date.now() / 1000) + 600;
    const login = new ConsoleLogin({
      check: async () => ({
        ok: true,
        login: { jti: 'j1', exp, tenant: 'acme', email: 'ops@acme.com', scopes: ['amp:admin'] },
      }),
      records: {
        spendOnce: async (_kind, key, value) => {
          kept.push({ key, value: value as { exp: number } });
          return kept.length === 1;
        },
      },
      sessions: new ConsoleSessions(),
      features: { attachments: false, outbound: false },
    });
    expect((await login.signIn('token')).ok).toBe(true);
    expect(kept).toEqual([{ key: 'j1', value: { exp: exp + SPENT_MARGIN_S } }]);
    expect(SPENT_MARGIN_S).toBeGreaterThan(5);
    const again = await login.signIn('token');
    expect(again.ok).toBe(false);
    if (!again.ok) expect(again.error).toBe('login_link_used');
  });
});
