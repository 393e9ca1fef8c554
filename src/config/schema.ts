// One config schema: each option's default, AMP_* environment name, --flag, validation and doc.
// Precedence: defaults < environment < flags (< explicit overrides from code, e.g. tests).
// Every problem is reported at once; the result is frozen.

import { REGISTERED_LABEL_RE, RESERVED_TENANTS } from '../../proto/index.js';
import { hostProblem } from './host.js';
import { clamdProblems } from './clamd.js';
import { clusterProblems, redactSeed } from './cluster.js';
import { tlsProblems } from './tls.js';
import { trustedProxyProblems } from './trusted-proxies.js';
import { parseAllowList } from '../outbound/allow-list.js';
import { DOMAIN_RE, readPinsFile } from '../relay/federation/pins.js';
import { meshConfigProblems } from '../relay/mesh/config.js';

export type OptionType = 'string' | 'int' | 'bool' | 'enum' | 'list';

export interface OptionSpec {
  env: string;
  flag: string;
  type: OptionType;
  default: unknown;
  doc: string;
  values?: readonly string[];
  /** A credential: print-env leaves its value out. */
  secret?: boolean;
  /** A value that may carry a credential: print-env prints what this leaves of it. */
  redact?: (value: string) => string;
  min?: number;
  max?: number;
}

