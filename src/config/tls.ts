// TLS settings: both files or neither, each readable, a certificate valid now (every block of its
// file parsed), and a key that belongs to it. A certificate that expires within 14 days is a warning.
// Checked with the rest of the configuration, so `check-config` and the server's start say the
// same thing before any port is opened.

import { readFileSync } from 'node:fs';
import { expiresSoon, tlsPairProblem } from '../crypto/tls-files.js';

export interface TlsSettings {
  readonly tlsCert: string;
  readonly tlsKey: string;
  readonly tlsKeyPassphrase: string;
}

function readable(env: string, path: string, problems: string[]): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.message;
    problems.push(`${env} ${path} cannot be read (${why})`);
    return undefined;
  }
}

const DEFAULT_NAMES = { tlsCert: 'AMP_TLS_CERT', tlsKey: 'AMP_TLS_KEY', tlsKeyPassphrase: 'AMP_TLS_KEY_PASSPHRASE' };

/** `name` says a setting as the user gave it (`--tls-cert` or `AMP_TLS_CERT`). */
export function tlsProblems(
  c: TlsSettings,
  name: (key: 'tlsCert' | 'tlsKey' | 'tlsKeyPassphrase') => string = (k) => DEFAULT_NAMES[k],
): string[] {
  const problems: string[] = [];
  if (!c.tlsCert && !c.tlsKey) {
    if (c.tlsKeyPassphrase) problems.push(`${name('tlsKeyPassphrase')} is set but ${name('tlsKey')} is not`);
    return problems;
  }
  if (!c.tlsCert || !c.tlsKey) {
    problems.push(
      `${name('tlsCert')} and ${name('tlsKey')} go together: set both (HTTPS and WSS) or neither (plain HTTP)`,
    );
    return problems;
  }
  const cert = readable(name('tlsCert'), c.tlsCert, problems);
  const key = readable(name('tlsKey'), c.tlsKey, problems);
  if (cert === undefined || key === undefined) return problems;
  const problem = tlsPairProblem(cert, c.tlsCert, key, c.tlsKey, c.tlsKeyPassphrase, {
    cert: name('tlsCert'),
    key: name('tlsKey'),
    passphrase: name('tlsKeyPassphrase'),
  });
  if (problem) problems.push(problem);
  return problems;
}

/** Whether the server itself speaks TLS (https/wss). */
export function tlsEnabled(c: TlsSettings): boolean {
  return c.tlsCert !== '' && c.tlsKey !== '';
}

/** A warning for the start's log when the TLS certificate expires within 14 days, else undefined. */
export function tlsExpiryWarning(c: TlsSettings, now = Date.now()): string | undefined {
  if (!tlsEnabled(c)) return undefined;
  try {
    return expiresSoon(readFileSync(c.tlsCert, 'utf8'), c.tlsCert, 14, now);
  } catch {
    return undefined;
  }
}
