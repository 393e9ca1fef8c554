// The brief's Python AMPAgent (requests), copied unchanged into test/e2e/fixtures/amp_agent_example.py,
// run by a real python3 against the real server: send, list with the brief's loop, acknowledge.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { call, register, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./fixtures/amp_agent_example.py', import.meta.url));
const PYTHON_CANDIDATES = ['python3', '/usr/bin/python3'];
const PROBE_TIMEOUT_MS = 10_000;
const SCRIPT_TIMEOUT_MS = 20_000;
const MSG_ID = /^msg_[0-9]+_[a-f0-9]{16}$/;

// Keep the caller's environment (pyenv shims need it) but never route 127.0.0.1 through a proxy.
const env = {
  ...process.env,
  NO_PROXY: '127.0.0.1,localhost',
  no_proxy: '127.0.0.1,localhost',
  PYTHONIOENCODING: 'utf-8',
};

async function findPython(): Promise<string> {
  const tried: string[] = [];
  for (const py of PYTHON_CANDIDATES) {
    try {
      await run(py, ['-c', 'import requests'], { env, timeout: PROBE_TIMEOUT_MS });
      return py;
    } catch (e: any) {
      tried.push(`${py}: ${e.code === 'ENOENT' ? 'not found' : (e.stderr || e.message).trim().split('\n').at(-1)}`);
    }
  }
  throw new Error(
    `No Python 3 with the 'requests' module (needed to run the brief's AMPAgent example). Tried ${tried.join('; ')}. ` +
      `Install it (Debian: apt-get install python3-requests) or run scripts/ensure-test-tools.sh.`,
  );
}

let t: TestServer;
let sender: Registered;
let recipient: Registered;
let seededId: string;
let stdoutLines: string[];
let summary: any;
setupOrFailEveryTest(setup);

async function setup() {
  const python = await findPython();
  t = await startTestServer();
  sender = await register(t.api, 'my-agent', 'local');
  recipient = await register(t.api, 'claude', 'macbook');
  // One message already waiting, so the brief's loop has more than one item to print and ack.
  const seeded = await call('POST', `${t.api}/route`, {
    key: sender.api_key,
    json: {
      to: 'claude@macbook.aimaestro.local',
      subject: 'Earlier',
      payload: { type: 'notification', message: 'First — ünïcode ✓' },
    },
  });
  expect(seeded.status).toBe(200);
  seededId = seeded.body.id;
  try {
    const { stdout } = await run(python, [SCRIPT, t.api, sender.api_key, recipient.api_key], {
      env,
      timeout: SCRIPT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    stdoutLines = stdout.trimEnd().split('\n');
    summary = JSON.parse(stdoutLines.at(-1)!);
  } catch (e: any) {
    throw new Error(
      `${python} amp_agent_example.py failed (code ${e.code ?? '?'}, signal ${e.signal ?? '-'}):\n${e.stderr ?? ''}\n${e.stdout ?? ''}\n${e.message}`,
    );
  }
}

afterAll(async () => {
  await t?.close();
});

describe("brief's Python AMPAgent (requests)", () => {
  it('send() gets the route answer: queued via relay with a message id', () => {
    expect(summary.send).toMatchObject({ status: 'queued', method: 'relay' });
    expect(summary.send.id).toMatch(MSG_ID);
    expect(summary.send.id).not.toBe(seededId);
    expect(summary.send.thread_id).toBe(summary.send.id);
  });

  it("get_messages() + the brief's loop print From/Message for each message, oldest first", () => {
    expect(stdoutLines.slice(0, -1)).toEqual([
      'From: my-agent@local.aimaestro.local',
      'Message: First — ünïcode ✓',
      'From: my-agent@local.aimaestro.local',
      'Message: How are you?',
    ]);
    expect(summary.listed.map((m: any) => m.id)).toEqual([seededId, summary.send.id]);
  });

  it('acknowledge(msg["id"]) answers {"acknowledged": true} for each', () => {
    expect(summary.acks).toEqual([{ acknowledged: true }, { acknowledged: true }]);
  });

  it('get_messages() afterwards is empty', () => {
    expect(summary.after_count).toBe(0);
    expect(summary.after).toMatchObject({ messages: [], count: 0, remaining: 0 });
  });

  it('the server agrees: nothing pending, and the ids are remembered as acked', async () => {
    const list = await call('GET', `${t.api}/messages/pending`, { key: recipient.api_key });
    expect(list.status).toBe(200);
    expect(list.body.messages).toEqual([]);
    for (const id of [seededId, summary.send.id]) {
      const again = await call('DELETE', `${t.api}/messages/pending?id=${id}`, { key: recipient.api_key });
      expect(again.body).toEqual({ acknowledged: true, already_acked: true });
    }
  });
});
