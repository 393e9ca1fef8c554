// Real NATS servers for the cluster tests and the bench: Debian's nats-server (2.9.x) with
// JetStream, one or three of them, each with its own temp dir (config, JetStream store, log) and
// free loopback ports (client, cluster route, monitor). Three servers form one cluster (named,
// routes to each other). Ready = every monitor port answers /healthz?js-enabled-only=true and a
// JetStream meta leader is known (for a cluster), within a bounded time. Only the processes
// started here are ended, by their PID.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 50;

export function natsBinary(): string {
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) {
    if (existsSync(p)) return p;
  }
  return 'nats-server';
}

export interface NatsServer {
  /** Server name inside the cluster (`n1`, `n2`, `n3`). */
  name: string;
  /** PID of the running process (undefined while stopped). */
  pid: number | undefined;
  /** `nats://127.0.0.1:<client port>` */
  url: string;
  /** `http://127.0.0.1:<monitor port>` */
  monitor: string;
  /** The temp dir with config, store and log. */
  dir: string;
  /** SIGKILL, resolves once the process has ended. */
  kill9(): Promise<void>;
  /** SIGTERM (lame-duck-free shutdown), SIGKILL after a bound; resolves once ended. */
  stop(): Promise<void>;
  /** Start again with the same ports, config and JetStream store; resolves once ready. */
  restart(): Promise<void>;
  /** The server's log so far (for failure messages). */
  log(): string;
}

export interface NatsCluster {
  /** Client URLs of every server, in order (a relay takes them all as seeds). */
  urls: string[];
  servers: NatsServer[];
  /** Stop every server started here and remove the temp dirs. */
  close(): Promise<void>;
}

interface Ports {
  client: number;
  cluster: number;
  monitor: number;
}

function configText(name: string, dir: string, ports: Ports, clusterName: string, peers: Ports[]): string {
  const lines = [
    `server_name: ${name}`,
    'host: 127.0.0.1',
    `port: ${ports.client}`,
    'http: 127.0.0.1:' + ports.monitor,
    `jetstream { store_dir: "${join(dir, 'js')}", max_memory_store: 256MB, max_file_store: 2GB }`,
  ];
  if (peers.length > 0) {
    const routes = peers.map((p) => `nats-route://127.0.0.1:${p.cluster}`).join(', ');
    lines.push(`cluster { name: ${clusterName}, listen: 127.0.0.1:${ports.cluster}, routes: [${routes}] }`);
  }
  return `${lines.join('\n')}\n`;
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), 1000);
  try {
    const res = await fetch(url, { signal: ctl.signal });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: res.status, body };
  } finally {
    clearTimeout(t);
  }
}

/** Ready: JetStream enabled (healthz) and, in a cluster, a meta leader known to this server. */
async function isReady(monitor: string, clustered: boolean): Promise<boolean> {
  try {
    const h = await getJson(`${monitor}/healthz?js-enabled-only=true`);
    if (h.status !== 200) return false;
    if (!clustered) return true;
    const j = await getJson(`${monitor}/jsz`);
    return j.status === 200 && Boolean(j.body?.meta_cluster?.leader);
  } catch {
    return false;
  }
}

class Server implements NatsServer {
  proc: ChildProcess | undefined;
  exited: Promise<void> = Promise.resolve();
  readonly url: string;
  readonly monitor: string;
  private readonly conf: string;
  private readonly logFile: string;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly ports: Ports,
    private readonly clustered: boolean,
  ) {
    this.url = `nats://127.0.0.1:${ports.client}`;
    this.monitor = `http://127.0.0.1:${ports.monitor}`;
    this.conf = join(dir, 'nats.conf');
    this.logFile = join(dir, 'nats.log');
  }

  get pid(): number | undefined {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null ? this.proc.pid : undefined;
  }

  writeConfig(clusterName: string, peers: Ports[]): void {
    mkdirSync(join(this.dir, 'js'), { recursive: true });
    writeFileSync(this.conf, configText(this.name, this.dir, this.ports, clusterName, peers));
  }

  spawn(): void {
    const proc = spawn(natsBinary(), ['-c', this.conf, '-l', this.logFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '' },
    });
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d));
    this.proc = proc;
    this.exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    proc.on('error', (e) => (stderr += String(e)));
    this.stderr = () => stderr;
  }

  stderr: () => string = () => '';

  log(): string {
    try {
      return `${this.stderr()}${readFileSync(this.logFile, 'utf8')}`;
    } catch {
      return this.stderr();
    }
  }

  async waitReady(deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      if (this.pid === undefined) throw new Error(`nats-server ${this.name} exited while starting:\n${this.log()}`);
      if (await isReady(this.monitor, this.clustered)) return;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    throw new Error(`nats-server ${this.name} not ready within ${READY_TIMEOUT_MS} ms:\n${this.log().slice(-4000)}`);
  }

  async kill9(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    process.kill(pid, 'SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (this.pid === pid) process.kill(pid, 'SIGKILL');
    }, STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.stop();
    this.spawn();
    await this.waitReady(Date.now() + READY_TIMEOUT_MS);
  }
}

/** Start 1 or 3 (default) nats-server processes with JetStream; resolves once all are ready. */
export async function startNats(opts: { cluster?: 3 | 1 } = {}): Promise<NatsCluster> {
  const n = opts.cluster ?? 3;
  const root = mkdtempSync(join(tmpdir(), 'amp-nats-'));
  const clusterName = `amptest_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const ports: Ports[] = [];
  const seen = new Set<number>();
  while (ports.length < n) {
    const p: Ports = { client: await freePort(), cluster: await freePort(), monitor: await freePort() };
    const all = [p.client, p.cluster, p.monitor];
    if (new Set(all).size < 3 || all.some((x) => seen.has(x))) continue;
    for (const x of all) seen.add(x);
    ports.push(p);
  }
  const servers = ports.map((p, i) => {
    const dir = join(root, `n${i + 1}`);
    mkdirSync(dir);
    const s = new Server(`n${i + 1}`, dir, p, n > 1);
    s.writeConfig(
      clusterName,
      ports.filter((_, j) => j !== i && n > 1),
    );
    return s;
  });
  const close = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    for (const s of servers) s.spawn();
    const deadline = Date.now() + READY_TIMEOUT_MS;
    await Promise.all(servers.map((s) => s.waitReady(deadline)));
  } catch (e) {
    await close();
    throw e;
  }
  return { urls: servers.map((s) => s.url), servers, close };
}

/** A prefix for stream/bucket names that no other test (file or run) sharing a NATS uses. */
export function uniquePrefix(tag: string): string {
  const clean =
    tag
      .replace(/[^A-Za-z0-9]/g, '')
      .toUpperCase()
      .slice(0, 12) || 'T';
  return `${clean}${process.pid.toString(36).toUpperCase()}${Math.random().toString(36).slice(2, 6).toUpperCase()}`;
}
