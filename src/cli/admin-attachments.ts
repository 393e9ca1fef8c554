// `amp-relay admin attachments ...`: the files a scan found suspicious wait for a human (spec §22
// "Human approval"). list reads GET /api/v1/admin/attachments?approval=..., approve and reject post
// to /api/v1/admin/attachments/{id}/approve|reject; every decision is audited by the server, and
// audit reads that trail (GET /api/v1/admin/attachments/audit).

import type { Args, Command } from './admin-commands.js';
import { CliError, EXIT } from './admin-http.js';
import { fields, table } from './table.js';

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field for display, absent ones print as -
type Json = Record<string, any>;

const APPROVALS = ['pending', 'approved', 'rejected'];
/** An attachment id as the server makes them (att_<unix s>_<hex>); checked before anything is sent. */
const ATTACHMENT_ID_RE = /^att[_-][0-9]+[_-][a-zA-Z0-9]+$/;
const PATH = '/api/v1/admin/attachments';

function flag(a: Args, name: string): string | undefined {
  const v = a.flags[name];
  return typeof v === 'string' ? v : undefined;
}

function checkId(a: Args): void {
  if (!ATTACHMENT_ID_RE.test(a.ids[0] ?? ''))
    throw new CliError(`'${a.ids[0]}' is not an attachment id (att_<digits>_<letters/digits>)`, EXIT.USAGE);
}

/** Bytes as `512 B`, `1.5 KiB`, `25.0 MiB`. */
function size(n: unknown): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '-';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function approvalText(ap: Json | undefined): string | null {
  if (!ap?.status) return null;
  return [ap.status, ap.by ? `by ${ap.by}` : '', ap.at ? `at ${ap.at}` : ''].filter(Boolean).join(' ');
}

function attachmentsTable(body: Json): string {
  const rows = (body.attachments ?? []) as Json[];
  const t = table(rows, [
    { header: 'ATTACHMENT_ID', cell: (r) => r.attachment_id ?? r.id },
    { header: 'OWNER', cell: (r) => r.owner },
    { header: 'FILENAME', cell: (r) => r.filename },
    { header: 'TYPE', cell: (r) => r.content_type },
    { header: 'SIZE', cell: (r) => size(r.size) },
    { header: 'SCAN', cell: (r) => r.scan_status },
    { header: 'APPROVAL', cell: (r) => r.approval?.status },
    { header: 'UPLOADED', cell: (r) => r.uploaded_at },
  ]);
  return `${t}${rows.length} attachment(s)\n`;
}

function attachmentFields(b: Json): string {
  return fields([
    ['attachment id', b.attachment_id ?? b.id],
    ['owner', b.owner],
    ['filename', b.filename],
    ['content type', b.content_type],
    ['size', b.size === undefined ? null : `${b.size} bytes`],
    ['digest', b.digest],
    ['scan status', b.scan_status],
    ['approval', approvalText(b.approval)],
    ['scan reasons', Array.isArray(b.scan_reasons) ? b.scan_reasons.join(', ') : b.scan_reasons],
    ['reason', b.approval?.reason],
    ['message', b.message_id],
    ['uploaded at', b.uploaded_at],
    ['expires at', b.expires_at],
  ]);
}

function decision(action: 'approve' | 'reject', summary: string): Command {
  return {
    name: `attachments ${action}`,
    usage: `attachments ${action} ATTACHMENT${action === 'reject' ? ' [--reason TEXT]' : ''}`,
    summary,
    flags: action === 'reject' ? { reason: '--reason TEXT    why; recorded with the decision in the audit trail' } : {},
    ids: 1,
    check: checkId,
    async run(s, a) {
      const reason = flag(a, 'reason');
      const json = reason === undefined ? {} : { reason };
      const body = (await s.call('POST', `${PATH}/${encodeURIComponent(a.ids[0])}/${action}`, json)) as Json;
      return { body, text: attachmentFields(body) };
    },
  };
}

function checkLimit(a: Args): void {
  const limit = flag(a, 'limit');
  if (limit !== undefined && !(/^[1-9][0-9]{0,3}$/.test(limit) && Number(limit) <= 1000))
    throw new CliError(`--limit must be a whole number from 1 to 1000 (got '${limit}')`, EXIT.USAGE);
}

function limitQuery(a: Args, q = new URLSearchParams()): string {
  const limit = flag(a, 'limit');
  if (limit !== undefined) q.set('limit', limit);
  const qs = q.toString();
  return qs ? `?${qs}` : '';
}

function auditTable(body: Json): string {
  const rows = (body.events ?? []) as Json[];
  const t = table(rows, [
    { header: 'TIME', cell: (r) => r.at },
    { header: 'ACTION', cell: (r) => r.action },
    { header: 'BY', cell: (r) => r.by },
    { header: 'IP', cell: (r) => r.ip },
    { header: 'ATTACHMENT_ID', cell: (r) => r.attachment_id },
    { header: 'FILENAME', cell: (r) => r.filename },
    { header: 'REASON', cell: (r) => r.reason },
  ]);
  return `${t}${rows.length} decision(s)\n`;
}

const AUDIT: Command = {
  name: 'attachments audit',
  usage: 'attachments audit [--limit N]',
  summary: 'approvals and rejections of held attachments, newest first: who, when, from which IP',
  flags: { limit: '--limit N        at most N decisions (default 100, at most 1000)' },
  ids: 0,
  check: checkLimit,
  async run(s, a) {
    const body = (await s.call('GET', `${PATH}/audit${limitQuery(a)}`)) as Json;
    return { body, text: auditTable(body) };
  },
};

export const ATTACHMENT_COMMANDS: Command[] = [
  {
    name: 'attachments list',
    usage: 'attachments list [--approval pending|approved|rejected] [--limit N]',
    summary: "the tenant's scanned attachments, newest first; --approval pending: those held for a decision",
    flags: {
      approval: '--approval A     pending (awaiting a decision), approved or rejected',
      limit: '--limit N        at most N attachments (default 100, at most 1000)',
    },
    ids: 0,
    check(a) {
      const ap = flag(a, 'approval');
      if (ap !== undefined && !APPROVALS.includes(ap))
        throw new CliError(`--approval must be one of ${APPROVALS.join(', ')} (got '${ap}')`, EXIT.USAGE);
      checkLimit(a);
    },
    async run(s, a) {
      const ap = flag(a, 'approval');
      const q = new URLSearchParams(ap === undefined ? {} : { approval: ap });
      const body = (await s.call('GET', `${PATH}${limitQuery(a, q)}`)) as Json;
      return { body, text: attachmentsTable(body) };
    },
  },
  decision('approve', 'approve a held (suspicious) attachment: it gets a download url and may be sent'),
  decision('reject', 'reject a held attachment: its file is deleted and messages carrying it are refused'),
  AUDIT,
];
