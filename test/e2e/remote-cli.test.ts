// The bash agent CLI across providers and hosts (issue 16): amp-send.sh / amp-inbox.sh /
// amp-reply.sh / amp-status.sh run as real processes in temp HOMEs against three `amp-relay serve`
// children on loopback, started once for the file:
//   A  provider a.example, federated with B (pins, http allowed for 127.0.0.1) and mesh host
//      `host-a` of a mesh with C (shared secret), default tenant acme;
//   B  provider b.example, federated with A;
//   C  mesh host `host-c` of a.example (default tenant gamma), no federation.
// A message to another provider goes through the sender's own provider; the reader verifies the
// sender's signature with the key its provider received with the message (the sender is not on
// the reader's provider, so resolve cannot give it); amp-status.sh shows the peers' reachability.

import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Provider, start, stopAll, twoProviders } from '../helpers/federation.js';
import { freePort } from '../helpers/ports.js';
import { type ChildServer, ROOT, spawnServer, tempDir } from '../helpers/server.js';
import { readmeBlock } from '../helpers/readme.js';
import { until } from '../helpers/ws.js';

const PROC_TIMEOUT_MS = 30_000;
const SECRET = 'mesh-secret-of-at-least-16-chars';

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** One CLI script as its own process with only PATH and HOME; never throws on a non-zero exit. */
function cli(home: string, script: string, args: string[] = []): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [join(ROOT, 'scripts', script), ...args],
      { env: { PATH: process.env.PATH ?? '', HOME: home }, cwd: home, timeout: PROC_TIMEOUT_MS, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string | null }) | null;
        const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
        resolve({ code, signal: e?.signal ?? null, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

function expectExit(r: Run, code: number): void {
  expect({ code: r.code, signal: r.signal, stderr: r.stderr }, `stdout: ${r.stdout}`).toMatchObject({
    code,
    signal: null,
  });
}

let a: Provider;
let b: Provider;
let c: { port: number; dir: string; child?: ChildServer };
let homeAlice: string; // alice@acme.a.example, on A
let homeBob: string; // bob@acme.b.example, on B
let homeCarol: string; // carol@gamma.a.example, on C (host-c)
const temps: string[] = [];
const ALICE = 'alice@acme.a.example';
const BOB = 'bob@acme.b.example';
const CAROL = 'carol@gamma.a.example';

function home(prefix: string): string {
  const d = tempDir(`amp-remote-cli-${prefix}-`);
  temps.push(d);
  return d;
}

async function registerIn(h: string, name: string, port: number, tenant: string): Promise<void> {
  expectExit(await cli(h, 'amp-register.sh', ['-n', name, '-p', `http://127.0.0.1:${port}`, '-t', tenant]), 0);
}

/** A mesh file naming one peer with the shared secret. */
function meshFile(dir: string, self: string, peer: string, port: number): string {
  const file = join(dir, 'mesh.json');
  writeFileSync(
    file,
    JSON.stringify({ mesh: { self_id: self, hosts: [{ id: peer, url: `http://127.0.0.1:${port}`, secret: SECRET }] } }),
  );
  return file;
}

async function statusJson(h: string): Promise<any> {
  const r = await cli(h, 'amp-status.sh', ['--json']);
  expectExit(r, 0);
  return JSON.parse(r.stdout);
}

// As test/helpers/setup.ts (a failed start fails every test rather than skipping them), with a
// longer bound: three servers start and three agents register.
let setupError: unknown;
beforeEach(() => {
  if (setupError) throw setupError;
});

beforeAll(async () => {
  try {
    await setup();
  } catch (e) {
    setupError = e;
  }
}, 90_000);

async function setup(): Promise<void> {
  ({ a, b } = await twoProviders());
  c = { port: await freePort(), dir: tempDir('amp-remote-cli-host-c-') };
  const meshA = meshFile(a.dir, 'host-a', 'host-c', c.port);
  a.args.push('--mesh-config', meshA, '--default-tenant', 'acme');
  const meshC = meshFile(c.dir, 'host-c', 'host-a', a.port);
  const cArgs = ['--port', String(c.port), '--provider-domain', 'a.example', '--mesh-config', meshC];
  const [, , child] = await Promise.all([
    start(a),
    start(b),
    spawnServer(c.dir, [...cArgs, '--default-tenant', 'gamma']),
  ]);
  c.child = child;
  homeAlice = home('alice');
  homeBob = home('bob');
  homeCarol = home('carol');
  await registerIn(homeAlice, 'alice', a.port, 'acme');
  await registerIn(homeBob, 'bob', b.port, 'acme');
  await registerIn(homeCarol, 'carol', c.port, 'gamma');
}

afterAll(async () => {
  await c?.child?.stop('SIGKILL');
  if (c?.dir) rmSync(c.dir, { recursive: true, force: true });
  if (a && b) await stopAll(a, b);
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

describe('federation: alice on a.example ↔ bob on b.example with the bash CLI', () => {
  let sentId = '';

  it('amp-send.sh to bob@acme.b.example goes through A: exit 0, queued', async () => {
    const r = await cli(homeAlice, 'amp-send.sh', [BOB, 'Across providers', 'hello from a.example']);
    expectExit(r, 0);
    const m = /^(msg_\d+_[a-zA-Z0-9]+) queued \(in the relay queue/m.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    sentId = m![1];
  });

  it("bob lists and reads it on B; the signature verifies with the key B received (alice's home key)", async () => {
    // B takes it once A's outbound queue has delivered it: wait on bob's inbox, bounded.
    const arrived = await until(
      async () => (await cli(homeBob, 'amp-inbox.sh', ['list'])).stderr.includes(sentId),
      20_000,
    );
    expect(arrived).toBe(true);
    const r = await cli(homeBob, 'amp-inbox.sh', ['read', sentId]);
    expectExit(r, 0);
    expect(r.stderr).toContain(`From:     ${ALICE}`);
    expect(r.stderr).toContain('hello from a.example');
    expect(r.stderr).toContain(
      `Signature: verified (Ed25519, key of ${ALICE} at its home provider or mesh host, as your provider received and checked it)`,
    );
    const j = await cli(homeBob, 'amp-inbox.sh', ['--json', 'read', sentId]);
    expectExit(j, 0);
    expect(JSON.parse(j.stdout)).toMatchObject({ id: sentId, signature_check: 'verified', signature_key: 'message' });
  }, 60_000);

  it('a forged copy (payload changed, same signature) does not verify: exit 7', async () => {
    // amp-inbox.sh read falls back to the copy it kept; tamper with it and read again.
    const file = join(homeBob, '.agent-messaging', 'agents', 'bob', 'messages', `${sentId}.json`);
    const ack = await cli(homeBob, 'amp-inbox.sh', ['ack', sentId]);
    expectExit(ack, 0);
    const kept = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...kept, payload: { ...kept.payload, message: 'changed' } }));
    const r = await cli(homeBob, 'amp-inbox.sh', ['read', sentId]);
    expectExit(r, 7);
    expect(r.stderr).toContain(
      `Signature: NOT verified: it does not match the key of ${ALICE} that came with the message`,
    );
    // A key the provider did not check (signature_verified false) is not used: nothing to verify with.
    writeFileSync(file, JSON.stringify({ ...kept, security: { ...kept.security, signature_verified: false } }));
    const none = await cli(homeBob, 'amp-inbox.sh', ['--json', 'read', sentId]);
    expectExit(none, 7);
    expect(JSON.parse(none.stdout)).toMatchObject({ signature_check: 'unverified', signature_key: 'none' });
    writeFileSync(file, JSON.stringify(kept));
    const again = await cli(homeBob, 'amp-inbox.sh', ['read', sentId]);
    expectExit(again, 0);
    expect(again.stderr).toContain('Signature: verified');
  });

  it('amp-reply.sh from bob reaches alice on A, verified there too', async () => {
    const r = await cli(homeBob, 'amp-reply.sh', ['--json', sentId, 'hello back from b.example']);
    expectExit(r, 0);
    const ans = JSON.parse(r.stdout);
    expect(ans).toMatchObject({ status: 'queued', method: 'relay' });
    const arrived = await until(
      async () => (await cli(homeAlice, 'amp-inbox.sh', ['list'])).stderr.includes(ans.id),
      20_000,
    );
    expect(arrived).toBe(true);
    const read = await cli(homeAlice, 'amp-inbox.sh', ['read', ans.id]);
    expectExit(read, 0);
    expect(read.stderr).toContain(`From:     ${BOB}`);
    expect(read.stderr).toContain(`Subject:  Re: Across providers`);
    expect(read.stderr).toContain(`(reply to ${sentId})`);
    expect(read.stderr).toMatch(/Signature: verified/);
  }, 60_000);
});

describe('mesh: alice on host-a ↔ carol on host-c', () => {
  it('amp-send.sh to carol@host-c prints the forwarded line; carol reads it verified; her reply comes back', async () => {
    const r = await cli(homeAlice, 'amp-send.sh', ['carol@host-c', 'Over the mesh', 'hi carol']);
    expectExit(r, 0);
    const m = /^(msg_\d+_[a-zA-Z0-9]+) delivered \(forwarded to mesh host host-c\)$/m.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const read = await cli(homeCarol, 'amp-inbox.sh', ['read', m![1]]);
    expectExit(read, 0);
    expect(read.stderr).toContain(`From:     ${ALICE}`);
    expect(read.stderr).toContain(`Signature: verified (Ed25519, key of ${ALICE} at its home provider or mesh host`);
    const reply = await cli(homeCarol, 'amp-reply.sh', [m![1], 'hi alice']);
    expectExit(reply, 0);
    const back = /^(msg_\d+_[a-zA-Z0-9]+) delivered \(forwarded to mesh host host-a\)$/m.exec(reply.stderr);
    expect(back, reply.stderr).not.toBeNull();
    const got = await cli(homeAlice, 'amp-inbox.sh', ['read', back![1]]);
    expectExit(got, 0);
    expect(got.stderr).toContain(`From:     ${CAROL}`);
    expect(got.stderr).toContain(`(reply to ${m![1]})`);
    expect(got.stderr).toContain(`Signature: verified (Ed25519, key of ${CAROL} at its home provider or mesh host`);
  });

  it('a name host-c does not have: exit 5 naming host-c', async () => {
    const r = await cli(homeAlice, 'amp-send.sh', ['nobody@host-c', 'lost', 'x']);
    expectExit(r, 5);
    expect(r.stderr).toContain("unknown recipient 'nobody@host-c'");
    expect(r.stderr).toContain('host-c');
  });
});

describe('refusals shown by the CLI', () => {
  it('the --help texts say how remote recipients, peers and remote signatures work', async () => {
    const send = await cli(homeAlice, 'amp-send.sh', ['--help']);
    expectExit(send, 0);
    for (const s of ['name@<host-id>', 'HTTP 422 external_provider', 'forwarded to mesh\nhost <id>']) {
      expect(send.stdout).toContain(s);
    }
    const status = await cli(homeAlice, 'amp-status.sh', ['--help']);
    expectExit(status, 0);
    expect(status.stdout).toContain('Federation: b.example unreachable (');
    const inbox = await cli(homeAlice, 'amp-inbox.sh', ['--help']);
    expectExit(inbox, 0);
    expect(inbox.stdout).toContain('signature_key (provider, message, none)');
  });

  it('from host-c (no federation) to b.example: the 422 external_provider message, exit 1', async () => {
    const r = await cli(homeCarol, 'amp-send.sh', [BOB, 'x', 'y']);
    expectExit(r, 1);
    expect(r.stderr).toContain('HTTP 422 external_provider');
    expect(r.stderr).toContain("Recipient is on provider 'b.example', and federation is not enabled here");
  });

  it('from A to a provider outside its allowlist: 403 provider_not_trusted, exit 1', async () => {
    const r = await cli(homeAlice, 'amp-send.sh', ['zoe@acme.c.example', 'x', 'y']);
    expectExit(r, 1);
    expect(r.stderr).toContain('HTTP 403 provider_not_trusted');
  });
});

describe('amp-status.sh: the mesh and federation peers', () => {
  // Adapted: the README block runs as written with bash in alice's HOME, the scripts on PATH (as
  // after the install step); its output block is matched line by line, message ids as a pattern.
  it('README cli-remote: the sends and the status lines of cli-remote-output', async () => {
    const r = await new Promise<Run>((resolve) => {
      execFile(
        'bash',
        ['-euo', 'pipefail', '-c', readmeBlock('cli-remote')],
        {
          env: { PATH: `${join(ROOT, 'scripts')}:${process.env.PATH ?? ''}`, HOME: homeAlice },
          cwd: homeAlice,
          timeout: PROC_TIMEOUT_MS,
          killSignal: 'SIGKILL',
        },
        (err, stdout, stderr) => {
          const e = err as { code?: number | string; signal?: string | null } | null;
          const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
          resolve({ code, signal: e?.signal ?? null, stdout: String(stdout), stderr: String(stderr) });
        },
      );
    });
    expectExit(r, 0);
    for (const line of readmeBlock('cli-remote-output').trimEnd().split('\n')) {
      const pattern = line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/msg_\d+_[a-z0-9]+/, 'msg_\\d+_[a-zA-Z0-9]+');
      expect(r.stderr, line).toMatch(new RegExp(`^${pattern}$`, 'm'));
    }
    // The message for b.example leaves A's queue before the next test counts what waits.
    const drained = await until(async () => (await statusJson(homeAlice)).peers.federation[0]?.pending === 0, 20_000);
    expect(drained).toBe(true);
  }, 60_000);

  it('shows host-c and b.example reachable; --json has the peers object', async () => {
    const s = await statusJson(homeAlice);
    expect(s.peers.mesh).toEqual([expect.objectContaining({ id: 'host-c', reachable: true, pending: 0 })]);
    expect(s.peers.federation).toEqual([expect.objectContaining({ id: 'b.example', reachable: true, pending: 0 })]);
    const r = await cli(homeAlice, 'amp-status.sh');
    expectExit(r, 0);
    expect(r.stderr).toMatch(/^Mesh: +host-c reachable$/m);
    expect(r.stderr).toMatch(/^Federation: b\.example reachable$/m);
    // host-c has a mesh and no federation: a Mesh line only (its reply went to host-a).
    const onC = await cli(homeCarol, 'amp-status.sh');
    expectExit(onC, 0);
    expect(onC.stderr).toMatch(/^Mesh: +host-a reachable$/m);
    expect(onC.stderr).not.toMatch(/^Federation:/m);
    expect((await statusJson(homeCarol)).peers).toEqual({
      mesh: [expect.objectContaining({ id: 'host-a', reachable: true })],
      federation: [],
    });
  });

  it('after B is killed (-9) and a send is attempted: b.example unreachable with the message waiting', async () => {
    expect(await b.server!.stop('SIGKILL')).toBe('SIGKILL');
    const r = await cli(homeAlice, 'amp-send.sh', [BOB, 'While B is down', 'waits at A']);
    expectExit(r, 0);
    expect(r.stderr).toMatch(/ queued \(in the relay queue/);
    let s: any;
    const down = await until(async () => {
      s = await statusJson(homeAlice);
      return s.peers.federation[0]?.reachable === false;
    }, 20_000);
    expect(down, JSON.stringify(s?.peers)).toBe(true);
    expect(s.peers.federation[0]).toMatchObject({ id: 'b.example', reachable: false, pending: 1 });
    expect(typeof s.peers.federation[0].last_error).toBe('string');
    const text = await cli(homeAlice, 'amp-status.sh');
    expectExit(text, 0);
    expect(text.stderr).toMatch(/^Federation: b\.example unreachable \(.+\), 1 waiting$/m);
    expect(text.stderr).toMatch(/^Mesh: +host-c reachable$/m);
  }, 60_000);
});