export const OPTIONS = {
  host: {
    env: 'AMP_HOST',
    flag: '--host',
    type: 'string',
    default: '0.0.0.0',
    doc: 'Interface to listen on (127.0.0.1 for this machine only)',
  },
  port: {
    env: 'AMP_PORT',
    flag: '--port',
    type: 'int',
    default: 23000,
    min: 0,
    max: 65535,
    doc: 'TCP port for HTTP and WebSocket (0 = any free port)',
  },
  dataDir: {
    env: 'AMP_DATA_DIR',
    flag: '--data-dir',
    type: 'string',
    default: './data',
    doc: 'Directory of the LMDB store and the provider key',
  },
  publicUrl: {
    env: 'AMP_PUBLIC_URL',
    flag: '--public-url',
    type: 'string',
    default: '',
    doc: 'Base URL that discovery documents and registration answers advertise (default: from the request Host, and X-Forwarded-Proto/-Host from AMP_TRUSTED_PROXIES)',
  },
  trustedProxies: {
    env: 'AMP_TRUSTED_PROXIES',
    flag: '--trusted-proxies',
    type: 'list',
    default: [],
    doc: 'Reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-Proto and X-Forwarded-Host are believed when AMP_PUBLIC_URL is not set; default: none, not even loopback',
  },
  webhookAllowHosts: {
    env: 'AMP_WEBHOOK_ALLOW_HOSTS',
    flag: '--webhook-allow-hosts',
    type: 'list',
    default: [],
    doc: 'Webhook targets (hostnames, IPs or CIDRs, comma-separated) exempt from the SSRF rules and reachable over http, e.g. localhost,127.0.0.1/32 in development; default: none',
  },
  meshConfig: {
    env: 'AMP_MESH_CONFIG',
    flag: '--mesh-config',
    type: 'string',
    default: '',
    doc: 'Path of the mesh JSON file (§19.2: {"mesh": {"self_id", "hosts": [{"id", "url", "secret" | "public_key"}]}}); default: no mesh',
  },
  federationPins: {
    env: 'AMP_FEDERATION_PINS',
    flag: '--federation-pins',
    type: 'string',
    default: '',
    doc: 'Path of a JSON file of pinned providers {"<domain>": {"endpoint", "public_key"}} (§19.1); federation is on when this is set',
  },
  federationMode: {
    env: 'AMP_FEDERATION_MODE',
    flag: '--federation-mode',
    type: 'enum',
    values: ['open', 'allowlist', 'closed'],
    default: 'allowlist',
    doc: 'Which providers may deliver to us: open (any that verifies), allowlist (pinned ones plus AMP_FEDERATION_ALLOW) or closed',
  },
  federationAllow: {
    env: 'AMP_FEDERATION_ALLOW',
    flag: '--federation-allow',
    type: 'list',
    default: [],
    doc: 'In allowlist mode, provider domains (comma-separated) allowed besides the pinned ones',
  },
  federationAllowHttp: {
    env: 'AMP_FEDERATION_ALLOW_HTTP',
    flag: '--federation-allow-http',
    type: 'list',
    default: [],
    doc: 'Federation peers (hostnames, IPs or CIDRs) reachable over http and on private or loopback addresses; development and tests only; default: none',
  },
  tlsCert: {
    env: 'AMP_TLS_CERT',
    flag: '--tls-cert',
    type: 'string',
    default: '',
    doc: 'PEM certificate file (chain after it) for HTTPS and WSS on --port; needs AMP_TLS_KEY. Default: plain HTTP',
  },
  tlsKey: {
    env: 'AMP_TLS_KEY',
    flag: '--tls-key',
    type: 'string',
    default: '',
    doc: 'PEM private key file of AMP_TLS_CERT',
  },
  tlsKeyPassphrase: {
    env: 'AMP_TLS_KEY_PASSPHRASE',
    flag: '--tls-key-passphrase',
    type: 'string',
    default: '',
    doc: 'Passphrase of an encrypted AMP_TLS_KEY',
  },
  providerDomain: {
    env: 'AMP_PROVIDER_DOMAIN',
    flag: '--provider-domain',
    type: 'string',
    default: 'aimaestro.local',
    doc: 'Provider domain of the addresses this server owns',
  },
  providerAliases: {
    env: 'AMP_PROVIDER_ALIASES',
    flag: '--provider-aliases',
    type: 'list',
    default: [],
    doc: 'Other domains treated as this provider (comma-separated)',
  },
  defaultTenant: {
    env: 'AMP_DEFAULT_TENANT',
    flag: '--default-tenant',
    type: 'string',
    default: 'default',
    doc: 'Tenant of registrations that name none',
  },
  registrationMode: {
    env: 'AMP_REGISTRATION_MODE',
    flag: '--registration-mode',
    type: 'enum',
    values: ['open', 'allowlist', 'key', 'approval'],
    default: 'open',
    doc: 'open: anyone; allowlist: only AMP_REGISTRATION_TENANTS; key: a tenant registration key (X-Registration-Key) is required; approval: agents may not route until an admin approves their Agent Identity registration',
  },
  registrationTenants: {
    env: 'AMP_REGISTRATION_TENANTS',
    flag: '--registration-tenants',
    type: 'list',
    default: [],
    doc: 'If set, only these tenants may register, in any mode (comma-separated)',
  },
  registrationKeys: {
    env: 'AMP_REGISTRATION_KEYS',
    flag: '--registration-keys',
    type: 'list',
    default: [],
    doc: "Registration keys for mode 'key': tenant:key pairs, '*:key' for every tenant (comma-separated)",
  },
  deregistrationHoldDays: {
    env: 'AMP_DEREGISTRATION_HOLD_DAYS',
    flag: '--deregistration-hold-days',
    type: 'int',
    default: 30,
    min: 0,
    max: 3650,
    doc: 'Days a deregistered name stays taken (0 = free at once)',
  },
  idempotencyTtl: {
    env: 'AMP_IDEMPOTENCY_TTL',
    flag: '--idempotency-ttl',
    type: 'int',
    default: 86_400,
    min: 60,
    max: 604_800,
    doc: 'Seconds an idempotency key (or a signed message) is remembered for replays',
  },
  rateLimits: {
    env: 'AMP_RATE_LIMITS',
    flag: '--rate-limits',
    type: 'enum',
    values: ['on', 'off'],
    default: 'on',
    doc: 'off disables every rate limit (benchmarks only)',
  },
  rateLimitProfile: {
    env: 'AMP_RATE_LIMIT_PROFILE',
    flag: '--rate-limit-profile',
    type: 'enum',
    values: ['local', 'public'],
    default: 'local',
    doc: 'local: sized for agent swarms on one host; public: an Internet-facing provider',
  },
  rateLimitOverrides: {
    env: 'AMP_RATE_LIMIT_OVERRIDES',
    flag: '--rate-limit-overrides',
    type: 'list',
    default: [],
    doc: 'Per-bucket limits, e.g. route=100/min,register=5/min (units s, min, h, d; buckets: register, route, route_hour, receive, pending, api, ws_connect, ws_frames, aid_token, aid_token_key, aid_request, aid_request_key, aid_lookup_failures, aid_introspect, federation, federation_recipient, federation_total, federation_failures, console_login)',
  },
  signatures: {
    env: 'AMP_SIGNATURES',
    flag: '--signatures',
    type: 'enum',
    values: ['optional', 'required'],
    default: 'optional',
    doc: 'optional: unsigned messages accepted as untrusted; required: refused (422)',
  },
  ed25519: {
    env: 'AMP_ED25519',
    flag: '--ed25519',
    type: 'enum',
    values: ['auto', 'sodium', 'node'],
    default: 'auto',
    doc: 'Ed25519 verifier: sodium (libsodium via sodium-native, the fastest here), node (node:crypto on the libuv pool), auto (sodium where its binary loads, else node)',
  },
  crossTenant: {
    env: 'AMP_CROSS_TENANT',
    flag: '--cross-tenant',
    type: 'enum',
    values: ['allow', 'deny'],
    default: 'allow',
    doc: 'Whether agents may message agents of other tenants',
  },
  maxQueue: {
    env: 'AMP_MAX_QUEUE',
    flag: '--max-queue',
    type: 'int',
    default: 1000,
    min: 1,
    max: 10_000_000,
    doc: 'Unacked messages per agent before new ones are refused (429 queue_full)',
  },
  relayTtl: {
    env: 'AMP_RELAY_TTL',
    flag: '--relay-ttl',
    type: 'int',
    default: 604_800,
    min: 1,
    max: 31_536_000,
    doc: 'Seconds a queued message is kept before it expires',
  },
  corsOrigin: {
    env: 'AMP_CORS_ORIGIN',
    flag: '--cors-origin',
    type: 'string',
    default: '*',
    doc: 'Access-Control-Allow-Origin value',
  },
  contact: {
    env: 'AMP_CONTACT',
    flag: '--contact',
    type: 'string',
    default: '',
    doc: 'Contact address shown in discovery (omitted when empty)',
  },
  wsAuthTimeout: {
    env: 'AMP_WS_AUTH_TIMEOUT',
    flag: '--ws-auth-timeout',
    type: 'int',
    default: 10,
    min: 1,
    max: 300,
    doc: 'Seconds a WebSocket may wait before its auth frame (then close 4001)',
  },
  wsIdleTimeout: {
    env: 'AMP_WS_IDLE_TIMEOUT',
    flag: '--ws-idle-timeout',
    type: 'int',
    default: 300,
    min: 2,
    max: 86_400,
    doc: 'Seconds without inbound traffic before a WebSocket is closed (4502)',
  },
  wsSoftBuffer: {
    env: 'AMP_WS_SOFT_BUFFER',
    flag: '--ws-soft-buffer',
    type: 'int',
    default: 1_048_576,
    min: 1024,
    max: 1_073_741_824,
    doc: 'Unsent bytes on a socket above which message pushes pause (they stay queued)',
  },
  wsHardBuffer: {
    env: 'AMP_WS_HARD_BUFFER',
    flag: '--ws-hard-buffer',
    type: 'int',
    default: 16_777_216,
    min: 2048,
    max: 4_294_967_295,
    doc: 'Unsent bytes on a socket above which it is closed as a slow consumer (4501)',
  },
  wsSlowConsumerSeconds: {
    env: 'AMP_WS_SLOW_CONSUMER_SECONDS',
    flag: '--ws-slow-consumer-seconds',
    type: 'int',
    default: 30,
    min: 1,
    max: 3600,
    doc: 'Seconds a socket may stay above the soft buffer before it is closed (4501)',
  },
  wsMaxSessions: {
    env: 'AMP_WS_MAX_SESSIONS',
    flag: '--ws-max-sessions',
    type: 'int',
    default: 8,
    min: 1,
    max: 1024,
    doc: 'WebSocket sessions per agent; a new one over the limit closes the oldest (4009)',
  },
  aidJwtAlg: {
    env: 'AID_JWT_ALG',
    flag: '--aid-jwt-alg',
    type: 'enum',
    values: ['RS256', 'EdDSA'],
    default: 'RS256',
    doc: 'Algorithm of AID tokens: RS256 (RSA 2048) or EdDSA (Ed25519)',
  },
  aidIssuerAliases: {
    env: 'AID_ISSUER_ALIASES',
    flag: '--aid-issuer-aliases',
    type: 'list',
    default: [],
    doc: 'Other base URLs agents reach this server by (e.g. http://127.0.0.1:23000); AID proofs may name <alias>/<tenant> as the issuer. Tokens are always issued by AMP_PUBLIC_URL/<tenant>',
  },
  aidKeyRotationDays: {
    env: 'AID_KEY_ROTATION_DAYS',
    flag: '--aid-key-rotation-days',
    type: 'int',
    default: 90,
    min: 0,
    max: 3650,
    doc: 'Days a token-signing key signs before a successor is published (it signs 10 min later; the old key stays in the JWKS 30 days more). 0 = rotate only with amp-relay rotate-signing-key',
  },
  logLevel: {
    env: 'AMP_LOG_LEVEL',
    flag: '--log-level',
    type: 'enum',
    values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    default: 'info',
    doc: 'Log level: info logs one line per HTTP request and WebSocket session, debug adds routed/pushed/acked/expired lines per message',
  },
  logFormat: {
    env: 'AMP_LOG_FORMAT',
    flag: '--log-format',
    type: 'enum',
    values: ['json', 'pretty'],
    default: 'json',
    doc: 'Log format on stdout: json (one JSON object a line, for collectors) or pretty (for humans)',
  },
  metricsToken: {
    env: 'AMP_METRICS_TOKEN',
    flag: '--metrics-token',
    type: 'string',
    default: '',
    doc: 'When set, GET /metrics needs Authorization: Bearer <this token> (401 otherwise); default: /metrics is public',
  },
  attachments: {
    env: 'AMP_ATTACHMENTS',
    flag: '--attachments',
    type: 'bool',
    default: true,
    doc: 'Attachments (spec §22): files up to 25 MiB uploaded, scanned and kept under <data dir>/attachments; false: payload.attachments is refused (422)',
  },
  clamdSocket: {
    env: 'AMP_CLAMD_SOCKET',
    flag: '--clamd-socket',
    type: 'string',
    default: '',
    doc: 'Unix socket of a clamd (e.g. /run/clamav/clamd.ctl): attachments are scanned by it as well (av_scanning: true); while it is unreachable they stay pending',
  },
  clamdHost: {
    env: 'AMP_CLAMD_HOST',
    flag: '--clamd-host',
    type: 'string',
    default: '',
    doc: 'clamd over TCP as host:port (e.g. 127.0.0.1:3310), instead of AMP_CLAMD_SOCKET',
  },
  store: {
    env: 'AMP_STORE',
    flag: '--store',
    type: 'enum',
    values: ['lmdb', 'nats'],
    default: 'lmdb',
    doc: 'Where the shared state lives: lmdb (one node, embedded) or nats (a cluster of relay nodes on NATS JetStream; needs AMP_NATS_URL)',
  },
  natsUrl: {
    env: 'AMP_NATS_URL',
    flag: '--nats-url',
    type: 'list',
    default: [],
    doc: 'NATS seed URLs, comma-separated (nats://host:port); needed when AMP_STORE=nats',
    redact: redactSeed,
  },
  natsCreds: {
    env: 'AMP_NATS_CREDS',
    flag: '--nats-creds',
    type: 'string',
    default: '',
    doc: 'Path of a NATS .creds file (JWT and nkey seed) the relay authenticates with; default: none',
  },
  natsToken: {
    env: 'AMP_NATS_TOKEN',
    flag: '--nats-token',
    type: 'string',
    default: '',
    secret: true,
    doc: 'NATS authentication token; default: none (a secret: print-env does not print it)',
  },
  nodeId: {
    env: 'AMP_NODE_ID',
    flag: '--node-id',
    type: 'string',
    default: '',
    doc: "This relay node's name in the cluster (logs, NATS client name); default: <hostname>-<pid>",
  },
  natsReplicas: {
    env: 'AMP_NATS_REPLICAS',
    flag: '--nats-replicas',
    type: 'int',
    default: 3,
    min: 1,
    max: 5,
    doc: 'Replicas of every JetStream stream and bucket the relay creates (3 for a 3-server NATS cluster, 1 for a single server)',
  },
  natsPrefix: {
    env: 'AMP_NATS_PREFIX',
    flag: '--nats-prefix',
    type: 'string',
    default: 'AMP',
    doc: 'Prefix of the stream and bucket names (A-Z, 0-9, _), so several deployments can share one NATS',
  },
  natsPresenceTtl: {
    env: 'AMP_NATS_PRESENCE_TTL',
    flag: '--nats-presence-ttl',
    type: 'int',
    default: 30,
    min: 2,
    max: 600,
    doc: "Seconds a node's presence entries (which agents have a socket on it) live without a heartbeat (every third of this): a node that died shows its agents offline elsewhere after at most this; the same on every node",
  },
} as const satisfies Record<string, OptionSpec>;

