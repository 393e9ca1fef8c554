// The AID registration calls the console makes (agent-identity §4, §11): JSON:API resources
// under /{tenant}/agent_registrations, transitions as POST .../{id}/{action} with a reason.

import { api, enc, query } from './api';
import { ask } from './dialog';

export interface RegAttrs {
  name: string;
  description: string | null;
  address: string;
  fingerprint: string;
  status: string;
  registration_method: string;
  role_name: string | null;
  rejection_reason: string | null;
  suspension_reason: string | null;
  approved_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface Resource<A> {
  id: string;
  type: string;
  attributes: A;
}

export interface ListMeta {
  total_count: number;
  page: number;
  records: number;
  total_pages: number;
}

export interface AuditAttrs {
  event_type: string;
  actor_type: string;
  actor_id: string;
  actor_email: string | null;
  ip_address: string | null;
  previous_status: string | null;
  new_status: string | null;
  reason: string | null;
  created_at: string;
}

export type Registration = Resource<RegAttrs>;
export type Transition = 'approve' | 'reject' | 'suspend' | 'reactivate';

const base = (tenant: string) => `/${enc(tenant)}/agent_registrations`;

export function listRegistrations(tenant: string, status: string, page = 1) {
  return api<{ data: Registration[]; meta: ListMeta }>(
    base(tenant) + query({ status: status === 'all' ? '' : status, page, records: 100 }),
  );
}

export async function getRegistration(tenant: string, id: string): Promise<Registration> {
  return (await api<{ data: Registration }>(`${base(tenant)}/${enc(id)}`)).data;
}

export async function activity(tenant: string, id: string): Promise<Resource<AuditAttrs>[]> {
  const r = await api<{ data: Resource<AuditAttrs>[] }>(`${base(tenant)}/${enc(id)}/activity_logs?records=100`);
  return r.data;
}

export async function resolveCode(tenant: string, code: string): Promise<Registration> {
  return (await api<{ data: Registration }>(`${base(tenant)}/resolve${query({ code })}`)).data;
}

const PROMPTS: Record<Exclude<Transition, 'approve'>, { title: string; confirm: string; reason: boolean }> = {
  reject: { title: 'Reject registration', confirm: 'Reject', reason: true },
  suspend: { title: 'Suspend registration', confirm: 'Suspend', reason: true },
  reactivate: { title: 'Reactivate registration', confirm: 'Reactivate', reason: false },
};

/**
 * Ask for a reason (reject, suspend) or a confirmation (reactivate), then POST the transition.
 * Approve goes at once. Null when the operator cancelled.
 */
export async function transition(tenant: string, reg: Registration, action: Transition): Promise<Registration | null> {
  let body: Record<string, string> = {};
  if (action !== 'approve') {
    const p = PROMPTS[action];
    const reason = await ask({
      title: p.title,
      detail: `${reg.attributes.name} (${reg.attributes.address})`,
      confirmLabel: p.confirm,
      reason: p.reason,
      danger: action !== 'reactivate',
    });
    if (reason === null) return null;
    if (reason) body = { reason };
  }
  const r = await api<{ data: Registration }>(`${base(tenant)}/${enc(reg.id)}/${action}`, { method: 'POST', body });
  return r.data;
}
