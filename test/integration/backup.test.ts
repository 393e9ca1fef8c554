// `amp-relay backup` of a live data dir under load, then `amp-relay restore` into a new dir and a
// server on it: every message acknowledged (answered 200) before the backup started is in the
// restored recipients' queues, the keys are the same, API keys still work. The running server is
// a child process (`amp-relay serve`), the load real HTTP routes, backup and restore the CLI.

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { readmeBlock } from '../helpers/readme.js';
import {
  call,
  type ChildServer,
  ROOT,
  type Registered,
  register,
  route,
  spawnServer,
  tempDir,
} from '../helpers/server.js';

const run = promisify(execFile);
const root = tempDir('amp-backup-');
const servers: ChildServer[] = [];

afterAll(async () => {
  for (const s of servers) await s.stop();
  rmSync(root, { recursive: true, force: true });
});

/** The CLI as a child process; resolves with its exit code and output (never rejects on exit != 0). */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), ...args], {
      env: { PATH: process.env.PATH ?? '' },
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/**
 * A README block run with bash, adapted: `npx amp-relay` is this checkout's bin, and the example
 * paths are the test's temp dirs.
 */
async function readmeCli(block: string, backupDir: string, dataDir: string) {
  const text = block
    .replace('npx amp-relay', `${process.execPath} ${join(ROOT, 'bin', 'amp-relay.js')}`)
    .replace('/var/backups/amp-relay/2026-12-03', backupDir)
    .replace('/var/lib/amp-relay', dataDir);
  try {
    const r = await run('bash', ['--norc', '-euo', 'pipefail', '-c', text], {
      env: { PATH: process.env.PATH ?? '' },
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

async function start(dataDir: string): Promise<ChildServer> {
  const s = await spawnServer(dataDir, ['--rate-limits', 'off', '--max-queue', '1000000']);
  servers.push(s);
  return s;
}

const MAX_ROUTES_PER_WORKER = 4000;
const WORKERS = 4;
const ACKED_BEFORE_BACKUP = 200;
const LOAD_WAIT_MS = 30_000;

interface Acked {
  id: string;
  to: string;
  beforeBackup: boolean;
}

/** Route in a bounded loop from WORKERS workers until `stop()`, recording each 200 answer. */
function loadGenerator(api: string, from: Registered, to: Registered[]) {
  const acked: Acked[] = [];
  const state = { stop: false, backupStarted: false, failures: 0, firstFailure: '' };
  let wake: () => void = () => {};
  const reached = new Promise<void>((r) => (wake = r));
  const worker = async (w: number) => {
    for (let i = 0; i < MAX_ROUTES_PER_WORKER && !state.stop; i++) {
      const rcpt = to[(w + i) % to.length];
      const r = await route(api, from, {
        to: rcpt.address,
        subject: `w${w} #${i}`,
        payload: { type: 'notification', message: `#${i}` },
      });
      // Read the flag when the answer has come: a 200 before the backup began is committed before it.
      if (r.status === 200) acked.push({ id: r.body.id, to: rcpt.address, beforeBackup: !state.backupStarted });
      else {
        state.failures++;
        state.firstFailure ||= `${r.status} ${JSON.stringify(r.body)}`;
        state.stop = true; // fail fast: the test reports it
        wake();
      }
      if (acked.length >= ACKED_BEFORE_BACKUP) wake();
    }
  };
  const done = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  return { acked, state, reached, done };
}

/** Every id in a recipient's queue, walking the pending pages (acking each page to see the next). */
async function drainIds(api: string, agent: Registered, expected: number): Promise<Set<string>> {
  const ids = new Set<string>();
  for (let page = 0; page < Math.ceil(expected / 100) + 5; page++) {
    const r = await call('GET', `${api}/messages/pending?limit=100`, { key: agent.api_key });
    expect(r.status).toBe(200);
    if (r.body.count === 0) break;
    const batch = r.body.messages.map((m: { id: string }) => m.id);
    for (const id of batch) ids.add(id);
    const ack = await call('POST', `${api}/messages/pending/ack`, { key: agent.api_key, json: { ids: batch } });
    expect(ack.status).toBe(200);
  }
  return ids;
}

describe('backup of a live server under load, restore into a new dir', () => {
  it('keeps every message acknowledged before the backup began, the keys and the API keys', async () => {
    const dataDir = join(root, 'live');
    const backupDir = join(root, 'backup');
    const restoredDir = join(root, 'restored');
    const live = await start(dataDir);
    const sender = await register(live.api, 'loader');
    const rcpts = [await register(live.api, 'r0'), await register(live.api, 'r1'), await register(live.api, 'r2')];
    const discoveryBefore = await call('GET', `${live.url}/.well-known/agent-messaging.json`);

    const load = loadGenerator(live.api, sender, rcpts);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      load.reached,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`fewer than ${ACKED_BEFORE_BACKUP} routes in 30 s`)), LOAD_WAIT_MS);
      }),
    ]).finally(() => {
      clearTimeout(timer);
      if (load.acked.length < ACKED_BEFORE_BACKUP) load.state.stop = true; // timed out: end the load too
    });
    expect(load.state.firstFailure).toBe('');
    load.state.backupStarted = true;
    const backup = await readmeCli(readmeBlock('backup'), backupDir, dataDir);
    const ackedDuringBackup = load.acked.filter((a) => !a.beforeBackup).length;
    load.state.stop = true;
    await load.done;
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    expect(backup.stdout).toContain(`written to ${backupDir}`);
    // The load went on while the backup ran (it was live), and nothing failed.
    expect(ackedDuringBackup).toBeGreaterThan(0);
    expect(load.state.failures).toBe(0);

    // The server's lock was left alone: still its PID, still serving; backup files are private.
    expect(readFileSync(join(dataDir, 'amp-relay.lock'), 'utf8').trim()).toBe(String(live.proc.pid));
    expect((await call('GET', `${live.api}/health`)).status).toBe(200);
    expect(statSync(backupDir).mode & 0o777).toBe(0o700);
    for (const f of ['amp.lmdb', 'provider-ed25519.pem', 'aid-signing-keys.json', 'backup.json'])
      expect(statSync(join(backupDir, f)).mode & 0o777).toBe(0o600);
    expect(existsSync(join(backupDir, 'amp-relay.lock'))).toBe(false);

    expect(await live.stop()).toBe(0);
    expect(existsSync(join(dataDir, 'amp-relay.lock'))).toBe(false); // released as usual

    const restore = await readmeCli(readmeBlock('restore'), backupDir, restoredDir);
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);
    expect(statSync(restoredDir).mode & 0o777).toBe(0o700);
    for (const f of ['amp.lmdb', 'provider-ed25519.pem', 'aid-signing-keys.json'])
      expect(readFileSync(join(restoredDir, f))).toEqual(
        f === 'amp.lmdb' ? readFileSync(join(backupDir, f)) : readFileSync(join(dataDir, f)),
      );

    const restored = await start(restoredDir);
    const discoveryAfter = await call('GET', `${restored.url}/.well-known/agent-messaging.json`);
    expect(discoveryAfter.body.public_key).toBe(discoveryBefore.body.public_key);
    expect((await call('GET', `${restored.api}/agents/me`, { key: sender.api_key })).status).toBe(200);

    const before = load.acked.filter((a) => a.beforeBackup);
    expect(before.length).toBeGreaterThanOrEqual(ACKED_BEFORE_BACKUP);
    for (const r of rcpts) {
      const want = before.filter((a) => a.to === r.address).map((a) => a.id);
      const have = await drainIds(restored.api, r, load.acked.length);
      const missing = want.filter((id) => !have.has(id));
      expect(missing).toEqual([]);
    }
  }, 120_000);
});