type Opts = typeof OPTIONS;
type ValueOf<S extends OptionSpec> = S['type'] extends 'int'
  ? number
  : S['type'] extends 'bool'
    ? boolean
    : S['type'] extends 'list'
      ? string[]
      : S extends { values: readonly (infer V)[] }
        ? V
        : string;

export type Config = { readonly [K in keyof Opts]: ValueOf<Opts[K]> };
export type ConfigInput = Partial<{ -readonly [K in keyof Config]: Config[K] }>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super('Invalid configuration:\n  ' + problems.join('\n  '));
    this.name = 'ConfigError';
  }
}

function parseValue(key: string, spec: OptionSpec, raw: unknown, source: string, problems: string[]): unknown {
  const where = `${source}: ${key}`;
  switch (spec.type) {
    case 'int': {
      const n = typeof raw === 'number' ? raw : /^-?\d+$/.test(String(raw).trim()) ? Number(String(raw).trim()) : NaN;
      if (!Number.isSafeInteger(n)) return void problems.push(`${where} must be a whole number (got '${raw}')`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        return void problems.push(`${where} must be between ${spec.min} and ${spec.max} (got ${n})`);
      }
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      const s = String(raw).trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(s)) return true;
      if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
      return void problems.push(`${where} must be true or false (got '${raw}')`);
    }
    case 'enum': {
      const s = String(raw).trim().toLowerCase();
      const match = spec.values!.find((v) => v.toLowerCase() === s);
      if (match === undefined)
        return void problems.push(`${where} must be one of ${spec.values!.join(', ')} (got '${raw}')`);
      return match;
    }
    case 'list':
      if (Array.isArray(raw)) return raw.map(String);
      return String(raw)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    default:
      return String(raw);
  }
}

