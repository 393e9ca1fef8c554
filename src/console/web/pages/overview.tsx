// The live overview: one Server-Sent Events stream (/v1/console/live) pushes a snapshot of the
// server's figures every second; EventSource reconnects by itself while the page is open.

import { useEffect, useState } from 'preact/hooks';
import { checkSignedIn } from '../api';
import { PageHead } from '../components';
import { int, ms, rate } from '../format';
import type { LiveSnapshot, OutboundQueue } from '../../live-snapshot';
import type { Session } from '../session';

function useLive(): { live: boolean; snap: LiveSnapshot | null } {
  const [live, setLive] = useState(false);
  const [snap, setSnap] = useState<LiveSnapshot | null>(null);
  useEffect(() => {
    const es = new EventSource('/v1/console/live', { withCredentials: true });
    es.onopen = () => setLive(true);
    es.onerror = () => {
      setLive(es.readyState === EventSource.OPEN);
      // The stream ends when the session does (signed out elsewhere, expired, server restarted).
      void checkSignedIn();
    };
    es.addEventListener('snapshot', (e) => {
      setLive(true);
      try {
        setSnap(JSON.parse((e as MessageEvent<string>).data) as LiveSnapshot);
      } catch {
        // a malformed snapshot: keep the last one
      }
    });
    return () => es.close();
  }, []);
  return { live, snap };
}

function Figure(props: { label: string; testid: string; value: string; unit?: string }) {
  return (
    <div class="figure">
      <div class="figure-label">{props.label}</div>
      <div class="figure-value">
        <span data-testid={props.testid}>{props.value}</span>
        {props.unit && <span class="unit">{props.unit}</span>}
      </div>
    </div>
  );
}

function OutboundTable(props: { rows: OutboundQueue[] }) {
  if (!props.rows.length) return <p data-testid="ov-outbound">none</p>;
  return (
    <table data-testid="ov-outbound">
      <thead>
        <tr>
          <th>Kind</th>
          <th class="num">Queued</th>
          <th class="num">Oldest (s)</th>
        </tr>
      </thead>
      <tbody>
        {props.rows.map((r) => (
          <tr key={r.kind}>
            <td>{r.kind}</td>
            <td class="num">{int(r.queued)}</td>
            <td class="num">{r.oldest_age_s === null ? '—' : int(r.oldest_age_s)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function OverviewPage(_props: { session: Session }) {
  const { live, snap } = useLive();
  const s = snap;
  return (
    <section>
      <PageHead title="Overview">
        <span class={`live-dot ${live ? 'on' : 'off'}`} />
        <span data-testid="ov-live-status">{live ? 'live' : 'offline'}</span>
      </PageHead>
      <div class="figures">
        <Figure label="Sessions online" testid="ov-sessions" value={int(s?.sessions_online)} />
        <Figure label="Messages routed" testid="ov-routed-total" value={int(s?.routed_total)} />
        <Figure label="Routed" testid="ov-routed-rate" value={rate(s?.routed_per_s)} unit="/s" />
        <Figure label="Messages pushed" testid="ov-pushed-total" value={int(s?.pushed_total)} />
        <Figure label="Pushed" testid="ov-pushed-rate" value={rate(s?.pushed_per_s)} unit="/s" />
        <Figure label="Queue depth" testid="ov-queue-depth" value={int(s?.queue_depth)} />
        <Figure
          label="Oldest queued message"
          testid="ov-oldest-age"
          value={s?.oldest_message_age_s == null ? '—' : int(s.oldest_message_age_s)}
          unit={s?.oldest_message_age_s == null ? undefined : 's'}
        />
        <Figure label="Commit p50" testid="ov-commit-p50" value={ms(s?.commit_ms?.p50)} unit="ms" />
        <Figure label="Commit p99" testid="ov-commit-p99" value={ms(s?.commit_ms?.p99)} unit="ms" />
        <Figure label="Health" testid="ov-health" value={s ? s.health : '—'} />
        <Figure label="Ready" testid="ov-ready" value={s ? (s.ready ? 'yes' : 'no') : '—'} />
      </div>
      <h2>Outbound queues</h2>
      {s ? <OutboundTable rows={s.outbound ?? []} /> : <p data-testid="ov-outbound">—</p>}
      {s && <p class="muted">Snapshot at {new Date(s.at).toLocaleTimeString()}</p>}
    </section>
  );
}
