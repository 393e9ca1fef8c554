// Small shared pieces: links that navigate in the page, status badges, the error banner.

import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { onApiError, showError } from './api';
import { linkClick } from './router';

export function Link(props: { href: string; testid?: string; class?: string; children: ComponentChildren }) {
  return (
    <a href={props.href} class={props.class} data-testid={props.testid} onClick={linkClick}>
      {props.children}
    </a>
  );
}

const BADGE: Record<string, string> = {
  pending: 'warn',
  active: 'ok',
  approved: 'ok',
  clean: 'ok',
  ok: 'ok',
  rejected: 'bad',
  suspended: 'bad',
  suspicious: 'warn',
  deleted: 'muted',
};

/** A status as a coloured badge; the text is the status itself. */
export function Badge(props: { status: string; testid?: string }) {
  const tone = BADGE[props.status] ?? 'muted';
  return (
    <span class={`badge badge-${tone}`} data-testid={props.testid}>
      {props.status}
    </span>
  );
}

export function ErrorBanner() {
  const [message, setMessage] = useState<string | null>(null);
  useEffect(() => onApiError(setMessage), []);
  if (!message) return null;
  return (
    <div class="error-banner" role="alert">
      <span data-testid="error-banner">{message}</span>
      <button type="button" class="link" onClick={() => showError(null)} aria-label="Dismiss">
        ×
      </button>
    </div>
  );
}

/** A page title with optional actions on the right. */
export function PageHead(props: { title: ComponentChildren; children?: ComponentChildren }) {
  return (
    <header class="page-head">
      <h1>{props.title}</h1>
      {props.children && <div class="page-actions">{props.children}</div>}
    </header>
  );
}

/** Run an action; errors are already in the banner, so they are only swallowed here. */
export async function attempt(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    showError(null);
    await fn();
    return true;
  } catch {
    return false;
  }
}
