// KV keys and subject tokens: NATS allows [-/_=.a-zA-Z0-9] in a KV key and '.' separates tokens.
// One token of ours keeps [A-Za-z0-9_-] and writes every other UTF-8 byte as `=XX` (upper hex), so
// any string (tenant, name, fingerprint, record key) becomes exactly one token and decodes back.
// The empty string is the lone `=` (never produced otherwise).

const KEEP = /^[A-Za-z0-9_-]$/;
const HEX = '0123456789ABCDEF';

export function encodeToken(s: string): string {
  if (s === '') return '=';
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45)) {
      plain = false;
      break;
    }
  }
  if (plain) return s;
  let out = '';
  for (const ch of s) {
    if (KEEP.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of Buffer.from(ch, 'utf8')) out += `=${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}

export function decodeToken(t: string): string {
  if (t === '=') return '';
  if (!t.includes('=')) return t;
  const bytes: number[] = [];
  for (let i = 0; i < t.length; ) {
    if (t[i] === '=') {
      bytes.push(Number.parseInt(t.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(t.charCodeAt(i));
      i++;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
