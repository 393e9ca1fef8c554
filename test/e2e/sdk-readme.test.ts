// The SDK as a consumer gets it: `npm pack` of this repo, unpacked into a temp project's
// node_modules/amp-relay (its own dependencies linked to this repo's node_modules, @types/node
// likewise), a strict tsconfig. There the README's SDK example (block `sdk-example`, as written)
// type-checks and runs against a real test server, `amp-relay`, `amp-relay/client` and
// `amp-relay/proto` resolve to declarations (no TS7016) under node16 and bundler resolution, and
// a deliberate type error is caught. The one adaptation: AMP_URL, which the example reads, is set
// to the test server's URL.

import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeBlock } from '../helpers/readme.js';
import { ROOT, startTestServer, tempDir, type TestServer } from '../helpers/server.js';

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const RUN_TIMEOUT_MS = 20_000;

let dir: string;

function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    execFile(
      cmd,
      args,
      { cwd: dir, timeout: RUN_TIMEOUT_MS, env: { PATH: process.env.PATH ?? '', ...env } },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, out: stdout + stderr });
      },
    );
  });
}

function tsconfig(name: string, files: string[], resolution: 'node16' | 'bundler'): string {
  const module = resolution === 'node16' ? 'node16' : 'esnext';
  const compilerOptions = {
    target: 'ES2022',
    module,
    moduleResolution: resolution,
    strict: true,
    skipLibCheck: false,
    types: ['node'],
    outDir: 'out',
    ...(resolution === 'bundler' ? { noEmit: true } : {}),
  };
  writeFileSync(join(dir, name), JSON.stringify({ compilerOptions, files }, null, 2));
  return name;
}

beforeAll(() => {
  dir = tempDir('amp-sdk-consumer-');
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'ensure-built.mjs')], { stdio: 'inherit' });
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
  ) as { filename: string }[];
  const pkg = join(dir, 'node_modules', 'amp-relay');
  mkdirSync(pkg, { recursive: true });
  execFileSync('tar', ['-xzf', join(dir, packed[0].filename), '-C', pkg, '--strip-components=1']);
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
  symlinkSync(join(ROOT, 'node_modules', '@types'), join(dir, 'node_modules', '@types'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the SDK for a consumer', () => {
  it('resolves amp-relay, amp-relay/client and amp-relay/proto to declarations (node16 and bundler)', async () => {
    writeFileSync(
      join(dir, 'imports.ts'),
      [
        "import type { ServerHandle } from 'amp-relay';",
        "import { AmpClient, signMessage, type QueuedMessage } from 'amp-relay/client';",
        "import { canonicalString } from 'amp-relay/proto';",
        'export const c: AmpClient = new AmpClient({ baseUrl: "http://127.0.0.1:1" });',
        'export const s: string = canonicalString({ from: "a", to: "b", subject: "s", payload_hash: "h" });',
        'export const f: typeof signMessage = signMessage;',
        'export type T = [ServerHandle, QueuedMessage];',
        '',
      ].join('\n'),
    );
    for (const resolution of ['node16', 'bundler'] as const) {
      const r = await run(process.execPath, [
        TSC,
        '-p',
        tsconfig(`tsconfig.${resolution}.json`, ['imports.ts'], resolution),
      ]);
      expect(r.out).not.toMatch(/TS7016/);
      expect({ resolution, ...r }).toEqual({ resolution, code: 0, out: '' });
    }
  });

  it('catches a type error in SDK use (the check can fail)', async () => {
    writeFileSync(
      join(dir, 'bad.ts'),
      "import { AmpClient } from 'amp-relay/client';\nnew AmpClient({ baseUrl: 'x' }).route({ to: 'a', subject: 1 });\n",
    );
    const r = await run(process.execPath, [TSC, '-p', tsconfig('tsconfig.bad.json', ['bad.ts'], 'node16')]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/bad\.ts\(2,\d+\): error TS2322/);
    expect(r.out).not.toMatch(/TS7016/);
  });

  describe('the README example', () => {
    let t: TestServer;
    beforeAll(async () => {
      t = await startTestServer();
    });
    afterAll(async () => {
      await t.close();
    });

    it('type-checks strictly and runs: a signed message arrives verified over WebSocket and is acked', async () => {
      writeFileSync(join(dir, 'example.ts'), readmeBlock('sdk-example'));
      const built = await run(process.execPath, [TSC, '-p', tsconfig('tsconfig.json', ['example.ts'], 'node16')]);
      expect(built).toEqual({ code: 0, out: '' });
      const r = await run(process.execPath, [join(dir, 'out', 'example.js')], { AMP_URL: t.url });
      expect(r).toMatchObject({ code: 0 });
      const lines = r.out.trim().split('\n');
      expect(lines).toHaveLength(3);
      const sent = /^sent (msg_\S+) \(delivered\)$/m.exec(r.out);
      expect(sent, r.out).not.toBeNull();
      expect(r.out).toMatch(/^received "Hi" from worker-[a-z0-9]+@acme\.\S+, trust_level verified$/m);
      expect(r.out).toContain(`acked ${sent![1]}\n`);
    });
  });
});
