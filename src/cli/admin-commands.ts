// The `amp-relay admin` subcommands: which endpoint each calls and how its answer reads as a table.
// AID registrations and the audit trail live under /{tenant}/agent_registrations (agent-identity
// §4.3, §11.3); agents and queues under /api/v1/admin and §20's suspend/unsuspend.

import { CliError, EXIT } from './admin-http.js';
import { duration, fields, table } from './table.js';

/** What a command needs from the session: its tenant and authenticated requests. */
export interface AdminSession {
  tenant: string;
  /** A request to the server (path from the root); non-2xx answers throw CliError. */
  call(method: string, path: string, json?: unknown): Promise<unknown>;
}

export interface Args {
  /** Positional arguments after the command words (the id). */
  ids: string[];
  /** The command's own flags, by name without dashes. */
  flags: Record<string, string | true>;
}

export interface Command {
  /** e.g. `agents suspend` */
  name: string;
  usage: string;
  summary: string;
  /** Value flags (and `yes`, a switch) this command takes, with their help lines. */
  flags: Record<string, string>;
  /** Number of ids it takes (0 or 1). */
  ids: 0 | 1;
  /** Checks the command line before anything is sent (throws CliError(USAGE)). */
  check?(a: Args): void;
  run(s: AdminSession, a: Args): Promise<{ body: unknown; text: string }>;
}

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field for display, absent ones print as -
type Json = Record<string, any>;

const enc = encodeURIComponent;