export interface ConfigSources {
  env?: Record<string, string | undefined>;
  /** Flag values by option key, as parsed from the command line. */
  flags?: Record<string, string | boolean>;
  overrides?: ConfigInput;
}

export function loadConfig(src: ConfigSources = {}): Config {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  /** How problems name each setting: as the user gave it (--flag, VARIABLE, code option), or both forms. */
  const given: Record<string, string> = {};
  for (const [key, spec] of Object.entries(OPTIONS) as [string, OptionSpec][]) {
    let value = spec.default;
    given[key] = `${spec.flag} / ${spec.env}`;
    const flagRaw = src.flags?.[key];
    const envRaw = src.env?.[spec.env];
    // Flags win; a variable a flag overrides is not used, so it is not checked either.
    if (flagRaw === undefined && envRaw !== undefined && envRaw !== '') {
      given[key] = spec.env;
      value = parseValue(key, spec, envRaw, spec.env, problems) ?? value;
    }
    if (flagRaw !== undefined) {
      given[key] = spec.flag;
      value = parseValue(key, spec, flagRaw, spec.flag, problems) ?? value;
    }
    const o = (src.overrides as Record<string, unknown> | undefined)?.[key];
    if (o !== undefined) {
      given[key] = key;
      value = parseValue(key, spec, o, 'option', problems) ?? value;
    }
    out[key] = value;
  }
  crossCheck(out as Config, (key) => given[key], problems);
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(out) as Config;
}

