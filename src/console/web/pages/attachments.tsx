// Attachments held for human approval (scan verdict "suspicious"): file name, type, size,
// verdict and reasons, a text preview of the first bytes (as text, in a <pre>), approve / reject.

import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, enc } from '../api';
import { Badge, PageHead, attempt } from '../components';
import { ask } from '../dialog';
import { bytes, str, when } from '../format';
import { type Session, canWriteAmp } from '../session';

interface Held {
  attachment_id: string;
  filename: string;
  content_type: string;
  size: number;
  scan_status: string;
  scan_reasons?: string[];
  uploaded_at: string | null;
  owner?: string | null;
}

interface Preview {
  previewable: boolean;
  text: string;
  truncated: boolean;
  reason: string | null;
}

function PreviewBox(props: { id: string }) {
  const [p, setP] = useState<Preview | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    api<Preview>(`/v1/admin/attachments/${enc(props.id)}/preview`, { quiet: true }).then(setP, (e: unknown) =>
      setFailed(e instanceof Error ? e.message : String(e)),
    );
  }, [props.id]);
  const text = failed
    ? `(no preview: ${failed})`
    : !p
      ? 'Loading preview…'
      : p.previewable
        ? p.text + (p.truncated ? '\n…' : '')
        : `(no preview: ${str(p.reason, 'not a text file')})`;
  return (
    <pre class={`preview${p?.previewable ? '' : ' muted'}`} data-testid="att-preview">
      {text}
    </pre>
  );
}

function Row(props: { a: Held; write: boolean; decide: (a: Held, approve: boolean) => void }) {
  const { a, write, decide } = props;
  return (
    <article class="att panel" data-testid="att-row" data-id={a.attachment_id}>
      <header class="att-head">
        <h2 data-testid="att-filename">{a.filename}</h2>
        <Badge status={a.scan_status} testid="att-verdict" />
      </header>
      <dl class="facts compact">
        <div>
          <dt>Type</dt>
          <dd class="mono" data-testid="att-type">
            {a.content_type}
          </dd>
        </div>
        <div>
          <dt>Size</dt>
          <dd>
            <span data-testid="att-size">{String(a.size)}</span> bytes{a.size >= 1024 ? ` (${bytes(a.size)})` : ''}
          </dd>
        </div>
        <div>
          <dt>Reason</dt>
          <dd data-testid="att-reason">{a.scan_reasons?.length ? a.scan_reasons.join('; ') : '—'}</dd>
        </div>
        <div>
          <dt>From</dt>
          <dd class="mono">{str(a.owner)}</dd>
        </div>
        <div>
          <dt>Uploaded</dt>
          <dd>{when(a.uploaded_at)}</dd>
        </div>
      </dl>
      <PreviewBox id={a.attachment_id} />
      {write && (
        <div class="button-row">
          <button type="button" class="primary" data-testid="att-approve" onClick={() => decide(a, true)}>
            Approve
          </button>
          <button type="button" class="danger" data-testid="att-reject" onClick={() => decide(a, false)}>
            Reject
          </button>
        </div>
      )}
    </article>
  );
}

async function decideOn(a: Held, approve: boolean): Promise<boolean> {
  const path = `/v1/admin/attachments/${enc(a.attachment_id)}`;
  if (approve) {
    await api(`${path}/approve`, { method: 'POST', body: {} });
    return true;
  }
  const reason = await ask({
    title: 'Reject attachment',
    detail: `${a.filename}: its file is deleted and it can no longer be sent.`,
    confirmLabel: 'Reject',
    reason: true,
    danger: true,
  });
  if (reason === null) return false;
  await api(`${path}/reject`, { method: 'POST', body: reason ? { reason } : {} });
  return true;
}

export function AttachmentsPage(props: { session: Session }) {
  const on = props.session.features.attachments;
  const write = canWriteAmp(props.session);
  const [rows, setRows] = useState<Held[] | null>(null);
  const refresh = useCallback(
    () =>
      attempt(async () => {
        setRows((await api<{ attachments: Held[] }>('/v1/admin/attachments?approval=pending')).attachments);
      }),
    [],
  );
  useEffect(() => {
    if (on) refresh();
  }, [on, refresh]);
  const decide = (a: Held, approve: boolean) =>
    attempt(async () => {
      if (await decideOn(a, approve)) await refresh();
    });
  let body: ComponentChildren = <p class="muted">Loading…</p>;
  if (!on)
    body = (
      <p class="empty" data-testid="att-off">
        Attachments are turned off on this relay, so no file waits for approval.
      </p>
    );
  else if (rows && rows.length === 0)
    body = (
      <p class="empty" data-testid="att-empty">
        No attachment waits for approval.
      </p>
    );
  else if (rows) body = rows.map((a) => <Row key={a.attachment_id} a={a} write={write} decide={decide} />);
  return (
    <section>
      <PageHead title="Held attachments" />
      {body}
    </section>
  );
}