/** `?a=1&b=2` from the flags given (renamed to the server's query names). */
function query(a: Args, names: Record<string, string>): string {
  const q = new URLSearchParams();
  for (const [flag, param] of Object.entries(names)) {
    const v = a.flags[flag];
    if (typeof v === 'string') q.set(param, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

function str(a: Args, flag: string): string | undefined {
  const v = a.flags[flag];
  return typeof v === 'string' ? v : undefined;
}

function num(a: Args, flag: string): number | undefined {
  const v = str(a, flag);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new CliError(`--${flag} must be a number (got '${v}')`, EXIT.USAGE);
  return n;
}

/** An agent id, or the id of the agent at this address (the suspend routes take ids only). */
async function agentId(s: AdminSession, idOrAddress: string): Promise<string> {
  if (!idOrAddress.includes('@')) return idOrAddress;
  return ((await s.call('GET', `/api/v1/admin/agents/${enc(idOrAddress)}`)) as Json).agent_id;
}

const regPath = (s: AdminSession, id?: string) =>
  `/${enc(s.tenant)}/agent_registrations${id === undefined ? '' : `/${enc(id)}`}`;

/** A user code as amp-register.sh shows it (XXXX-XXXX); registration ids are UUIDs. */
const USER_CODE_RE = /^[A-Za-z0-9]{4}-?[A-Za-z0-9]{4}$/;

/** A registration id, or the id of the pending request with this user code (AID resolve?code=). */
async function registrationId(s: AdminSession, idOrCode: string): Promise<string> {
  if (!USER_CODE_RE.test(idOrCode)) return idOrCode;
  return ((await s.call('GET', `${regPath(s)}/resolve?code=${enc(idOrCode)}`)) as Json).data.id;
}

/** Registration statuses (agent-identity §4.3), and the names the server also takes for them. */
const STATUSES = ['pending', 'active', 'rejected', 'suspended', 'deleted', 'approved', 'pending_approval', 'revoked'];

function registrationsTable(body: Json): string {
  const rows = (body.data ?? []) as Json[];
  const t = table(rows, [
    { header: 'ID', cell: (r) => r.id },
    { header: 'NAME', cell: (r) => r.attributes?.name },
    { header: 'ADDRESS', cell: (r) => r.attributes?.address },
    { header: 'STATUS', cell: (r) => r.attributes?.status },
    { header: 'METHOD', cell: (r) => r.attributes?.registration_method },
    { header: 'CREATED', cell: (r) => r.attributes?.created_at },
  ]);
  const m = (body.meta ?? {}) as Json;
  return `${t}page ${m.page ?? 1} of ${m.total_pages ?? 1}, ${m.total_count ?? rows.length} registration(s)\n`;
}

function registrationFields(body: Json): string {
  const r = (body.data ?? {}) as Json;
  const a = (r.attributes ?? {}) as Json;
  return fields([
    ['id', r.id],
    ['name', a.name],
    ['address', a.address],
    ['status', a.status],
    ['method', a.registration_method],
    ['fingerprint', a.fingerprint],
    ['role', a.role_name ?? a.role_id],
    ['amp agent', a.amp_agent_id],
    ['rejection reason', a.rejection_reason],
    ['suspension reason', a.suspension_reason],
    ['approved at', a.approved_at],
    ['created at', a.created_at],
    ['updated at', a.updated_at],
  ]);
}

const USAGE_TAIL = {
  approve: ' [--role-id N]',
  reject: ' [--reason TEXT]',
  suspend: ' [--reason TEXT]',
  reactivate: '',
};

function registrationAction(action: 'approve' | 'reject' | 'suspend' | 'reactivate', summary: string): Command {
  const flags: Record<string, string> =
    action === 'approve'
      ? { 'role-id': '--role-id N      role to grant (default: the default role)' }
      : action === 'reactivate'
        ? {}
        : { reason: '--reason TEXT    recorded in the registration and the audit trail' };
  return {
    name: `registrations ${action}`,
    usage: `registrations ${action} ID${USAGE_TAIL[action]}`,
    summary,
    flags,
    ids: 1,
    check: (a) => void num(a, 'role-id'),
    async run(s, a) {
      const json: Json = {};
      if (action === 'approve' && num(a, 'role-id') !== undefined) json.role_id = num(a, 'role-id');
      if (str(a, 'reason') !== undefined) json.reason = str(a, 'reason');
      const id = await registrationId(s, a.ids[0]);
      const body = (await s.call('POST', `${regPath(s, id)}/${action}`, json)) as Json;
      const r = (body.data ?? {}) as Json;
      return { body, text: `${r.id}: ${r.attributes?.address ?? '-'} is now ${r.attributes?.status ?? '?'}\n` };
    },
  };
}

const REGISTRATIONS: Command[] = [
  {
    name: 'registrations list',
    usage: 'registrations list [--status S] [--page N] [--records N]',
    summary: 'AID registrations of the tenant, newest first',
    flags: {
      status: '--status S       pending, active, rejected, suspended or deleted',
      page: '--page N         1-based page',
      records: '--records N      per page (default 25, at most 100)',
    },
    ids: 0,
    check(a) {
      const st = str(a, 'status');
      if (st !== undefined && !STATUSES.includes(st))
        throw new CliError(`--status must be one of ${STATUSES.slice(0, 5).join(', ')} (got '${st}')`, EXIT.USAGE);
      num(a, 'page');
      num(a, 'records');
    },
    async run(s, a) {
      const body = (await s.call(
        'GET',
        regPath(s) + query(a, { status: 'status', page: 'page', records: 'records' }),
      )) as Json;
      return { body, text: registrationsTable(body) };
    },
  },
  {
    name: 'registrations show',
    usage: 'registrations show ID',
    summary: 'one registration',
    flags: {},
    ids: 1,
    async run(s, a) {
      const body = (await s.call('GET', regPath(s, await registrationId(s, a.ids[0])))) as Json;
      return { body, text: registrationFields(body) };
    },
  },
  registrationAction('approve', 'approve a pending registration (the agent may then get tokens and route)'),
  registrationAction('reject', 'reject a pending registration'),
  registrationAction('suspend', 'suspend an active registration (its tokens stop working)'),
  registrationAction('reactivate', 'reactivate a suspended registration'),
];

function agentsTable(body: Json): string {
  const rows = (body.agents ?? []) as Json[];
  const t = table(rows, [
    { header: 'AGENT_ID', cell: (r) => r.agent_id },
    { header: 'ADDRESS', cell: (r) => r.address },
    { header: 'STATUS', cell: (r) => r.status },
    { header: 'ONLINE', cell: (r) => r.online },
    { header: 'QUEUE', cell: (r) => r.queue_depth },
    { header: 'OLDEST', cell: (r) => r.oldest_queued_at },
    { header: 'LAST_SEEN', cell: (r) => r.last_seen_at },
  ]);
  const next = body.cursor ? `; next page: --cursor ${body.cursor}` : '';
  return `${t}${rows.length} of ${body.total ?? rows.length} agent(s)${next}\n`;
}

function agentFields(a: Json): string {
  const s = (a.suspension ?? {}) as Json;
  return fields([
    ['agent id', a.agent_id],
    ['address', a.address],
    ['alias', a.alias],
    ['status', a.status],
    ['suspended', a.suspended],
    [
      'suspension',
      a.suspension ? `${s.reason} by ${s.by} since ${s.suspended_at}, until ${s.expires_at ?? 'lifted'}` : null,
    ],
    ['online', a.online],
    ['queue depth', a.queue_depth],
    ['oldest queued', a.oldest_queued_at],
    ['registered at', a.registered_at],
    ['last seen', a.last_seen_at],
  ]);
}

const AGENTS: Command[] = [
  {
    name: 'agents list',
    usage: 'agents list [--search TEXT] [--limit N] [--cursor C]',
    summary: 'AMP agents of the tenant: status, suspension, queue depth, last seen',
    flags: {
      search: '--search TEXT    part of the name, address or alias',
      limit: '--limit N        per page (default 50, at most 200)',
      cursor: '--cursor C       the next page, as the previous one printed',
    },
    ids: 0,
    async run(s, a) {
      const q = query(a, { search: 'search', limit: 'limit', cursor: 'cursor' });
      const body = (await s.call('GET', `/api/v1/admin/agents${q}`)) as Json;
      return { body, text: agentsTable(body) };
    },
  },
  {
    name: 'agents show',
    usage: 'agents show AGENT',
    summary: 'one agent',
    flags: {},
    ids: 1,
    async run(s, a) {
      const body = (await s.call('GET', `/api/v1/admin/agents/${enc(a.ids[0])}`)) as Json;
      return { body, text: agentFields(body) };
    },
  },
  {
    name: 'agents suspend',
    usage: 'agents suspend AGENT [--reason TEXT] [--hours H]',
    summary: 'stop an agent: no routing, listing, acks or sockets; its queue is kept',
    flags: {
      reason: '--reason TEXT    why (default admin_action)',
      hours: '--hours H        lift it by itself after H hours (default: until unsuspended)',
    },
    ids: 1,
    check: (a) => void num(a, 'hours'),
    async run(s, a) {
      const json: Json = {};
      if (str(a, 'reason') !== undefined) json.reason = str(a, 'reason');
      if (num(a, 'hours') !== undefined) json.duration_hours = num(a, 'hours');
      const id = await agentId(s, a.ids[0]);
      const body = (await s.call('POST', `/api/v1/agents/${enc(id)}/suspend`, json)) as Json;
      return { body, text: `${body.agent_id}: suspended until ${body.expires_at ?? 'unsuspended'}\n` };
    },
  },
  {
    name: 'agents unsuspend',
    usage: 'agents unsuspend AGENT',
    summary: "lift an operator's suspension",
    flags: {},
    ids: 1,
    async run(s, a) {
      const id = await agentId(s, a.ids[0]);
      const body = (await s.call('POST', `/api/v1/agents/${enc(id)}/unsuspend`, {})) as Json;
      return { body, text: `${body.agent_id}: not suspended\n` };
    },
  },
  {
    name: 'agents deregister',
    usage: 'agents deregister AGENT --yes',
    summary: 'delete an agent: API keys and key revoked, sockets closed, queue deleted (cannot be undone)',
    flags: { yes: '--yes            required: confirms the deletion' },
    ids: 1,
    check(a) {
      if (a.flags.yes !== true)
        throw new CliError('deregister deletes the agent and its queued messages; add --yes to confirm', EXIT.USAGE);
    },
    async run(s, a) {
      const body = (await s.call('DELETE', `/api/v1/admin/agents/${enc(a.ids[0])}`)) as Json;
      return { body, text: `${body.agent_id}: ${body.address} deregistered at ${body.deregistered_at}\n` };
    },
  },
];

function queuesText(body: Json): string {
  const rows = (body.agents ?? []) as Json[];
  const head =
    `${body.total_messages} message(s) queued for ${body.agents_with_messages} agent(s) of ${body.tenant}` +
    (body.oldest_queued_at
      ? `; oldest queued ${duration(body.oldest_age_seconds)} ago (${body.oldest_queued_at})`
      : '') +
    (body.complete === false ? ` (first ${body.scanned_agents} agents only)` : '');
  if (rows.length === 0) return `${head}\n`;
  const t = table(rows, [
    { header: 'AGENT_ID', cell: (r) => r.agent_id },
    { header: 'ADDRESS', cell: (r) => r.address },
    { header: 'DEPTH', cell: (r) => r.depth },
    { header: 'OLDEST_AGE', cell: (r) => duration(r.oldest_age_seconds) },
    { header: 'OLDEST_QUEUED_AT', cell: (r) => r.oldest_queued_at },
  ]);
  return `${head}\n\n${t}`;
}

const QUEUES: Command = {
  name: 'queues',
  usage: 'queues [--limit N]',
  summary: 'queued (unacknowledged) messages: total, oldest, deepest queues first',
  flags: { limit: '--limit N        queues listed (default 20, at most 200)' },
  ids: 0,
  async run(s, a) {
    const body = (await s.call('GET', `/api/v1/admin/queues${query(a, { limit: 'limit' })}`)) as Json;
    return { body, text: queuesText(body) };
  },
};

function auditText(body: Json): string {
  const rows = (body.data ?? []) as Json[];
  const t = table(rows, [
    { header: 'TIME', cell: (r) => r.attributes?.created_at },
    { header: 'EVENT', cell: (r) => r.attributes?.event_type },
    {
      header: 'ACTOR',
      cell: (r) => r.attributes?.actor_email ?? r.attributes?.actor_address ?? r.attributes?.actor_id,
    },
    { header: 'REGISTRATION', cell: (r) => r.attributes?.agent_registration_id },
    {
      header: 'STATUS',
      cell: (r) =>
        r.attributes?.previous_status === r.attributes?.new_status
          ? r.attributes?.new_status
          : `${r.attributes?.previous_status ?? '-'} -> ${r.attributes?.new_status}`,
    },
    { header: 'REASON', cell: (r) => r.attributes?.reason },
  ]);
  const m = (body.meta ?? {}) as Json;
  return `${t}page ${m.page ?? 1} of ${m.total_pages ?? 1}, ${m.total_count ?? rows.length} event(s)\n`;
}

const AUDIT: Command = {
  name: 'audit',
  usage: 'audit [--type T[,T...]] [--since TIME] [--before TIME] [--registration ID] [--page N] [--records N]',
  summary: 'the AID audit trail of the tenant, newest first',
  flags: {
    type: '--type T         event type(s), e.g. registration_approved,token_issued',
    since: '--since TIME     from this time on (ISO 8601 with zone, or unix seconds)',
    before: '--before TIME    before this time',
    registration: '--registration ID  one registration only (its id, or the user code of a pending one)',
    page: '--page N         1-based page',
    records: '--records N      per page (default 25, at most 100)',
  },
  ids: 0,
  async run(s, a) {
    const reg = str(a, 'registration');
    if (reg !== undefined) a = { ...a, flags: { ...a.flags, registration: await registrationId(s, reg) } };
    const q = query(a, {
      type: 'event_type',
      since: 'since',
      before: 'before',
      registration: 'agent_registration_id',
      page: 'page',
      records: 'records',
    });
    const body = (await s.call('GET', `${regPath(s)}/activity_logs${q}`)) as Json;
    return { body, text: auditText(body) };
  },
};

export const COMMANDS: Command[] = [...REGISTRATIONS, ...AGENTS, QUEUES, AUDIT];
