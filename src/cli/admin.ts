// `amp-relay admin ...`: operate a running server over its HTTP API without hand-minted JWTs. The
// token is minted from the server's data dir (the same configuration the server reads: flags, then
// AMP_* variables), for the issuer that configuration gives (admin-target.ts: never the one a server
// announces), or given with --token, --token-file or AMP_ADMIN_TOKEN.

import { readFileSync } from 'node:fs';
import { type Config, ConfigError, flagKey, optionType } from '../config/schema.js';
import { ATTACHMENT_COMMANDS } from './admin-attachments.js';
import { type AdminSession, type Command, COMMANDS as BASE_COMMANDS } from './admin-commands.js';
import { CliError, EXIT, send, sendOk } from './admin-http.js';
import { defaultUrl, issuerFor, mintTarget, whoAmI } from './admin-target.js';
import { CliUsageError, mintFromDataDir } from './admin-token.js';
import { adminLoginCommand } from './admin-login.js';

const COMMANDS: Command[] = [...BASE_COMMANDS, ...ATTACHMENT_COMMANDS];

/** Minted tokens live this long: one CLI run. */
const TOKEN_TTL_S = 300;
const SCOPES = ['agent_registrations:write', 'amp:admin'];
const COMMON_FLAGS = ['url', 'token', 'token-file', 'tenant', 'email'];

const COMMON_HELP = `Common options:
  --url URL          the server (default: AMP_PUBLIC_URL, else http://<AMP_HOST>:<AMP_PORT>, with
                     127.0.0.1 for 0.0.0.0 or ::, https://localhost with AMP_TLS_CERT/KEY); a token
                     minted here is sent only over a connection to the IP address AMP_HOST binds
                     (127.0.0.1 for 0.0.0.0 or ::) at AMP_PORT, for a loopback --url or that
                     address (its name is kept for TLS), or to an https AMP_PUBLIC_URL; a plain-http
                     public URL gets none: give it --token-file or AMP_ADMIN_TOKEN
  --tenant T         the tenant to administer (default: AMP_DEFAULT_TENANT)
  --token-file FILE  an admin token to use (scopes agent_registrations:write and amp:admin), also
                     AMP_ADMIN_TOKEN or --token JWT (shown by ps); without one, a token is minted
                     for 5 min from the signing keys in --data-dir
  --data-dir DIR     the server's data dir (default: AMP_DATA_DIR, else ./data); other server
                     options (--port, --public-url, --aid-jwt-alg ...) are read as 'serve' does
  --email E          who the minted token names in the audit trail (default: user@host)
  --json             print the server's JSON answer instead of a table
  -h, --help         help (also after a command: 'amp-relay admin agents suspend --help')

With TLS and a self-signed certificate, trust it: NODE_EXTRA_CA_CERTS=cert.pem amp-relay admin ...

Exit codes: 0 ok; 1 the server refused or failed; 2 usage, configuration, no signing keys in the
data dir, or --url not this server's; 3 server unreachable or its certificate not trusted;
4 token refused (401/403); 5 unknown id or tenant (404).`;

function mainHelp(): string {
  const lines = COMMANDS.map((c) => `  ${c.usage}\n      ${c.summary}`);
  return `Usage: amp-relay admin <command> [options]

Operate a running amp-relay over its HTTP API: AID registrations, AMP agents, queues, audit trail,
attachments held for approval.

Commands:
  login [--tenant T] [--email E] [--scopes S,...] [--ttl SECONDS] [--url BASE]
      Print a one-time sign-in link to the admin console (/admin); 'amp-relay admin login --help'
${lines.join('\n')}

ID is a registration id or the user code of a pending request (XXXX-XXXX); AGENT an agent id
(agt_...), the agent's address, or name@tenant; ATTACHMENT an attachment id (att_...).

${COMMON_HELP}
`;
}

function commandHelp(cmds: Command[]): string {
  const parts = cmds.map((c) => {
    const flags = Object.values(c.flags).map((f) => {
      const [flag, ...text] = f.split(/\s{2,}/);
      return `  ${flag.padEnd(18)} ${text.join(' ')}`;
    });
    return `amp-relay admin ${c.usage}\n  ${c.summary}${flags.length ? `\n${flags.join('\n')}` : ''}`;
  });
  return `${parts.join('\n\n')}\n\n${COMMON_HELP}\n`;
}

interface Parsed {
  words: string[];
  flags: Record<string, string | true>;
  configArgs: string[];
  json: boolean;
  help: boolean;
}

