// deploy/cluster/, checked as far as this machine allows (no Docker daemon): the compose file names
// real AMP_* settings with the values a cluster needs (nats store, every NATS server a seed, 3
// replicas, a node id each) and three JetStream servers routed to each other; and nginx.conf, run
// in a real nginx with its upstreams pointed at two relay nodes on loopback (nats mode, a 3-server
// NATS cluster), passes REST and WebSocket upgrades to either node.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OPTIONS } from '../../src/config/schema.js';
import { type RelayCluster, startRelays } from '../helpers/cluster.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import { freePort } from '../helpers/ports.js';
import { call, newKeypair, ROOT, routeOk, tempDir } from '../helpers/server.js';
import { closeAllWs, connectWs, until } from '../helpers/ws.js';

const DIR = join(ROOT, 'deploy', 'cluster');
const compose = readFileSync(join(DIR, 'docker-compose.yml'), 'utf8');
const nginxConf = readFileSync(join(DIR, 'nginx.conf'), 'utf8');
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
const KNOWN_ENV = new Set(Object.values(OPTIONS).map((o) => o.env));

/** `KEY: value` lines under the relays' environment (the shared anchor and each node's own). */
const envLines = (text: string) =>
  [...text.matchAll(/^\s+(AMP_[A-Z_]+):\s*"?([^"\n#]*?)"?\s*$/gm)].map((m) => [m[1]!, m[2]!] as const);

describe('deploy/cluster/docker-compose.yml', () => {
  it('says it is untested here, in its header and its README', () => {
    expect(compose).toMatch(/UNTESTED here/);
    expect(readFileSync(join(DIR, 'README.md'), 'utf8')).toMatch(/\*\*Untested here\.\*\*/);
  });

  it('names only real AMP_* settings, with the values a cluster needs', () => {
    const env = envLines(compose);
    for (const [k] of env) expect(KNOWN_ENV, `${k} is not a setting`).toContain(k);
    const value = (k: string) => env.filter(([key]) => key === k).map(([, v]) => v);
    expect(value('AMP_STORE')).toEqual(['nats']);
    expect(value('AMP_NATS_REPLICAS')).toEqual(['3']);
    const seeds = value('AMP_NATS_URL')[0]!.split(',');
    expect(seeds.sort()).toEqual(['nats://nats1:4222', 'nats://nats2:4222', 'nats://nats3:4222']);
    expect(value('AMP_NODE_ID').sort()).toEqual(['relay1', 'relay2']);
    expect(value('AMP_DATA_DIR')).toEqual(['/data']);
  });

  it('runs three JetStream servers in one cluster, each routed to the other two', () => {
    for (const n of [1, 2, 3]) {
      const block = compose.slice(compose.indexOf(`  nats${n}:\n`), compose.indexOf(`volumes: ["nats${n}:/data"]`));
      // The command's arguments, however the list is laid out (one per line, as the formatter writes it).
      const args = [...block.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
      const argOf = (flag: string) => args[args.indexOf(flag) + 1];
      expect(args).toContain('-js');
      expect(argOf('--server_name')).toBe(`nats${n}`);
      expect(argOf('--cluster_name')).toBe('amp');
      const routes = argOf('--routes').split(',');
      const others = [1, 2, 3].filter((x) => x !== n).map((x) => `nats://nats${x}:6222`);
      expect(routes.sort()).toEqual(others);
    }
  });

  it('puts nginx in front of both relays with WebSocket upgrade and a long read timeout', () => {
    expect(nginxConf).toMatch(/server relay1:23000/);
    expect(nginxConf).toMatch(/server relay2:23000/);
    expect(nginxConf).toMatch(/proxy_http_version 1\.1;/);
    expect(nginxConf).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(nginxConf).toMatch(/proxy_set_header Connection \$connection_upgrade;/);
    const read = Number(/proxy_read_timeout (\d+)s;/.exec(nginxConf)![1]);
    expect(read).toBeGreaterThan(OPTIONS.wsIdleTimeout.default as number);
    expect(nginxConf).not.toMatch(/non_idempotent/);
  });
});

describe.skipIf(!NGINX)('deploy/cluster/nginx.conf in a real nginx, two relay nodes behind it', () => {
  const dir = tempDir('amp-lb-');
  let nats: NatsCluster | undefined;
  let relays: RelayCluster | undefined;
  let nginx: ChildProcess | undefined;
  afterAll(async () => {
    await closeAllWs();
    if (nginx && nginx.exitCode === null) {
      const gone = new Promise((r) => nginx!.once('exit', r));
      nginx.kill('SIGTERM');
      await gone;
    }
    await relays?.close();
    await nats?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers, authenticates, routes and pushes through the load balancer', async () => {
    nats = await startNats({ cluster: 3 });
    relays = await startRelays(nats, { nodes: 2, prefix: uniquePrefix('lb') });
    const port = await freePort();
    const [n1, n2] = relays.nodes;
    const conf = nginxConf
      .replace('worker_processes auto;', `daemon off;\nmaster_process off;\npid ${join(dir, 'nginx.pid')};`)
      .replace('server relay1:23000', `server ${new URL(n1!.url).host}`)
      .replace('server relay2:23000', `server ${new URL(n2!.url).host}`)
      .replace('listen 80;', `listen 127.0.0.1:${port};`)
      .replace(
        'http {',
        `http {\n  access_log off;\n${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
          .map((t) => `  ${t}_temp_path ${join(dir, t)};`)
          .join('\n')}`,
      );
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'nginx.conf'), conf);
    nginx = spawn(NGINX!, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
      stdio: 'ignore',
    });
    const lb = `http://127.0.0.1:${port}`;
    expect(
      await until(
        async () => (await call('GET', `${lb}/api/v1/health`).catch(() => ({ status: 0 }))).status === 200,
        10_000,
      ),
    ).toBe(true);

    const reg = async (name: string) => {
      const keys = newKeypair();
      const r = await call('POST', `${lb}/api/v1/register`, {
        json: { name, tenant: 'acme', public_key: keys.publicPem, key_algorithm: 'Ed25519' },
      });
      expect(r.status).toBe(201);
      return { ...r.body, keys } as { address: string; api_key: string };
    };
    const alice = await reg('lb-alice');
    const bob = await reg('lb-bob');
    // Both nodes know both agents (whichever node nginx picks next).
    for (const n of relays.nodes) {
      for (const a of [alice, bob]) {
        const ok = await until(
          async () => (await call('GET', `${n.api}/messages/pending`, { key: a.api_key })).status === 200,
          3000,
        );
        expect(ok, `${n.id} knows ${a.address}`).toBe(true);
      }
    }
    const ws = await connectWs(`ws://127.0.0.1:${port}/v1/ws`, bob.api_key);
    for (let i = 0; i < 4; i++) {
      const r = await routeOk(`${lb}/api/v1`, alice.api_key, {
        to: bob.address,
        subject: `lb${i}`,
        payload: { type: 'notification', message: `${i}` },
      });
      await ws.next((f) => f?.type === 'message.new' && f.data?.id === r.id, 5000);
    }
  }, 90_000);
});
