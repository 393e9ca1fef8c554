// Review of issue 15's command-line side (rev3): scripts/amp-send.sh --attach, amp-inbox.sh download,
// against the real server as a child process, and a hostile provider stub on 127.0.0.1 (an agent
// config whose endpoint is the stub). Tests named `regression: ...` failed before the review's fixes
// (no size bound, no signature check before download, 255-byte names, symlinks and fifos in DIR,
// `--attach -`, a DIR starting with a dash, the fixture's status poll).

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChildServer, ROOT, spawnServer, tempDir } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';

const PROC_TIMEOUT_MS = 60_000;

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], env: Record<string, string>, cwd: string, timeout = PROC_TIMEOUT_MS) {
  return new Promise<Run>((resolve) => {
    execFile(cmd, args, { cwd, env, timeout, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string | null }) | null;
      const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
      resolve({ code, signal: e?.signal ?? null, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

let server: ChildServer;
let stub: Server;
let stubUrl: string;
let home: string;
let work: string;
const temps: string[] = [];
const temp = (p: string) => {
  const d = tempDir(`amp-rev3-${p}-`);
  temps.push(d);
  return d;
};
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const env = () => ({ PATH: process.env.PATH ?? '', HOME: home });
const cli = (script: string, args: string[], cwd = work, timeout?: number) =>
  exec('bash', [join(ROOT, 'scripts', script), ...args], env(), cwd, timeout);
const send = (args: string[], cwd = work) => cli('amp-send.sh', ['-a', 'alice', '--json', ...args], cwd);
const inbox = (args: string[], cwd = work, timeout?: number) =>
  cli('amp-inbox.sh', ['-a', 'bob', ...args], cwd, timeout);

// ---- the hostile provider stub: what GET /messages/pending answers, and what /big sent ----
let stubMessages: unknown[] = [];
let bigBytesSent = 0;
const GOOD = Buffer.from('hello from the stub\n');

function startStub(): Promise<void> {
  stub = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path.endsWith('/messages/pending')) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ messages: stubMessages, count: stubMessages.length, remaining: 0 }));
    } else if (path === '/good') {
      res.writeHead(200, { 'Content-Length': GOOD.length });
      res.end(GOOD);
    } else if (path === '/redirect') {
      res.writeHead(302, { Location: `${stubUrl}/good` });
      res.end();
    } else if (path === '/plus1') {
      // The good bytes and one more, announced.
      const body = Buffer.concat([GOOD, Buffer.from('!')]);
      res.writeHead(200, { 'Content-Length': body.length });
      res.end(body);
    } else if (path === '/big' || path === '/chunked') {
      // Streams 64 MiB for a record that says 20 bytes: announced (/big) or chunked (/chunked).
      const total = 64 << 20;
      const chunk = Buffer.alloc(1 << 16, 0x41);
      res.writeHead(200, path === '/big' ? { 'Content-Length': total } : {});
      bigBytesSent = 0;
      const pump = () => {
        while (bigBytesSent < total) {
          bigBytesSent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => undefined);
      pump();
    } else {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"error":"not_found","message":"no"}');
    }
  });
  return new Promise((resolve) =>
    stub.listen(0, '127.0.0.1', () => {
      stubUrl = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;
      resolve();
    }),
  );
}

/** A message the stub serves to agent `evil` (bob's keys, endpoint = the stub). */
function stubMessage(attachments: unknown[]) {
  return {
    id: 'msg_1700000000_stub1',
    envelope: { from: 'x@default.aimaestro.local', to: 'bob@default.aimaestro.local', subject: 's', timestamp: 't' },
    payload: { type: 'notification', message: 'm' },
    attachments,
  };
}
const rec = (id: string, filename: string, url: string, body = GOOD) => ({
  id,
  filename,
  size: body.length,
  digest: `sha256:${sha(body)}`,
  url,
  scan_status: 'basic_clean',
});
const evil = (args: string[], cwd = work) => cli('amp-inbox.sh', ['-a', 'evil', ...args], cwd);