const OWN_VALUE_FLAGS = new Set([
  ...COMMON_FLAGS,
  ...COMMANDS.flatMap((c) => Object.keys(c.flags).filter((f) => f !== 'yes')),
]);

/** Words, the admin's own flags, and server options (passed on to the configuration). */
function parse(args: string[]): Parsed {
  const p: Parsed = { words: [], flags: {}, configArgs: [], json: false, help: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '-h' || arg === '--help') p.help = true;
    else if (arg === '--json') p.json = true;
    else if (arg === '--yes') p.flags.yes = true;
    else if (!arg.startsWith('--')) p.words.push(arg);
    else {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      const key = flagKey(`--${name}`);
      if (OWN_VALUE_FLAGS.has(name)) {
        if (eq >= 0) p.flags[name] = arg.slice(eq + 1);
        else if (i + 1 < args.length) p.flags[name] = args[++i];
        else throw new CliError(`option '--${name}' needs a value`, EXIT.USAGE);
      } else if (key) {
        p.configArgs.push(arg);
        if (eq < 0 && optionType(key) !== 'bool') {
          if (i + 1 >= args.length) throw new CliError(`option '--${name}' needs a value`, EXIT.USAGE);
          p.configArgs.push(args[++i]);
        }
      } else throw new CliError(`unknown option '--${name}'`, EXIT.USAGE);
    }
  }
  return p;
}

/** The command the words name, and its ids; a group name alone (`agents`) is a help request. */
function resolve(p: Parsed): { cmd?: Command; group: Command[]; ids: string[] } {
  for (const n of [2, 1]) {
    const cmd = COMMANDS.find((c) => c.name === p.words.slice(0, n).join(' '));
    if (cmd) return { cmd, group: [cmd], ids: p.words.slice(n) };
  }
  const group = COMMANDS.filter((c) => c.name.split(' ')[0] === p.words[0]);
  return { group, ids: [] };
}

/** The issuer a server at `url` announces for the tenant, or null: only to explain a refusal. */
async function announcedIssuer(url: string, tenant: string): Promise<string | null> {
  const a = await send('GET', `${url}/${encodeURIComponent(tenant)}/.well-known/openid-configuration`);
  const issuer = (a.body as { issuer?: unknown } | null)?.issuer;
  return typeof issuer === 'string' ? issuer : null;
}

/** The claims of a JWT, unverified: only to explain a refusal. */
function claimsOf(token: string): Record<string, unknown> {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** What a given token's own claims say against what the server expects. */
async function tokenHint(url: string, tenant: string, token: string): Promise<string | null> {
  const c = claimsOf(token);
  if (Object.keys(c).length === 0) return '--token is not a JWT (header.claims.signature, base64url)';
  if (typeof c.exp === 'number' && c.exp * 1000 < Date.now())
    return `the token expired at ${new Date(c.exp * 1000).toISOString()}`;
  if (typeof c.company_url_id === 'string' && c.company_url_id !== tenant)
    return `the token is for tenant '${c.company_url_id}', not '${tenant}' (--tenant)`;
  const issuer = await announcedIssuer(url, tenant).catch(() => null);
  if (issuer && typeof c.iss === 'string' && c.iss !== issuer)
    return `the token's issuer is ${c.iss}, this server's is ${issuer}: mint it with the server's --port / --public-url`;
  const scopes = Array.isArray(c.scopes) ? c.scopes : String(c.scope ?? '').split(' ');
  const missing = SCOPES.filter((s) => !scopes.includes(s));
  return missing.length ? `the token may lack the scope(s) ${missing.join(', ')}` : null;
}

/** Why the token was refused, as far as the CLI can tell; else where the server says it. */
async function refusalHint(
  url: string,
  tenant: string,
  token: string,
  kid: string | undefined,
  dataDir: string,
  pin: string | null,
) {
  const debug = "the server logs why at debug level (AMP_LOG_LEVEL=debug, event 'admin_token_refused')";
  if (!kid) return (await tokenHint(url, tenant, token)) ?? debug;
  const jwks = `${url}/${encodeURIComponent(tenant)}/.well-known/jwks.json`;
  const a = await send('GET', jwks, { pin }).catch(() => null);
  const keys = (a?.body as { keys?: { kid?: string }[] } | null)?.keys;
  if (Array.isArray(keys) && !keys.some((k) => k.kid === kid))
    return `the server does not publish the signing key in ${dataDir} (kid ${kid}): is --data-dir / AMP_DATA_DIR this server's data dir?`;
  return debug;
}

/** The server's URL: --url (http or https only), else the configuration's. */
function serverUrl(p: Parsed, cfg: Config): string {
  const url = String(p.flags.url ?? defaultUrl(cfg)).replace(/\/+$/, '');
  let protocol = '';
  try {
    protocol = new URL(url).protocol;
  } catch {
    // not a URL: refused below
  }
  if (protocol !== 'http:' && protocol !== 'https:')
    throw new CliError(`--url must be an http(s) URL like http://127.0.0.1:23000 (got '${url}')`, EXIT.USAGE);
  return url;
}

/** A token given: --token, else --token-file, else AMP_ADMIN_TOKEN; '' when none. */
function givenToken(p: Parsed): string {
  if (typeof p.flags.token === 'string') return p.flags.token.trim();
  const file = p.flags['token-file'];
  if (typeof file === 'string') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (e) {
      throw new CliError(`cannot read --token-file ${file}: ${(e as Error).message}`, EXIT.USAGE);
    }
    if (!text) throw new CliError(`--token-file ${file} is empty`, EXIT.USAGE);
    return text;
  }
  return (process.env.AMP_ADMIN_TOKEN ?? '').trim();
}

