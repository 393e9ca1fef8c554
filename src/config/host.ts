// AMP_HOST: an IPv4 or IPv6 literal, or a host name (RFC 1123). A dotted quad with an octet over 255
// is neither: a host name's last label is never all digits (RFC 3696 §2), so `999.1.1.1` is refused
// here instead of failing at listen time (or resolving as a name).

import { isIP } from 'node:net';

const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const MAX_NAME_CHARS = 253;

/** Why `host` cannot be listened on, or undefined when it is an IP literal or a host name. */
export function hostProblem(host: string): string | undefined {
  const got = `(got '${host}')`;
  if (host === '') return `must be an IP address or a host name ${got}`;
  if (isIP(host)) return undefined;
  if (/^\[.*\]$/.test(host)) return `takes an IPv6 address without brackets ${got}`;
  if (/^[\d.]+$/.test(host)) return `is not a valid IPv4 address: four numbers 0-255 ${got}`;
  if (host.includes(':')) return `is not a valid IPv6 address ${got}`;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  const labels = name.split('.');
  if (name.length > MAX_NAME_CHARS || !labels.every((l) => LABEL_RE.test(l)) || /^\d+$/.test(labels.at(-1)!))
    return `must be an IP address or a host name (letters, digits, '-' and '.') ${got}`;
  return undefined;
}
