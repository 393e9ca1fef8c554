// The mesh configuration file (spec §19.2, AMP_MESH_CONFIG): this host's id and its peers.
//
//   {"mesh": {"self_id": "host-a", "hosts": [
//     {"id": "host-b", "url": "http://10.0.0.5:23000", "secret": "at least 16 characters"},
//     {"id": "host-c", "url": "http://10.0.0.6:23000/v1", "public_key": "-----BEGIN PUBLIC KEY-----\n…"}]}}
//
// The entry for a peer holds what authenticates the traffic between us and it, both ways: a shared
// `secret` (both files hold the same one; HMAC `X-AMP-Mesh-Auth`), or the peer's own host key
// `public_key` (its provider key, as its /v1/info shows it): we check its requests with it, we sign
// ours with our provider key (`X-AMP-Mesh-Signature`), and its file names our public key.
// Checked with the rest of the configuration (check-config, serve): every problem is named.

import { readFileSync } from 'node:fs';
import { parsePublicKeyPem } from '../../crypto/keys.js';

export type MeshAuth = { kind: 'secret'; secret: string } | { kind: 'key'; publicKeyPem: string };

export interface MeshHost {
  id: string;
  /** The peer's base URL without a trailing `/`, `/v1` or `/api/v1`: requests go to `<url>/v1/…`. */
  url: string;
  auth: MeshAuth;
}

export interface MeshConfig {
  selfId: string;
  hosts: MeshHost[];
}

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const MIN_SECRET_CHARS = 16;
const HOST_FIELDS = new Set(['id', 'url', 'secret', 'public_key']);

export class MeshConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'MeshConfigError';
  }
}

/** Reads and checks the file; throws MeshConfigError naming every problem. */
export function loadMeshConfig(path: string, setting = 'AMP_MESH_CONFIG'): MeshConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.message;
    throw new MeshConfigError([`${setting} ${path} cannot be read (${why})`]);
  }
  return parseMeshConfig(text, `${setting} ${path}`);
}

/** The problems of the file, for the configuration check (empty when valid or not configured). */
export function meshConfigProblems(path: string, setting: string): string[] {
  if (!path) return [];
  try {
    loadMeshConfig(path, setting);
    return [];
  } catch (e) {
    if (e instanceof MeshConfigError) return e.problems;
    throw e;
  }
}

/** `source` prefixes each problem (e.g. `AMP_MESH_CONFIG /etc/amp/mesh.json`). */
export function parseMeshConfig(text: string, source: string): MeshConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new MeshConfigError([`${source} is not valid JSON: ${(e as Error).message}`]);
  }
  const problems: string[] = [];
  const say = (p: string) => problems.push(`${source}: ${p}`);
  const root = isObject(doc) && isObject(doc.mesh) ? doc.mesh : doc;
  if (!isObject(root)) throw new MeshConfigError([`${source}: must be a JSON object {"mesh": {"self_id", "hosts"}}`]);
  const selfId = root.self_id;
  if (typeof selfId !== 'string' || !LABEL_RE.test(selfId))
    say(`self_id must be a lowercase DNS label (a-z, 0-9, '-'; got ${JSON.stringify(selfId ?? null)})`);
  const hosts: MeshHost[] = [];
  if (!Array.isArray(root.hosts) || root.hosts.length === 0) say('hosts must be a non-empty array of peers');
  else
    root.hosts.forEach((h, i) => {
      const host = parseHost(h, `hosts[${i}]`, say);
      if (!host) return;
      if (host.id === selfId) say(`hosts[${i}].id '${host.id}' is self_id: list only the other hosts`);
      else if (hosts.some((o) => o.id === host.id)) say(`hosts[${i}].id '${host.id}' is listed twice`);
      else hosts.push(host);
    });
  if (problems.length > 0) throw new MeshConfigError(problems);
  return { selfId: selfId as string, hosts };
}

function parseHost(h: unknown, at: string, say: (p: string) => void): MeshHost | undefined {
  if (!isObject(h)) {
    say(`${at} must be an object {"id", "url", "secret" | "public_key"}`);
    return undefined;
  }
  let ok = true;
  const bad = (p: string) => {
    ok = false;
    say(`${at}${p}`);
  };
  for (const k of Object.keys(h))
    if (!HOST_FIELDS.has(k)) bad(`.${k} is not a host field (id, url, secret, public_key)`);
  if (typeof h.id !== 'string' || !LABEL_RE.test(h.id))
    bad(`.id must be a lowercase DNS label (a-z, 0-9, '-'; got ${JSON.stringify(h.id ?? null)})`);
  const url = baseUrl(h.url);
  if (!url) bad(`.url must be an http(s) base URL without query or credentials (got ${JSON.stringify(h.url ?? null)})`);
  const auth = parseAuth(h, bad);
  return ok && url && auth ? { id: h.id as string, url, auth } : undefined;
}

function parseAuth(h: Record<string, unknown>, bad: (p: string) => void): MeshAuth | undefined {
  const hasSecret = h.secret !== undefined;
  const hasKey = h.public_key !== undefined;
  if (hasSecret === hasKey) {
    bad(' needs exactly one of secret (a shared secret) or public_key (the peer host key, Ed25519 PEM)');
    return undefined;
  }
  if (hasSecret) {
    if (typeof h.secret === 'string' && h.secret.length >= MIN_SECRET_CHARS)
      return { kind: 'secret', secret: h.secret };
    bad(`.secret must be a string of at least ${MIN_SECRET_CHARS} characters`);
    return undefined;
  }
  const key = typeof h.public_key === 'string' ? parsePublicKeyPem(h.public_key) : 'not_pem';
  if (typeof key !== 'string') return { kind: 'key', publicKeyPem: key.pem };
  const why =
    key === 'private_key'
      ? "is a private key: give the peer's public key (its /v1/info public_key)"
      : key === 'not_ed25519'
        ? 'is not an Ed25519 key'
        : 'must be an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----)';
  bad(`.public_key ${why}`);
  return undefined;
}

/** `http://h:1/`, `http://h:1/v1`, `http://h:1/api/v1` → `http://h:1`; undefined when not a base URL. */
function baseUrl(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  if (u.search || u.hash || u.username || u.password) return undefined;
  const path = u.pathname.replace(/\/+$/, '').replace(/\/(api\/)?v1$/, '');
  return `${u.protocol}//${u.host}${path}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