describe('what backup and restore refuse', () => {
  it('restore refuses the dir of a running server, even with --force, and leaves it alone', async () => {
    const dataDir = join(root, 'busy');
    const s = await start(dataDir);
    const bk = join(root, 'busy-backup');
    mkdirSync(join(dataDir, 'attachments', 'ab'), { recursive: true });
    writeFileSync(join(dataDir, 'attachments', 'ab', 'blob'), 'attached');
    expect((await cli('backup', bk, '--data-dir', dataDir)).code).toBe(0);
    expect(readFileSync(join(bk, 'attachments', 'ab', 'blob'), 'utf8')).toBe('attached');
    expect(statSync(join(bk, 'attachments', 'ab', 'blob')).mode & 0o777).toBe(0o600);
    const r = await cli('restore', bk, '--data-dir', dataDir, '--force');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`is in use by process ${s.proc.pid}`);
    expect(readFileSync(join(dataDir, 'amp-relay.lock'), 'utf8').trim()).toBe(String(s.proc.pid));
    expect((await call('GET', `${s.api}/health`)).status).toBe(200);
    await s.stop();
  });

  it('restore refuses a non-empty dir without --force; with it, moves what was there aside', async () => {
    const target = join(root, 'occupied');
    mkdirSync(target);
    writeFileSync(join(target, 'notes.txt'), 'mine');
    const r = await cli('restore', join(root, 'busy-backup'), '--data-dir', target);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not empty (notes.txt)');
    const forced = await cli('restore', join(root, 'busy-backup'), '--data-dir', target, '--force');
    expect(forced.code).toBe(0);
    const aside = /what was there is in (\S+)/.exec(forced.stdout)![1];
    expect(readFileSync(join(aside, 'notes.txt'), 'utf8')).toBe('mine');
    expect(existsSync(join(target, 'amp.lmdb'))).toBe(true);
    expect(readFileSync(join(target, 'attachments', 'ab', 'blob'), 'utf8')).toBe('attached');
    expect(statSync(join(target, 'attachments')).mode & 0o777).toBe(0o700);
  });

  it('restore refuses a dir that is not a complete backup; backup refuses a non-empty DIR', async () => {
    const notBackup = join(root, 'not-a-backup');
    mkdirSync(notBackup);
    const r = await cli('restore', notBackup, '--data-dir', join(root, 'nowhere'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not a complete amp-relay backup (backup.json');
    const b = await cli('backup', join(root, 'occupied'), '--data-dir', join(root, 'busy'));
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('is not empty');
    const none = await cli('backup', join(root, 'b2'), '--data-dir', join(root, 'no-such-dir'));
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('holds no amp-relay store');
  });
});
