// Two federated providers on this machine (spec §19.1), for scenario 8: `a.example` and
// `b.example`, each an `amp-relay serve` child on its own core, each pinning the other. Ports and
// provider keys are chosen before either starts, so each pins file can name the other's endpoint
// and public key: the key is written into the data dir under the name the server loads it from
// (it creates one only when the file is missing), and checked afterwards in its discovery document.

import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROVIDER_KEY_FILE } from '../../src/crypto/provider-key.js';
import { freePort } from '../../test/helpers/ports.js';
import { startBenchServer, type BenchServer, type ServerOptions } from './proc.js';

export const DOMAIN_A = 'a.example';
export const DOMAIN_B = 'b.example';

/** Where the two providers and the load run. */
export interface ProviderPlacement {
  a: string | undefined;
  b: string | undefined;
  /** The load's cores when the run may choose them (undefined: leave the load as it is). */
  load: string | undefined;
  note: string;
}

/**
 * A on one core, B on another; the load on the cores left, or (two cores) unpinned. The load's
 * actual cores are read back at run time (loadCores()) because run.ts may have pinned it already.
 */
export function providerPlacement(pin: boolean, cores: number): ProviderPlacement {
  const taskset = existsSync('/usr/bin/taskset') || existsSync('/bin/taskset');
  const none = (note: string) => ({ a: undefined, b: undefined, load: undefined, note });
  if (!pin) return none('not pinned (--no-pin)');
  if (cores < 2) return none('one core: both providers and the load share it');
  if (!taskset) return none('taskset not found: not pinned');
  const a = String(cores - 2);
  const b = String(cores - 1);
  if (cores === 2) return { a, b, load: undefined, note: `provider A on core ${a}, provider B on core ${b}` };
  const load = cores === 3 ? '0' : `0-${cores - 3}`;
  return { a, b, load, note: `provider A on core ${a}, provider B on core ${b}, load on core(s) ${load}` };
}

/** The cores this process may run on (Linux: Cpus_allowed_list), e.g. "0-1"; "" when unknown. */
export function loadCores(): string {
  try {
    return /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

/** The cores of a list such as "0-2,5" ([0, 1, 2, 5]); [] for "". */
export function coreList(list: string): number[] {
  return list
    .split(',')
    .filter(Boolean)
    .flatMap((part) => {
      const [from, to = from] = part.split('-').map(Number);
      return Array.from({ length: Math.max(0, to! - from! + 1) }, (_, i) => from! + i);
    });
}

export interface Providers {
  a: BenchServer;
  b: BenchServer;
  /** The discovery documents, as each server serves them once started. */
  discovery: { a: Record<string, unknown>; b: Record<string, unknown> };
  /** Problems seen at start (e.g. a server that did not take the key written for it). */
  notes: string[];
  stop(): Promise<void>;
}

interface Prepared {
  domain: string;
  port: number;
  dataDir: string;
  publicPem: string;
}

function prepare(domain: string, port: number): Prepared {
  const dataDir = mkdtempSync(join(tmpdir(), `amp-bench-${domain}-`));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(join(dataDir, PROVIDER_KEY_FILE), privateKey.export({ format: 'pem', type: 'pkcs8' }), {
    mode: 0o600,
  });
  return { domain, port, dataDir, publicPem: publicKey.export({ format: 'pem', type: 'spki' }) as string };
}

/**
 * Start A and B, each pinning the other (allowlist mode, http allowed for 127.0.0.1). With
 * `logPrefix`, each server's log goes to `<logPrefix>-a.example.log` and `-b.example.log`.
 */
export async function startProviders(
  place: ProviderPlacement,
  base: ServerOptions = {},
  logPrefix?: string,
): Promise<Providers> {
  const pinDir = mkdtempSync(join(tmpdir(), 'amp-bench-pins-'));
  const a = prepare(DOMAIN_A, await freePort());
  const b = prepare(DOMAIN_B, await freePort());
  const started: BenchServer[] = [];
  const start = async (self: Prepared, other: Prepared, cores: string | undefined) => {
    const pins = join(pinDir, `${self.domain}.json`);
    const endpoint = `http://127.0.0.1:${other.port}/v1`;
    writeFileSync(pins, JSON.stringify({ [other.domain]: { endpoint, public_key: other.publicPem } }, null, 2));
    const s = await startBenchServer(cores, {
      ...base,
      port: self.port,
      dataDir: self.dataDir,
      logFile: logPrefix === undefined ? undefined : `${logPrefix}-${self.domain}.log`,
      extraArgs: [...(base.extraArgs ?? []), '--provider-domain', self.domain],
      env: {
        ...base.env,
        AMP_FEDERATION_PINS: pins,
        AMP_FEDERATION_ALLOW_HTTP: '127.0.0.1',
        AMP_FEDERATION_MODE: 'allowlist',
      },
    });
    started.push(s);
    return s;
  };
  const stop = async () => {
    await Promise.all(started.map((s) => s.stop()));
    for (const p of [a, b]) rmSync(p.dataDir, { recursive: true, force: true });
    rmSync(pinDir, { recursive: true, force: true });
  };
  try {
    const sa = await start(a, b, place.a);
    const sb = await start(b, a, place.b);
    const discovery = { a: await wellKnown(sa), b: await wellKnown(sb) };
    const notes: string[] = [];
    for (const [p, d] of [
      [a, discovery.a],
      [b, discovery.b],
    ] as const) {
      if (String(d.public_key ?? '').trim() !== p.publicPem.trim())
        notes.push(`${p.domain} serves a public key other than the one its peer pins: federation will refuse`);
    }
    return { a: sa, b: sb, discovery, notes, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function wellKnown(s: BenchServer): Promise<Record<string, unknown>> {
  const res = await fetch(`${s.url}/.well-known/agent-messaging.json`);
  if (!res.ok) throw new Error(`GET ${s.url}/.well-known/agent-messaging.json: ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}