setupOrFailEveryTest(async () => {
  const built = await exec(process.execPath, [join(ROOT, 'scripts', 'ensure-built.mjs')], env(), ROOT, 300_000);
  if (built.code !== 0) throw new Error(`build failed: ${built.stderr}`);
  home = temp('home');
  work = temp('work');
  server = await spawnServer(temp('data'), ['--rate-limits', 'off']);
  for (const name of ['alice', 'bob']) {
    const r = await cli('amp-register.sh', ['-n', name, '-p', server.url]);
    if (r.code !== 0) throw new Error(`amp-register.sh ${name}: ${r.stderr}`);
  }
  await startStub();
  const agents = join(home, '.agent-messaging', 'agents');
  cpSync(join(agents, 'bob'), join(agents, 'evil'), { recursive: true });
  const cfgPath = join(agents, 'evil', 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  cfg.provider_url = stubUrl;
  cfg.endpoint = `${stubUrl}/api/v1`;
  writeFileSync(cfgPath, JSON.stringify(cfg));
});

afterAll(async () => {
  await server?.stop();
  await new Promise((r) => (stub ? stub.close(r) : r(undefined)));
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

async function sendFile(name: string, content: string): Promise<string> {
  const dir = temp('src');
  writeFileSync(join(dir, name), content);
  const r = await send(['--attach', join(dir, name), 'bob', 'subj', 'msg']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout).id;
}

describe('rev3 review: download against a hostile provider', () => {
  it('sound: filenames with .., /, newlines and $(...) stay inside DIR; nothing is executed', async () => {
    const dir = temp('dl');
    const canary = join(work, 'pwned');
    stubMessages = [
      stubMessage([
        rec('att_1_a', '../../.bashrc', `${stubUrl}/good`),
        rec('att_1_b', '/etc/x', `${stubUrl}/good`),
        rec('att_1_c', `a\nb$(touch ${canary}).txt`, `${stubUrl}/good`),
        rec('att_1_d', '..', `${stubUrl}/good`),
      ]),
    ];
    const r = await evil(['download', 'msg_1700000000_stub1', dir]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of readdirSync(dir)) expect(f).toMatch(/^[A-Za-z0-9._-]+$/);
    expect(readdirSync(dir)).toHaveLength(4);
    expect(existsSync(canary)).toBe(false);
  });

  it('sound: a file:// url and a redirect are refused, nothing is kept in DIR', async () => {
    const dir = temp('dl');
    stubMessages = [stubMessage([rec('att_1_e', 'p.txt', 'file:///etc/passwd')])];
    const a = await evil(['download', 'msg_1700000000_stub1', dir]);
    expect(a.code).toBe(1);
    stubMessages = [stubMessage([rec('att_1_f', 'q.txt', `${stubUrl}/redirect`)])];
    const b = await evil(['download', 'msg_1700000000_stub1', dir]);
    expect(b.code).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('regression: download refuses a message whose signature does not verify (exit 7), by message or attachment id', async () => {
    const dir = temp('dl');
    // A provider that swapped the file rewrites its record and payload.attachments alike; the
    // envelope's signature (over the sender's payload) no longer verifies.
    const r0 = rec('att_1_h', 'swapped.txt', `${stubUrl}/good`);
    const m = stubMessage([r0]) as Record<string, any>;
    m.envelope.signature = Buffer.alloc(64, 1).toString('base64');
    m.payload.attachments = [r0];
    stubMessages = [m];
    const r = await evil(['download', 'msg_1700000000_stub1', dir]);
    // Before the fix: exit 0, swapped.txt saved without any signature check.
    expect(r.code, r.stderr).toBe(7);
    expect(r.stderr).toMatch(/signature does not verify/);
    const byId = await evil(['download', 'att_1_h', dir]);
    expect(byId.code, byId.stderr).toBe(7);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('regression: download stops a 64 MiB announced body for a 20-byte record (exit 11, nothing kept)', async () => {
    const dir = temp('dl');
    stubMessages = [stubMessage([rec('att_1_g', 'big.txt', `${stubUrl}/big`)])];
    const r = await evil(['download', 'msg_1700000000_stub1', dir]);
    expect(r.code, r.stderr).toBe(11);
    expect(readdirSync(dir)).toEqual([]);
    // Before the fix all 64 MiB were read and written to DIR first. The bound allows for what the
    // loopback socket buffers take before curl closes (a few MiB on a loaded machine).
    expect(bigBytesSent, 'bytes the stub sent').toBeLessThanOrEqual(8 << 20);
  });

  it('regression: a chunked 64 MiB body (no Content-Length) is cut at the recorded size (exit 11)', async () => {
    const dir = temp('dl');
    stubMessages = [stubMessage([rec('att_1_k', 'chunked.txt', `${stubUrl}/chunked`)])];
    const r = await evil(['download', 'msg_1700000000_stub1', dir]);
    expect(r.code, r.stderr).toBe(11);
    expect(r.stderr).toMatch(/larger than its record/);
    expect(readdirSync(dir)).toEqual([]);
    expect(bigBytesSent, 'bytes the stub sent').toBeLessThanOrEqual(8 << 20);
  });

  it('sound: one byte more than the record (right bytes first) is refused, not truncated (exit 11)', async () => {
    const dir = temp('dl');
    stubMessages = [stubMessage([rec('att_1_m', 'plus.txt', `${stubUrl}/plus1`)])];
    const r = await evil(['download', 'msg_1700000000_stub1', dir]);
    expect(r.code, r.stderr).toBe(11);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('rev3 review: download into DIR against the real server', () => {
  it('regression: a 255-byte attachment name downloaded twice gets a shortened free name', async () => {
    const name = `${'n'.repeat(251)}.txt`;
    const id = await sendFile(name, 'long name\n');
    const dir = temp('dl');
    const first = await inbox(['download', id, dir]);
    expect(first.code, first.stderr).toBe(0);
    const again = await inbox(['download', id, dir]);
    // Help: "report.txt exists, so report_1.txt"; before the fix: no free file name (exit 1).
    expect(again.code, again.stderr).toBe(0);
    expect(readdirSync(dir).sort()).toEqual([`${'n'.repeat(249)}_1.txt`, name]);
  });

  it('regression: a symlink in DIR with the attachment name (to /dev/null) is kept, the file is link_1.txt', async () => {
    const id = await sendFile('link.txt', 'link\n');
    const dir = temp('dl');
    symlinkSync('/dev/null', join(dir, 'link.txt'));
    const r = await inbox(['download', id, dir]);
    expect(r.code, r.stderr).toBe(0);
    // Before the fix the symlink was replaced by the download.
    expect(lstatSync(join(dir, 'link.txt')).isSymbolicLink()).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['link.txt', 'link_1.txt']);
  });

  it('regression: a FIFO in DIR with the attachment name is left alone (no hang), the file is pipe_1.txt', async () => {
    const id = await sendFile('pipe.txt', 'pipe\n');
    const dir = temp('dl');
    const mk = await exec('mkfifo', [join(dir, 'pipe.txt')], env(), dir);
    expect(mk.code).toBe(0);
    const r = await inbox(['download', id, dir], work, 15_000);
    // Release a writer blocked opening the FIFO, if any (before the fix `: >fifo` blocked and outlived
    // the killed script).
    await exec('timeout', ['1', 'cat', join(dir, 'pipe.txt')], env(), dir);
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
    expect(readdirSync(dir).sort()).toEqual(['pipe.txt', 'pipe_1.txt']);
  });

  it('regression: --attach - (a file named "-" in the current directory) uploads that file, not stdin', async () => {
    const dir = temp('dash');
    writeFileSync(join(dir, '-'), 'the dash file\n');
    // stdin from /dev/null (with a terminal or an open pipe on stdin it waits there instead).
    const script = join(ROOT, 'scripts', 'amp-send.sh');
    const r = await exec(
      'bash',
      ['-c', `bash "$0" -a alice --json --attach - bob subj dash </dev/null`, script],
      env(),
      dir,
    );
    // Before the fix: exit 1, the provider refused the PUT (curl --data-binary @- uploaded stdin).
    expect(r.code, r.stderr).toBe(0);
    const out = temp('dl');
    const d = await inbox(['--json', 'download', JSON.parse(r.stdout).id, out]);
    expect(d.code, d.stderr).toBe(0);
    const saved = JSON.parse(d.stdout) as { path: string }[];
    expect(saved.map((x) => readFileSync(x.path, 'utf8'))).toEqual(['the dash file\n']);
  });

  it('sound: a 0-byte file and a file named with spaces, quotes, unicode and a leading dash', async () => {
    const dir = temp('odd');
    const odd = `-x 'q"é ü.txt`;
    writeFileSync(join(dir, odd), 'odd\n');
    writeFileSync(join(dir, 'empty.txt'), '');
    const r = await send(['--attach', `./${odd}`, '--attach', './empty.txt', 'bob', 'subj', 'odd'], dir);
    expect(r.code, r.stderr).toBe(0);
    const out = temp('dl');
    const d = await inbox(['--json', 'download', JSON.parse(r.stdout).id, out]);
    expect(d.code, d.stderr).toBe(0);
    const saved = JSON.parse(d.stdout) as { path: string }[];
    expect(saved.map((s) => readFileSync(s.path, 'utf8'))).toEqual(['odd\n', '']);
    for (const s of saved) expect(s.path.startsWith(`${out}/`)).toBe(true);
  });

  it('regression: download into a DIR whose name starts with a dash', async () => {
    const id = await sendFile('dash-dir.txt', 'dash dir\n');
    const parent = temp('dashdir');
    const r = await inbox(['download', '--', id, '-out'], parent);
    // Before the fix: "mktemp: invalid option -- 'o'", exit 1.
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(join(parent, '-out'))).toEqual(['dash-dir.txt']);
  });

  it('sound: saved files are mode 0600; 25 MiB exactly is sent and downloaded, 25 MiB + 1 refused (exit 1)', async () => {
    const dir = temp('big');
    const big = Buffer.alloc(25 << 20, 0x61);
    writeFileSync(join(dir, 'big.txt'), big);
    writeFileSync(join(dir, 'bigger.txt'), Buffer.concat([big, Buffer.from('a')]));
    const over = await send(['--attach', 'bigger.txt', 'bob', 's', 'm'], dir);
    expect(over.code, over.stderr).toBe(1);
    expect(over.stderr).toMatch(/413/);
    const ok = await send(['--attach', 'big.txt', 'bob', 's', 'm'], dir);
    expect(ok.code, ok.stderr).toBe(0);
    const out = temp('dl');
    const d = await inbox(['download', JSON.parse(ok.stdout).id, out]);
    expect(d.code, d.stderr).toBe(0);
    const path = d.stdout.trim();
    expect(sha(readFileSync(path))).toBe(sha(big));
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
  }, 120_000);

  it('sound: directories, /dev/zero, fifos, missing files and 11 --attach are usage errors (exit 2)', async () => {
    const dir = temp('bad');
    mkdirSync(join(dir, 'sub'));
    await exec('mkfifo', [join(dir, 'f')], env(), dir);
    for (const f of ['sub', '/dev/zero', 'f', 'missing']) {
      const r = await send(['--attach', f, 'bob', 's', 'm'], dir);
      expect(r.code, `${f}: ${r.stderr}`).toBe(2);
    }
    writeFileSync(join(dir, 'a.txt'), 'a');
    const many = Array.from({ length: 11 }, () => ['--attach', 'a.txt']).flat();
    expect((await send([...many, 'bob', 's', 'm'], dir)).code).toBe(2);
  });
});

describe('rev3 review: the reference-flow fixture against a provider that does not adopt ids', () => {
  it('regression: fixture: a 404 from the status poll keeps "pending" and nothing is routed (as the reference)', async () => {
    let routed = false;
    const fx = createServer((req, res) => {
      const p = (req.url ?? '').split('?')[0];
      const json = (code: number, body: unknown) => {
        res.writeHead(code, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      req.resume();
      req.on('end', () => {
        if (p === '/api/v1/register') return json(201, { api_key: 'k', address: 'x@default.aimaestro.local' });
        if (p === '/api/v1/attachments/upload')
          return json(201, { attachment_id: 'upload 1', upload_url: `${fxUrl}/put` });
        if (p === '/put') return json(200, {});
        if (p === '/api/v1/route') {
          routed = true;
          return json(200, { id: 'msg_1_a', status: 'queued' });
        }
        if (p === '/api/v1/messages/pending') return json(200, { messages: [] });
        return json(404, { error: 'attachment_not_found', message: 'No such attachment' });
      });
    });
    await new Promise<void>((r) => fx.listen(0, '127.0.0.1', () => r()));
    const fxUrl = `http://127.0.0.1:${(fx.address() as AddressInfo).port}`;
    try {
      const dir = temp('fx');
      writeFileSync(join(dir, 'f.txt'), 'hello\n');
      const fixture = join(ROOT, 'test', 'e2e', 'fixtures', 'reference-attachment-flow.sh');
      const r = await exec('bash', [fixture, fxUrl, dir, 'default', 's', 'r', join(dir, 'f.txt')], env(), dir);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.adopted).toBe(false);
      // amp-helper.sh upload_attachment: a non-200 status poll breaks out with scan_status still
      // "pending"; `.scan_status // "clean"` applies only to a 200 answer.
      expect({ scan: out.scan_status, routed }).toEqual({ scan: 'pending', routed: false });
    } finally {
      await new Promise((r) => fx.close(r));
    }
  });
});
