// `amp-relay admin-token`, and the minting the admin CLI shares: an admin JWT (agent-identity §10)
// signed with the key set a server made in its data dir. Nothing here creates keys: a data dir
// without them is a wrong one (or a server that never ran), and saying so beats a token the
// server cannot verify.

import { tlsEnabled } from '../config/tls.js';
import type { Config } from '../config/schema.js';
import { issuerOf, mintAdminToken } from '../identity/admin-tokens.js';
import { NoSigningKeysError, SigningKeys } from '../identity/signing-keys.js';

/** A mistake of the caller's: the CLI prints it and exits 2. */
export class CliUsageError extends Error {}

/**
 * The base URL the server takes its issuers from when it runs with this configuration:
 * AMP_PUBLIC_URL, else `http(s)://localhost:<port>` (https when the server has AMP_TLS_CERT/KEY; it never uses AMP_HOST or a request's
 * Host for it, so neither does this). Port 0 has no such URL until the server listens.
 */
export function issuerBase(cfg: Config): string {
  if (cfg.publicUrl) return cfg.publicUrl.replace(/\/+$/, '');
  if (cfg.port === 0)
    throw new CliUsageError(
      'with port 0 the issuer is known only once the server listens: set AMP_PUBLIC_URL (--public-url) ' +
        'or the port the server uses (--port / AMP_PORT)',
    );
  return `${tlsEnabled(cfg) ? 'https' : 'http'}://localhost:${cfg.port}`;
}

export interface MintRequest {
  tenant: string;
  email: string;
  scopes: string[];
  ttlSeconds?: number;
  /** The issuer to sign for; default: the configuration's (issuerBase). */
  issuer?: string;
}

/** Mint from the data dir of `cfg`; the key id comes back too, to check against a server's JWKS. */
export async function mintFromDataDir(cfg: Config, r: MintRequest): Promise<{ token: string; kid: string }> {
  const tenant = r.tenant.toLowerCase();
  let keys: SigningKeys;
  try {
    keys = await SigningKeys.open(cfg.dataDir, cfg.aidJwtAlg);
  } catch (e) {
    if (e instanceof NoSigningKeysError) throw new CliUsageError(e.message);
    throw e;
  }
  const issuer = r.issuer ?? issuerOf(issuerBase(cfg), tenant);
  try {
    const token = await mintAdminToken(keys, { ...r, issuer, tenant });
    return { token, kid: (await keys.current()).kid };
  } catch (e) {
    throw new CliUsageError((e as Error).message);
  }
}

/** `admin-token`: its own flags (--email, --tenant, --scopes, --ttl), the rest configure. */
export async function adminTokenCommand(rest: string[], config: (args: string[]) => Config): Promise<number> {
  const own: Record<string, string> = {};
  const configArgs: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const m = /^--(email|tenant|scopes|ttl)(?:=(.*))?$/.exec(rest[i]);
    if (!m) configArgs.push(rest[i]);
    else if (m[2] !== undefined) own[m[1]] = m[2];
    else if (i + 1 < rest.length) own[m[1]] = rest[++i];
    else throw new CliUsageError(`option '--${m[1]}' needs a value`);
  }
  for (const need of ['email', 'tenant', 'scopes'])
    if (!own[need]) throw new CliUsageError(`admin-token needs --${need}`);
  const cfg = config(configArgs);
  const issuer = issuerOf(issuerBase(cfg), own.tenant.toLowerCase());
  const { token } = await mintFromDataDir(cfg, {
    tenant: own.tenant,
    email: own.email,
    scopes: own.scopes.split(/[\s,]+/).filter(Boolean),
    ttlSeconds: own.ttl === undefined ? undefined : Number(own.ttl),
    issuer,
  });
  process.stdout.write(`${token}\n`);
  process.stderr.write(`admin token for issuer ${issuer} (signed with the keys in ${cfg.dataDir})\n`);
  return 0;
}
