// The console's data side, built from the server's parts (src/server.ts): the live hub over the
// relay's counters and the merged audit view over the three audit trails.

import type { AttachmentAuditEvent } from '../attachments/admin.js';
import type { AuditTrail } from '../identity/audit.js';
import { AdminActions } from '../relay/admin-actions.js';
import type { RecordsStore } from '../store/types.js';
import { AuditView } from './audit-view.js';
import { LiveHub } from './live.js';
import { type LiveParts, liveSources } from './live-sources.js';

export interface ConsoleParts extends LiveParts {
  store: LiveParts['store'] & Pick<RecordsStore, 'recordsWithPrefix' | 'putRecord'>;
  audit: AuditTrail;
  onError: (err: unknown) => void;
}

export function buildConsoleData(p: ConsoleParts): { live: LiveHub; audit: AuditView } {
  const actions = new AdminActions(p.store);
  const audit = new AuditView({
    aid: (tenant) => p.audit.events(tenant),
    attachments: (tenant) => p.store.recordsWithPrefix<AttachmentAuditEvent>('attachment_audit', `${tenant}/`),
    amp: (tenant) => actions.list(tenant),
  });
  return { live: new LiveHub(liveSources(p), p.onError), audit };
}
