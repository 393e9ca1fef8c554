// The deploy files, checked as far as this machine allows (no systemd as PID 1, no Docker daemon):
//   deploy/amp-relay.service: `systemd-analyze verify` on a copy whose ExecStart names this
//     checkout's bin/amp-relay.js instead of /usr/local/bin/amp-relay (verify refuses a unit whose
//     binary does not exist; the rest of the unit is verified as written), plus the options the
//     service must and must not have.
//   Dockerfile: parsed; base image, a non-root user, the volume is the data dir, the exposed port is
//     the one the server listens on, every COPY source exists, and the HEALTHCHECK command, run
//     as written with node against a real server, passes when it is ready and fails when it is gone.

import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { OPTIONS } from '../../src/config/schema.js';
import { ROOT, startTestServer, tempDir } from '../helpers/server.js';

const run = promisify(execFile);
const dir = tempDir('amp-deploy-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const unitText = readFileSync(join(ROOT, 'deploy', 'amp-relay.service'), 'utf8');

/** `Key=value` lines of a unit file (comments and sections left out), in order. */
function unitEntries(text: string): [string, string][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('[') && l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

async function verify(text: string): Promise<{ code: number; out: string }> {
  const file = join(dir, 'amp-relay.service');
  writeFileSync(file, text);
  try {
    const r = await run(SYSTEMD_ANALYZE, ['verify', file], { timeout: 30_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

describe('deploy/amp-relay.service', () => {
  const entries = unitEntries(unitText);
  const value = (k: string) => entries.filter(([key]) => key === k).map(([, v]) => v);
  const execStart = value('ExecStart')[0];
  const installed = '/usr/local/bin/amp-relay';
  const runnable = unitText.replace(installed, join(ROOT, 'bin', 'amp-relay.js'));

  it.skipIf(!existsSync(SYSTEMD_ANALYZE))('passes systemd-analyze verify without a warning', async () => {
    expect(execStart).toBe(`${installed} serve`);
    const r = await verify(runnable);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it.skipIf(!existsSync(SYSTEMD_ANALYZE))('(the check can fail: a misspelt option and a missing binary)', async () => {
    const typo = await verify(runnable.replace('ProtectHome=yes', 'ProtectHomee=yes'));
    expect(typo.out).toContain("Unknown key 'ProtectHomee'");
    const missing = await verify(unitText);
    expect(missing.out).toContain(`${installed} is not executable`);
  });

  it('runs as a non-root user with its state dir as the data dir, hardened, stopped by SIGTERM', () => {
    expect(value('User')[0]).toMatch(/^(?!root$)\S+$/);
    expect(value('StateDirectory')).toEqual(['amp-relay']);
    expect(value('Environment')).toContain('AMP_DATA_DIR=/var/lib/amp-relay');
    expect(value('StateDirectoryMode')).toEqual(['0700']);
    for (const [k, v] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
      ['PrivateDevices', 'yes'],
      ['SystemCallFilter', '@system-service'],
      ['KillSignal', 'SIGTERM'],
      ['Restart', 'on-failure'],
    ])
      expect(value(k), k).toContain(v);
    expect(value('RestrictAddressFamilies')[0].split(' ').sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
    // V8's JIT needs W+X pages: this option would crash node.
    expect(value('MemoryDenyWriteExecute')).toEqual([]);
  });
});

/** Dockerfile instructions (continuation lines joined, comments left out) as [INSTRUCTION, args]. */
function dockerInstructions(text: string): [string, string][] {
  const joined = text.replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const sp = l.search(/\s/);
      return [l.slice(0, sp).toUpperCase(), l.slice(sp + 1).trim()];
    });
}

describe('Dockerfile', () => {
  const ins = dockerInstructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const all = (k: string) => ins.filter(([i]) => i === k).map(([, a]) => a);
  const lastStage = ins.slice(ins.map(([i]) => i).lastIndexOf('FROM'));
  const env = new Map<string, string>();
  for (const [i, a] of lastStage) if (i === 'ENV') for (const m of a.matchAll(/(\w+)=(\S+)/g)) env.set(m[1], m[2]);

  it('builds on node:20-bookworm-slim and installs production dependencies only in the image it ships', () => {
    for (const from of all('FROM')) expect(from).toMatch(/^node:20-bookworm-slim\b/);
    expect(lastStage.some(([i, a]) => i === 'RUN' && a.includes('npm ci --omit=dev'))).toBe(true);
  });

  it('runs as a non-root user; the volume is the data dir; the exposed port is the server port', () => {
    const user = lastStage.filter(([i]) => i === 'USER').pop()?.[1];
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(all('VOLUME')).toEqual([env.get(OPTIONS.dataDir.env)]);
    expect(all('EXPOSE')).toEqual([env.get(OPTIONS.port.env)]);
    expect(env.get(OPTIONS.host.env)).toBe('0.0.0.0'); // reachable through the published port
    expect(all('STOPSIGNAL')).toEqual(['SIGTERM']);
  });

  it('builds the admin console in the build stage and ships it with dist/', () => {
    const buildStage = ins.slice(0, ins.map(([i]) => i).lastIndexOf('FROM'));
    const runs = buildStage.filter(([i]) => i === 'RUN').map(([, a]) => a);
    expect(runs.some((a) => a.includes('tsc -p tsconfig.json') && a.includes('node scripts/build-console.mjs'))).toBe(
      true,
    );
    expect(buildStage.some(([i, a]) => i === 'COPY' && a.startsWith('scripts/build-console.mjs '))).toBe(true);
    expect(lastStage.some(([i, a]) => i === 'COPY' && /^--from=build \/app\/dist \.\/dist$/.test(a))).toBe(true);
  });

  it('copies only what exists, and .dockerignore keeps local state out', () => {
    for (const [i, a] of ins) {
      if (i !== 'COPY' || a.startsWith('--from')) continue;
      const sources = a.split(/\s+/).slice(0, -1);
      for (const s of sources) expect(existsSync(join(ROOT, s)), s).toBe(true);
    }
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['node_modules', 'dist', 'data', '.git']) expect(ignored).toContain(p);
    const entry = JSON.parse(all('ENTRYPOINT')[0]) as string[];
    expect(existsSync(join(ROOT, entry[1]))).toBe(true);
  });

  it('HEALTHCHECK, run as written with node, passes on a ready server and fails without one', async () => {
    const hc = all('HEALTHCHECK')[0];
    const argv = JSON.parse(hc.slice(hc.indexOf('CMD') + 3).trim()) as string[];
    expect(argv[0]).toBe('node');
    expect(argv.join(' ')).toContain('/api/v1/ready');
    const t = await startTestServer();
    const probe = async () => {
      try {
        await run(process.execPath, argv.slice(1), { env: { AMP_PORT: String(t.server.port) }, timeout: 10_000 });
        return 0;
      } catch (e) {
        return (e as { code?: number }).code ?? -1;
      }
    };
    try {
      expect(await probe()).toBe(0);
    } finally {
      await t.close();
    }
    expect(await probe()).toBe(1);
  });
});
