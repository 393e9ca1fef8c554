// The SDK (src/client) as the test's client: agents registered through it, and many routes at once.

import { AmpClient } from '../../src/client/index.js';
import { newKeypair, type TestServer } from './server.js';

/** An agent registered through the SDK: its client (API key set), its registration and its keys. */
export async function sdkAgent(t: TestServer, name: string, tenant = 'acme') {
  const keys = newKeypair();
  const { client, registration } = await AmpClient.register(t.url, { name, tenant, public_key: keys.publicPem });
  return { client, registration, keys };
}

/** Route `n` messages from `from` to `to` with at most `lanes` in flight; the ids in route order. */
export async function routeMany(
  from: AmpClient,
  to: string,
  n: number,
  lanes: number,
  body: (i: number) => Record<string, unknown>,
): Promise<string[]> {
  const ids: string[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < n) {
        const i = next++;
        ids[i] = (
          await from.route({ to, subject: `m${i}`, payload: { type: 'notification', message: '' }, ...body(i) })
        ).id;
      }
    }),
  );
  return ids;
}
