// Client-side routes over the history API: links push a path, Back/Forward (popstate) re-render.
// The server answers every /admin/... path and /agents/authorize with the same index.html.

import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'overview' }
  | { page: 'registrations' }
  | { page: 'registration'; id: string }
  | { page: 'agents' }
  | { page: 'attachments' }
  | { page: 'audit' }
  | { page: 'authorize' }
  | { page: 'not-found' };

export function routeOf(pathname: string): Route {
  const path = pathname.replace(/\/+$/, '');
  if (path === '/admin' || path === '') return { page: 'overview' };
  if (path === '/agents/authorize') return { page: 'authorize' };
  const detail = /^\/admin\/registrations\/([^/]+)$/.exec(path);
  if (detail) return { page: 'registration', id: decodeURIComponent(detail[1]) };
  const simple: Record<string, Route> = {
    '/admin/registrations': { page: 'registrations' },
    '/admin/agents': { page: 'agents' },
    '/admin/attachments': { page: 'attachments' },
    '/admin/audit': { page: 'audit' },
  };
  return simple[path] ?? { page: 'not-found' };
}

const listeners = new Set<() => void>();

export function navigate(href: string): void {
  history.pushState(null, '', href);
  for (const fn of listeners) fn();
}

/** The current location (path + search), re-rendered on navigate() and popstate. */
export function useLocation(): string {
  const [loc, setLoc] = useState(location.pathname + location.search);
  useEffect(() => {
    const update = () => setLoc(location.pathname + location.search);
    listeners.add(update);
    addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      removeEventListener('popstate', update);
    };
  }, []);
  return loc;
}

/** onClick of an <a>: a plain left click navigates in the page; modified clicks open as usual. */
export function linkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.currentTarget as HTMLAnchorElement;
  e.preventDefault();
  navigate(a.getAttribute('href') ?? '/admin/');
}
