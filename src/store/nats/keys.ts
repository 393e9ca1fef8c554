// Subject tokens and KV keys from free text (tenants, agent ids, message ids): letters, digits, `_`
// and `-` are kept, every other byte of the UTF-8 text becomes `=XX` (upper-case hex), so the
// result is one NATS token (no `.`, `*`, `>` or space) and a valid KV key, and decodes back
// exactly. The empty string is `=` (a token may not be empty; `=` alone never comes out otherwise).

const KEEP = /^[A-Za-z0-9_-]*$/;

export function encodeToken(text: string): string {
  if (text === '') return '=';
  if (KEEP.test(text)) return text;
  let out = '';
  for (const ch of text) {
    if (/[A-Za-z0-9_-]/.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of Buffer.from(ch, 'utf8')) out += `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function decodeToken(token: string): string {
  if (token === '=') return '';
  if (!token.includes('=')) return token;
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c === 0x3d) {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(c);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
