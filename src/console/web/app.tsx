// The page frame: sign-in state, the navigation, the error banner, the dialog, and the page
// the current path names.

import { useEffect, useState } from 'preact/hooks';
import { whenSignedOut } from './api';
import { ErrorBanner, Link, attempt } from './components';
import { DialogHost } from './dialog';
import { AgentsPage } from './pages/agents';
import { AttachmentsPage } from './pages/attachments';
import { AuditPage } from './pages/audit';
import { AuthorizePage } from './pages/authorize';
import { OverviewPage } from './pages/overview';
import { RegistrationPage } from './pages/registration';
import { RegistrationsPage } from './pages/registrations';
import { type Route, routeOf, useLocation } from './router';
import { type Session, type SessionState, loadSession, signOut } from './session';

const NAV: { href: string; label: string; testid: string; pages: Route['page'][] }[] = [
  { href: '/admin/', label: 'Overview', testid: 'nav-overview', pages: ['overview'] },
  {
    href: '/admin/registrations',
    label: 'Registrations',
    testid: 'nav-registrations',
    pages: ['registrations', 'registration', 'authorize'],
  },
  { href: '/admin/agents', label: 'Agents', testid: 'nav-agents', pages: ['agents'] },
  { href: '/admin/attachments', label: 'Attachments', testid: 'nav-attachments', pages: ['attachments'] },
  { href: '/admin/audit', label: 'Audit log', testid: 'nav-audit', pages: ['audit'] },
];

function CurrentPage(props: { route: Route; session: Session }) {
  const { route, session } = props;
  switch (route.page) {
    case 'overview':
      return <OverviewPage session={session} />;
    case 'registrations':
      return <RegistrationsPage session={session} />;
    case 'registration':
      return <RegistrationPage session={session} id={route.id} />;
    case 'agents':
      return <AgentsPage session={session} />;
    case 'attachments':
      return <AttachmentsPage session={session} />;
    case 'audit':
      return <AuditPage session={session} />;
    case 'authorize':
      return <AuthorizePage session={session} />;
    default:
      return (
        <section class="panel">
          <h1>Not found</h1>
          <p>
            There is no such page. <Link href="/admin/">Go to the overview</Link>.
          </p>
        </section>
      );
  }
}

function SignedOut(props: { loginError: string | null }) {
  return (
    <main class="signed-out">
      <div class="panel">
        <h1>amp-relay admin</h1>
        {props.loginError && (
          <p class="login-error" role="alert" data-testid="login-error">
            {props.loginError}
          </p>
        )}
        <div data-testid="signed-out">
          <p>You are not signed in. On the relay's host, run</p>
          <pre class="command">amp-relay admin login</pre>
          <p>and open the one-time link it prints (it works once and expires after a few minutes).</p>
        </div>
      </div>
    </main>
  );
}

function Nav(props: { route: Route; session: Session; onSignOut: () => void }) {
  return (
    <nav class="sidebar" aria-label="Main">
      <div class="brand">amp-relay</div>
      <div class="tenant">{props.session.tenant}</div>
      <ul>
        {NAV.map((n) => (
          <li key={n.href}>
            <Link href={n.href} testid={n.testid} class={n.pages.includes(props.route.page) ? 'active' : undefined}>
              {n.label}
            </Link>
          </li>
        ))}
      </ul>
      <div class="who">
        <span data-testid="session-email">{props.session.email}</span>
        {!props.session.scopes.some((s) => s === 'amp:admin' || s === 'agent_registrations:write') && (
          <span class="badge badge-muted">read-only</span>
        )}
        <button type="button" data-testid="sign-out" onClick={props.onSignOut}>
          Sign out
        </button>
      </div>
    </nav>
  );
}

export function App() {
  const loc = useLocation();
  const [state, setState] = useState<SessionState>({ kind: 'loading' });
  useEffect(() => {
    loadSession().then(setState, (e: unknown) =>
      setState({ kind: 'signed-out', loginError: e instanceof Error ? e.message : String(e) }),
    );
    whenSignedOut(() => setState({ kind: 'signed-out', loginError: null }));
    return () => whenSignedOut(null);
  }, []);
  const onSignOut = () =>
    attempt(async () => {
      await signOut();
      setState({ kind: 'signed-out', loginError: null });
    });
  if (state.kind === 'loading') return <main class="loading">Loading…</main>;
  const route = routeOf(loc.split('?')[0]);
  return (
    <>
      <ErrorBanner />
      {state.kind === 'signed-out' ? (
        <SignedOut loginError={state.loginError} />
      ) : (
        <div class="layout">
          <Nav route={route} session={state.session} onSignOut={onSignOut} />
          <main class="content">
            {state.loginError && (
              <p class="login-error" role="alert" data-testid="login-error">
                {state.loginError}
              </p>
            )}
            <CurrentPage key={loc} route={route} session={state.session} />
          </main>
        </div>
      )}
      <DialogHost />
    </>
  );
}
