// A bad AMP_MESH_CONFIG file is a configuration error: check-config and serve refuse it before
// any port is opened, naming the file and the problem; a good one passes check-config.

import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../helpers/server.js';

const dir = tempDir('amp-mesh-config-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = (env: Record<string, string>, ...args: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), ...args, '--data-dir', join(dir, 'data')], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
    timeout: 20_000,
  });

function file(name: string, doc: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return path;
}

describe('AMP_MESH_CONFIG is checked with the configuration', () => {
  const bad = file('bad.json', {
    mesh: {
      self_id: 'a',
      hosts: [
        { id: 'a', url: 'http://10.0.0.5:23000', secret: 'x' },
        { id: 'b', url: 'x' },
      ],
    },
  });

  it('check-config names every problem of the file', () => {
    const r = cli({ AMP_MESH_CONFIG: bad }, 'check-config');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`AMP_MESH_CONFIG ${bad}: hosts[0].secret must be a string of at least 16 characters`);
    expect(r.stderr).toContain(`AMP_MESH_CONFIG ${bad}: hosts[1].url must be an http(s) base URL`);
    expect(r.stderr).toContain('hosts[1] needs exactly one of secret');
  });

  it('serve refuses it before listening; a missing file is named too', () => {
    const r = cli({}, 'serve', '--port', '0', '--mesh-config', bad);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--mesh-config ${bad}: hosts[0].secret must be`);
    expect(r.stdout).not.toContain('listening');
    const missing = cli({}, 'check-config', '--mesh-config', join(dir, 'nope.json'));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain(`--mesh-config ${join(dir, 'nope.json')} cannot be read (no such file)`);
  });

  it('a good file passes', () => {
    const good = file('good.json', {
      mesh: { self_id: 'a', hosts: [{ id: 'b', url: 'http://10.0.0.5:23000', secret: 'sixteen-chars-or-more' }] },
    });
    const r = cli({ AMP_MESH_CONFIG: good }, 'check-config');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
