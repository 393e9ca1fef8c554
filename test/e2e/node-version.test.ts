// bin/amp-relay.js refuses another Node major before it loads the CLI. The Node here is 20, so another
// version is faked: a module preloaded with --import replaces process.versions (only .node differs).
// The bin reads process.versions.node, so this runs the real bin and its real check end to end.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/server.js';

const run = promisify(execFile);
const BIN = join(ROOT, 'bin', 'amp-relay.js');

function fakeNode(version: string): string[] {
  const code = `Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '${version}' } });`;
  return ['--import', `data:text/javascript,${encodeURIComponent(code)}`];
}

async function amp(nodeArgs: string[], args: string[], env: Record<string, string> = {}) {
  try {
    const r = await run(process.execPath, [...nodeArgs, BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      timeout: 15_000,
      killSignal: 'SIGKILL',
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e: any) {
    return { code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string };
  }
}

describe('bin/amp-relay.js on another Node', () => {
  it.each(['22.12.0', '24.11.1', '18.20.4'])('Node %s: exits 1 at once with the supported versions', async (v) => {
    // A bad port: on a supported Node the CLI would answer with a config error (exit 2); the version
    // check must come first, before the CLI is even imported.
    const r = await amp(fakeNode(v), ['serve'], { AMP_PORT: 'not-a-port' });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `amp-relay runs on Node.js 20.19 or a later 20.x; this is Node.js ${v}. Its uWebSockets.js build has a ` +
        'native binary for Node 20 only (newer uWebSockets.js builds need glibc 2.38 or later). Install Node 20 ' +
        '(e.g. nvm install 20) and try again; the README section "Node versions" has the details.\n',
    );
  });

  it('the fake reaches the bin: faking the running version itself changes nothing', async () => {
    const r = await amp(fakeNode(process.versions.node), ['version']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});

describe('bin/amp-relay.js on this Node 20', () => {
  it('runs the CLI', async () => {
    expect(process.versions.node.startsWith('20.')).toBe(true);
    const r = await amp([], ['check-config'], { AMP_PORT: 'not-a-port' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('AMP_PORT');
  });
});
