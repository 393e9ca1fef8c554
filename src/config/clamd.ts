// The antivirus settings: clamd on a unix socket or over TCP, not both. The socket need not exist
// yet (clamd may start after us: attachments then wait as `pending`), but must be an absolute path.

import { isIP } from 'node:net';

export interface ClamdSettings {
  readonly clamdSocket: string;
  readonly clamdHost: string;
}

/** 'host:port' or '[v6 address]:port' (AMP_CLAMD_HOST). Throws an Error that says what is wrong. */
export function parseClamdHost(value: string): { host: string; port: number } {
  const v = value.trim();
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([A-Za-z0-9.-]+):(\d+)$/.exec(v);
  if (!m) {
    const hint =
      v.split(':').length > 2 && !v.startsWith('[') ? ' (write an IPv6 address in brackets: [::1]:3310)' : '';
    throw new Error(`clamd host must be host:port, e.g. 127.0.0.1:3310 or [::1]:3310, not '${value}'${hint}`);
  }
  const host = m[1]!;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`clamd port must be 1-65535, not '${m[2]}' in '${value}'`);
  }
  if (v.startsWith('[') && isIP(host) !== 6) throw new Error(`'${host}' in '${value}' is not an IPv6 address`);
  return { host, port };
}

export function clamdProblems(c: ClamdSettings, name: (key: 'clamdSocket' | 'clamdHost') => string): string[] {
  const problems: string[] = [];
  if (c.clamdSocket && c.clamdHost)
    problems.push(`${name('clamdSocket')} and ${name('clamdHost')} are both set; choose one`);
  if (c.clamdSocket && !c.clamdSocket.startsWith('/'))
    problems.push(`${name('clamdSocket')} must be an absolute path to clamd's unix socket (got '${c.clamdSocket}')`);
  if (c.clamdHost && !parses(c.clamdHost))
    problems.push(`${name('clamdHost')} must be host:port, e.g. 127.0.0.1:3310 (got '${c.clamdHost}')`);
  return problems;
}

function parses(value: string): boolean {
  try {
    parseClamdHost(value);
    return true;
  } catch {
    return false;
  }
}
