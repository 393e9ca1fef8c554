// The antivirus settings: clamd on a unix socket or over TCP, not both. The socket need not exist
// yet (clamd may start after us: attachments then wait as `pending`), but must be an absolute path.

export interface ClamdSettings {
  readonly clamdSocket: string;
  readonly clamdHost: string;
}

/** `host:port` or `[v6]:port` → its parts; null when it is not that shape. */
export function parseHostPort(value: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2], port };
}

export function clamdProblems(c: ClamdSettings, name: (key: 'clamdSocket' | 'clamdHost') => string): string[] {
  const problems: string[] = [];
  if (c.clamdSocket && c.clamdHost)
    problems.push(`${name('clamdSocket')} and ${name('clamdHost')} are both set; choose one`);
  if (c.clamdSocket && !c.clamdSocket.startsWith('/'))
    problems.push(`${name('clamdSocket')} must be an absolute path to clamd's unix socket (got '${c.clamdSocket}')`);
  if (c.clamdHost && !parseHostPort(c.clamdHost))
    problems.push(`${name('clamdHost')} must be host:port, e.g. 127.0.0.1:3310 (got '${c.clamdHost}')`);
  return problems;
}
