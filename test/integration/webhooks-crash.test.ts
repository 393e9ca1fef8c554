// Webhooks (spec §18) across a crash: the receiver is down when the message comes, the relay (the
// built CLI, a child process) is killed with -9 after the failed attempt, the receiver comes back,
// the relay is restarted on the same data dir: the message was never lost and the webhook gets it
// exactly once, at the retry the first attempt scheduled (30 s later:
// the spec's first retry delay, kept in the durable outbound queue), which acks it.

import { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, expect, it } from 'vitest';
import { verifyHmacRequestHeader } from '../../src/crypto/request-signing.js';
import { until } from '../helpers/outbound.js';
import { type ChildServer, call, register, routeOk, spawnServer, tempDir } from '../helpers/server.js';
import { Hook, SECRET } from '../helpers/webhook.js';
import { closeAllWs, connectWs } from '../helpers/ws.js';

const ENV = { AMP_WEBHOOK_ALLOW_HOSTS: '127.0.0.1/32' };
/** The first retry comes 30 s after the failed attempt (WEBHOOK_POLICY), plus a restart. */
const RETRY_WAIT_MS = 45_000;

const dataDir = tempDir();
const children: ChildServer[] = [];
const hook = new Hook();

afterAll(async () => {
  closeAllWs();
  for (const c of children) await c.stop('SIGKILL');
  await hook.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** The child's log records, as events. */
function logOf(child: ChildServer) {
  const lines: Array<Record<string, any>> = [];
  const events = new EventEmitter();
  createInterface({ input: child.proc.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line));
      events.emit('line');
    } catch {
      // not a log line
    }
  });
  return { lines, events };
}

async function spawn(): Promise<ChildServer> {
  const c = await spawnServer(dataDir, [], ENV);
  children.push(c);
  return c;
}

it(
  'receiver down across a kill -9 of the relay: nothing lost, delivered once after both are back',
  async () => {
    // A port nothing listens on yet: the receiver takes it later.
    await hook.listen();
    const url = hook.url;
    const port = Number(new URL(url).port);
    await hook.close();

    let relay = await spawn();
    const log = logOf(relay);
    const a = await register(relay.api, 'sender', 'acme');
    const b = await register(relay.api, 'hooked', 'acme', { delivery: { webhook_url: url, webhook_secret: SECRET } });
    const r = await routeOk(relay.api, a, {
      to: b.address,
      subject: 'survives',
      payload: { type: 'notification', message: 'survives' },
      options: { receipt: true },
    });
    expect(r).toMatchObject({ status: 'queued', method: 'relay' });
    await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound retry' && l.id === r.id), 'retry');

    relay.proc.kill('SIGKILL');
    expect(await relay.exited).toBe('SIGKILL');
    await hook.listen(port);
    relay = await spawn();

    const pending = () => call('GET', `${relay.api}/messages/pending?limit=10`, { key: b.api_key });
    // The sender's socket hears the receipt once the webhook's 2xx acked the message (the recipient
    // does not poll first: a pending list would be the first hand-over, method "relay").
    const ws = await connectWs(relay.url.replace(/^http/, 'ws') + '/v1/ws', a.api_key, { protocols: ['amp.v1'] });
    const receipt = await ws.nextType('message.delivered', undefined, RETRY_WAIT_MS);
    expect(receipt.data).toMatchObject({ id: r.id, method: 'webhook' });
    expect(hook.hits).toHaveLength(1);
    const { headers, body } = hook.hits[0]!;
    expect(headers['x-amp-message-id']).toBe(r.id);
    expect(headers['x-amp-delivery-attempt']).toBe('2');
    expect(
      verifyHmacRequestHeader(SECRET, String(headers['x-amp-timestamp']), body, String(headers['x-amp-signature'])),
    ).toBe(true);
    expect((await pending()).body.messages).toEqual([]);
  },
  RETRY_WAIT_MS + 30_000,
);