async function session(p: Parsed, config: (args: string[]) => Config): Promise<AdminSession> {
  const cfg = config(p.configArgs);
  const tenant = String(p.flags.tenant ?? cfg.defaultTenant).toLowerCase();
  const url = serverUrl(p, cfg);
  let token = givenToken(p);
  let kid: string | undefined;
  let pin: string | null = null;
  if (!token) {
    pin = await mintTarget(cfg, url);
    const issuer = await issuerFor(cfg, url, tenant, pin);
    const email = String(p.flags.email ?? whoAmI());
    ({ token, kid } = await mintFromDataDir(cfg, { tenant, email, scopes: SCOPES, ttlSeconds: TOKEN_TTL_S, issuer }));
  }
  return {
    tenant,
    async call(method, path, json) {
      try {
        return await sendOk(method, `${url}${path}`, { token, json, pin });
      } catch (e) {
        if (e instanceof CliError && e.exitCode === EXIT.UNAUTHORIZED)
          throw new CliError(
            `${e.message}\nhint: ${await refusalHint(url, tenant, token, kid, cfg.dataDir, pin)}`,
            e.exitCode,
          );
        throw e;
      }
    },
  };
}

async function runAdmin(args: string[], config: (args: string[]) => Config): Promise<number> {
  if (args[0] === 'login') return adminLoginCommand(args.slice(1), config);
  const p = parse(args);
  if (p.words.length === 0) {
    process.stdout.write(mainHelp());
    return p.help ? EXIT.OK : EXIT.USAGE;
  }
  const { cmd, group, ids } = resolve(p);
  if (p.help || !cmd) {
    if (group.length === 0) throw new CliError(`unknown command '${p.words.join(' ')}'`, EXIT.USAGE);
    process.stdout.write(commandHelp(group));
    return p.help ? EXIT.OK : EXIT.USAGE;
  }
  if (ids.length !== cmd.ids)
    throw new CliError(
      cmd.ids === 1 ? `'${cmd.name}' needs one id: ${cmd.usage}` : `'${cmd.name}' takes no argument '${ids[0]}'`,
      EXIT.USAGE,
    );
  for (const f of Object.keys(p.flags))
    if (!COMMON_FLAGS.includes(f) && !(f in cmd.flags))
      throw new CliError(`'${cmd.name}' has no option --${f}: ${cmd.usage}`, EXIT.USAGE);
  cmd.check?.({ ids, flags: p.flags });
  const s = await session(p, config);
  const out = await cmd.run(s, { ids, flags: p.flags });
  process.stdout.write(p.json ? `${JSON.stringify(out.body, null, 2)}\n` : out.text);
  return EXIT.OK;
}

/** `amp-relay admin ...`; resolves with the exit code (errors are printed here). */
export async function adminCommand(args: string[], config: (args: string[]) => Config): Promise<number> {
  try {
    return await runAdmin(args, config);
  } catch (e) {
    const usage = e instanceof ConfigError || e instanceof CliUsageError;
    const code = e instanceof CliError ? e.exitCode : usage ? EXIT.USAGE : EXIT.FAILED;
    process.stderr.write(`amp-relay admin: ${e instanceof Error ? e.message : String(e)}\n`);
    if (code === EXIT.USAGE && !usage) process.stderr.write("Run 'amp-relay admin --help' for usage.\n");
    return code;
  }
}
