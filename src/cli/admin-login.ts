// `amp-relay admin login`: a one-time sign-in link to the admin console, minted from the server's
// data dir (the same configuration the server reads) like admin-token. Prints the link alone on
// stdout; what it grants and for how long go to stderr.

import type { Config } from '../config/schema.js';
import { issuerOf } from '../identity/admin-tokens.js';
import {
  consoleLoginProblem,
  DEFAULT_CONSOLE_SCOPES,
  DEFAULT_LOGIN_TTL_S,
  MAX_LOGIN_TTL_S,
  mintConsoleLogin,
} from '../identity/console-login.js';
import { NoSigningKeysError, SigningKeys } from '../identity/signing-keys.js';
import { whoAmI } from './admin-target.js';
import { CliUsageError, issuerBase } from './admin-token.js';

export const LOGIN_HELP = `Usage: amp-relay admin login [--tenant T] [--email E] [--scopes S,...] [--ttl SECONDS] [--url BASE] [options]

Print a one-time sign-in link to the admin console (BASE/admin/#login=...). Open it in a browser:
it signs you in (a session cookie, 8 hours; a server restart signs everyone out). The link works
once and expires after --ttl seconds.

  --tenant T       the organisation to administer (default: AMP_DEFAULT_TENANT)
  --email E        who the audit log names for your actions (default: user@host)
  --scopes S,...   what the session may do (default: agent_registrations:write,amp:admin, which
                   include reading); read-only: agent_registrations:read,amp:admin:read
  --ttl SECONDS    how long the link stays valid (default ${DEFAULT_LOGIN_TTL_S}, at most ${MAX_LOGIN_TTL_S})
  --url BASE       the server's address in the link (default: AMP_PUBLIC_URL, else
                   http://localhost:<AMP_PORT>, https with AMP_TLS_CERT/KEY). The link is signed
                   for the server's issuer, which --url does not change: give the server's
                   --port or --public-url (or AMP_PORT / AMP_PUBLIC_URL) as it runs with
  --data-dir DIR   the server's data dir, whose signing keys sign the link (default: AMP_DATA_DIR,
                   else ./data); other server options (--port, --public-url ...) are read as 'serve' does
  -h, --help       this help
`;

const OWN = /^--(tenant|email|scopes|ttl|url)(?:=(.*))?$/;

function parse(args: string[]): { own: Record<string, string>; configArgs: string[]; help: boolean } {
  const own: Record<string, string> = {};
  const configArgs: string[] = [];
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const m = OWN.exec(args[i]);
    if (args[i] === '-h' || args[i] === '--help') help = true;
    else if (!m) configArgs.push(args[i]);
    else if (m[2] !== undefined) own[m[1]] = m[2];
    else if (i + 1 < args.length && !args[i + 1].startsWith('--')) own[m[1]] = args[++i];
    else throw new CliUsageError(`option '--${m[1]}' needs a value`);
  }
  return { own, configArgs, help };
}

function ttlOf(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_LOGIN_TTL_S;
  if (!/^\d+$/.test(raw)) throw new CliUsageError(`--ttl must be a whole number of seconds (got '${raw}')`);
  return Number(raw);
}

function baseOf(raw: string | undefined, cfg: Config): string {
  if (raw === undefined) return issuerBase(cfg);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new CliUsageError(`--url must be an http(s) URL (got '${raw}')`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new CliUsageError(`--url must be an http(s) URL (got '${raw}')`);
  return raw.replace(/\/+$/, '');
}

export async function adminLoginCommand(args: string[], config: (args: string[]) => Config): Promise<number> {
  const { own, configArgs, help } = parse(args);
  if (help) {
    process.stdout.write(LOGIN_HELP);
    return 0;
  }
  const cfg = config(configArgs);
  const tenant = (own.tenant ?? cfg.defaultTenant).toLowerCase();
  const email = own.email ?? whoAmI();
  const scopes = own.scopes === undefined ? DEFAULT_CONSOLE_SCOPES : own.scopes.split(/[\s,]+/).filter(Boolean);
  const ttlSeconds = ttlOf(own.ttl);
  const problem = consoleLoginProblem({ tenant, email, scopes, ttlSeconds });
  if (problem) throw new CliUsageError(problem);
  const base = baseOf(own.url, cfg);
  let keys: SigningKeys;
  try {
    keys = await SigningKeys.open(cfg.dataDir, cfg.aidJwtAlg);
  } catch (e) {
    if (e instanceof NoSigningKeysError) throw new CliUsageError(e.message);
    throw e;
  }
  // The server signs for its own issuer: with port 0 and no public URL, --url is the best guess of it.
  const issuer = issuerOf(cfg.port === 0 && !cfg.publicUrl && own.url ? base : issuerBase(cfg), tenant);
  const token = await mintConsoleLogin(keys, { issuer, tenant, email, scopes, ttlSeconds });
  process.stdout.write(`${base}/admin/#login=${token}\n`);
  process.stderr.write(
    `sign-in link for ${email} in ${tenant} (scopes ${scopes.join(', ')}); it works once, within ${ttlSeconds} s\n`,
  );
  return 0;
}