/** `--registration-mode key` or `AMP_REGISTRATION_MODE=key`, as the user wrote it. */
function setting(name: string, value: string): string {
  return name.startsWith('--') ? `${name} ${value}` : `${name}=${value}`;
}

function crossCheck(c: Config, name: (key: keyof Config) => string, problems: string[]): void {
  const host = hostProblem(c.host);
  if (host) problems.push(`${name('host')} ${host}`);
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(c.providerDomain))
    problems.push(`${name('providerDomain')} must be a domain of two or more labels (got '${c.providerDomain}')`);
  if (!REGISTERED_LABEL_RE.test(c.defaultTenant) || RESERVED_TENANTS.has(c.defaultTenant)) {
    problems.push(`${name('defaultTenant')} must be a lowercase label that is not reserved (got '${c.defaultTenant}')`);
  }
  const mode = setting(name('registrationMode'), c.registrationMode);
  if (c.registrationMode === 'allowlist' && c.registrationTenants.length === 0)
    problems.push(`${mode} needs ${name('registrationTenants')}`);
  if (c.registrationMode === 'key' && c.registrationKeys.length === 0)
    problems.push(`${mode} needs ${name('registrationKeys')} (tenant:key pairs)`);
  for (const k of c.registrationKeys)
    if (!/^[^:]+:.{16,}$/.test(k))
      problems.push(
        `${name('registrationKeys')} entries are tenant:key with a key of at least 16 characters ` +
          `(got '${k.split(':')[0]}:…')`,
      );
  for (const o of c.rateLimitOverrides)
    if (!/^[a-z_]+=\d+\/(s|min|h|d)$/.test(o))
      problems.push(`${name('rateLimitOverrides')} entries look like route=100/min (got '${o}')`);
  for (const a of c.aidIssuerAliases)
    if (!isBaseUrl(a))
      problems.push(`${name('aidIssuerAliases')} entries are http(s) base URLs without query (got '${a}')`);
  problems.push(...trustedProxyProblems(c.trustedProxies, name('trustedProxies')));
  problems.push(...parseAllowList(c.webhookAllowHosts, name('webhookAllowHosts')).problems);
  problems.push(...federationProblems(c, name));
  problems.push(...meshConfigProblems(c.meshConfig, name('meshConfig')));
  problems.push(...tlsProblems(c, name));
  problems.push(...clamdProblems(c, name));
  problems.push(...clusterProblems(c, name));
  if (c.wsHardBuffer <= c.wsSoftBuffer)
    problems.push(`${name('wsHardBuffer')} must be larger than ${name('wsSoftBuffer')}`);
  if (c.publicUrl && !isHttpUrl(c.publicUrl))
    problems.push(`${name('publicUrl')} must be an http(s) URL (got '${c.publicUrl}')`);
}

