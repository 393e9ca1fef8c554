// The cluster settings (issue 18): AMP_STORE=nats needs seed URLs; the prefix names streams and
// buckets, so it is kept to what NATS accepts in a stream name everywhere.

import { existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';

export interface ClusterSettings {
  readonly store: 'lmdb' | 'nats';
  readonly natsUrl: readonly string[];
  readonly natsCreds: string;
  readonly natsPrefix: string;
  readonly nodeId: string;
}

type Key = 'store' | 'natsUrl' | 'natsCreds' | 'natsPrefix' | 'nodeId';

/** `nats://host:port`, `tls://…`, `ws(s)://…` or a bare `host:port`. */
const SEED_RE = /^((nats|tls|ws|wss):\/\/)?([^\s:/@]+@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

export function clusterProblems(c: ClusterSettings, name: (key: Key) => string): string[] {
  const problems: string[] = [];
  const store = name('store').startsWith('--') ? `${name('store')} nats` : `${name('store')}=nats`;
  if (c.store === 'nats' && c.natsUrl.length === 0)
    problems.push(`${store} needs ${name('natsUrl')} (comma-separated seeds, e.g. nats://10.0.0.1:4222)`);
  for (const u of c.natsUrl)
    if (!SEED_RE.test(u)) problems.push(`${name('natsUrl')} entries are nats://host:port (got '${redactSeed(u)}')`);
  if (!/^[A-Z0-9_]+$/.test(c.natsPrefix))
    problems.push(`${name('natsPrefix')} may hold only A-Z, 0-9 and _ (got '${c.natsPrefix}')`);
  if (c.natsCreds && !(existsSync(c.natsCreds) && statSync(c.natsCreds).isFile()))
    problems.push(`${name('natsCreds')} is not a readable file (got '${c.natsCreds}')`);
  if (c.nodeId && !/^[A-Za-z0-9._-]{1,64}$/.test(c.nodeId))
    problems.push(`${name('nodeId')} may hold only letters, digits, . _ and - (1-64; got '${c.nodeId}')`);
  return problems;
}

/** A seed URL without the token it may carry (`nats://<token>@host` → `nats://***@host`): for logs and print-env. */
export function redactSeed(u: string): string {
  return u.replace(/^((?:[a-z]+:\/\/)?)[^\s/@]+@/i, '$1***@');
}

/** AMP_NODE_ID, or `<hostname>-<pid>` when it is not set. */
export function nodeIdOf(c: Pick<ClusterSettings, 'nodeId'>): string {
  return c.nodeId || `${hostname()}-${process.pid}`;
}
