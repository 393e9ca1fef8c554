// The AID authorization_url page (device flow): the operator enters (or follows a link with)
// the agent's user code, sees which pending registration it names, and approves or rejects it.

import { useEffect, useState } from 'preact/hooks';
import { Badge, PageHead, attempt } from '../components';
import { type Registration, type Transition, resolveCode, transition } from '../registrations-api';
import { type Session, canWriteAid } from '../session';

const DONE: Record<string, string> = { approve: 'Approved', reject: 'Rejected' };

export function AuthorizePage(props: { session: Session }) {
  const { tenant } = props.session;
  const write = canWriteAid(props.session);
  const initial = new URLSearchParams(location.search).get('code') ?? '';
  const [code, setCode] = useState(initial);
  const [reg, setReg] = useState<Registration | null>(null);
  const [result, setResult] = useState<string | null>(null);
  const lookup = (c: string) =>
    attempt(async () => {
      setReg(null);
      setResult(null);
      if (c.trim()) setReg(await resolveCode(tenant, c.trim()));
    });
  useEffect(() => {
    if (initial) lookup(initial);
  }, []);
  const act = (action: Transition) =>
    attempt(async () => {
      if (!reg) return;
      const next = await transition(tenant, reg, action);
      if (!next) return;
      setReg(next);
      setResult(`${DONE[action] ?? action}: the registration is now ${next.attributes.status}.`);
    });
  const onSubmit = (e: Event) => {
    e.preventDefault();
    lookup(code);
  };
  const a = reg?.attributes;
  return (
    <section>
      <PageHead title="Authorize an agent" />
      <form class="panel inline-form" onSubmit={onSubmit}>
        <label class="field">
          <span>User code</span>
          <input
            data-testid="authz-code"
            value={code}
            autoComplete="off"
            spellcheck={false}
            placeholder="ABCD-EFGH"
            onInput={(e) => setCode(e.currentTarget.value)}
          />
        </label>
        <button type="submit" data-testid="authz-lookup">
          Look up
        </button>
      </form>
      {a && reg && (
        <div class="panel">
          <h2>
            <span data-testid="authz-name">{a.name}</span>
          </h2>
          <dl class="facts">
            <div>
              <dt>Address</dt>
              <dd class="mono">{a.address}</dd>
            </div>
            <div>
              <dt>Fingerprint</dt>
              <dd class="mono" data-testid="authz-fingerprint">
                {a.fingerprint}
              </dd>
            </div>
            <div>
              <dt>Status</dt>
              <dd>
                <Badge status={a.status} testid="authz-status" />
              </dd>
            </div>
            {a.description && (
              <div>
                <dt>Description</dt>
                <dd>{a.description}</dd>
              </div>
            )}
          </dl>
          <p class="muted">Compare the fingerprint with the one the agent shows before you approve it.</p>
          {write && a.status === 'pending' && (
            <div class="button-row">
              <button type="button" class="primary" data-testid="authz-approve" onClick={() => act('approve')}>
                Approve
              </button>
              <button type="button" class="danger" data-testid="authz-reject" onClick={() => act('reject')}>
                Reject
              </button>
            </div>
          )}
        </div>
      )}
      {result && (
        <p class="result" role="status" data-testid="authz-result">
          {result}
        </p>
      )}
    </section>
  );
}