/** §19.1: AMP_FEDERATION_ALLOW_HTTP, the pins file (read and checked now), AMP_FEDERATION_ALLOW. */
function federationProblems(c: Config, name: (key: keyof Config) => string): string[] {
  const allowHttp = parseAllowList(c.federationAllowHttp, name('federationAllowHttp'));
  const problems = [...allowHttp.problems];
  if (c.federationPins)
    problems.push(...readPinsFile(c.federationPins, name('federationPins'), allowHttp.allow).problems);
  for (const d of c.federationAllow)
    if (!DOMAIN_RE.test(d.toLowerCase()))
      problems.push(`${name('federationAllow')} entries are provider domains such as partner.example (got '${d}')`);
  return problems;
}

function isHttpUrl(s: string): URL | undefined {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u : undefined;
  } catch {
    return undefined;
  }
}

function isBaseUrl(s: string): boolean {
  const u = isHttpUrl(s);
  return u !== undefined && u.search === '' && u.hash === '';
}

/** Option table for `--help`. */
export function describeFlags(): string[] {
  return (Object.values(OPTIONS) as OptionSpec[]).map((spec) => {
    const def = Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default);
    const arg = spec.type === 'bool' ? '' : ' <value>';
    return `  ${(spec.flag + arg).padEnd(30)} ${spec.doc}\n  ${''.padEnd(30)} env ${spec.env}, default '${def}'`;
  });
}

/** Map `--data-dir` style flags back to option keys. */
export function flagKey(flag: string): keyof Config | undefined {
  for (const [key, spec] of Object.entries(OPTIONS) as [keyof Config, OptionSpec][]) if (spec.flag === flag) return key;
  return undefined;
}

export function optionType(key: keyof Config): OptionType {
  return (OPTIONS[key] as OptionSpec).type;
}
