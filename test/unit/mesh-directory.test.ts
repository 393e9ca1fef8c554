// Where the mesh sends an own-domain address (§19.2): host-id addresses to that peer, the self id
// to this host's default tenant, unknown org addresses to the peer that has them (asked once, cached).

import { describe, expect, it } from 'vitest';
import { MeshDirectory } from '../../src/relay/mesh/directory.js';

const names = {
  selfId: 'macbook',
  hostIds: ['server-01', 'lab'],
  providers: ['aimaestro.local', 'amp.example.com'],
  defaultTenant: 'home',
};

function directory(answer: (address: string) => string | undefined = () => undefined) {
  const asked: string[] = [];
  const d = new MeshDirectory(names, async (address) => {
    asked.push(address);
    return answer(address);
  });
  return { d, asked };
}

describe('MeshDirectory', () => {
  it('routes a host id (rightmost scope label) of an own domain to that peer', () => {
    const { d } = directory();
    expect(d.route('bob@server-01.aimaestro.local', 'aimaestro.local')).toEqual({
      kind: 'mesh',
      target: 'mesh:server-01',
      remoteHost: 'server-01',
      waitMs: 3000,
    });
    expect(d.route('bob@repo.plat.lab.amp.example.com', 'amp.example.com')?.target).toBe('mesh:lab');
    expect(d.route('bob@acme.aimaestro.local', 'aimaestro.local')).toBeUndefined();
    expect(d.route('bob@macbook.aimaestro.local', 'aimaestro.local')).toBeUndefined();
    expect(d.route('bob@server-01.other.example', 'other.example')).toBeUndefined();
  });

  it('localizes the self id to the default tenant, and expands one-label forms', () => {
    const { d } = directory();
    expect(d.localize('bob@macbook.aimaestro.local')).toBe('bob@home.aimaestro.local');
    expect(d.localize('Bob@MacBook')).toBe('bob@home.aimaestro.local');
    expect(d.localize('bob@repo.plat.macbook.amp.example.com')).toBe('bob@repo.plat.home.amp.example.com');
    expect(d.localize('bob@acme')).toBe('bob@acme.aimaestro.local');
    expect(d.localize('bob@acme.aimaestro.local')).toBeUndefined();
    expect(d.localize('not an address')).toBeUndefined();
  });

  it('asks the peers once per address: concurrent lookups share the question, answers are cached', async () => {
    const { d, asked } = directory((a) => (a.startsWith('bob@') ? 'lab' : undefined));
    const [r1, r2] = await Promise.all([d.lookup('bob@acme.aimaestro.local'), d.lookup('bob@acme.aimaestro.local')]);
    expect(r1?.target).toBe('mesh:lab');
    expect(r2?.target).toBe('mesh:lab');
    expect(await d.lookup('nobody@acme.aimaestro.local')).toBeUndefined();
    expect(await d.lookup('nobody@acme.aimaestro.local')).toBeUndefined();
    expect(await d.lookup('bob@acme.aimaestro.local')).toBeDefined();
    expect(asked).toEqual(['bob@acme.aimaestro.local', 'nobody@acme.aimaestro.local']);
  });
});
