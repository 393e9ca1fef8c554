// The DNS TXT record of a provider (spec §19.1): `_amp._tcp.<domain>` holds
//   v=AMP1; endpoint=https://amp.example.com/v1; pubkey=SHA256:…
// Fields are `key=value` separated by `;` (spaces around them ignored, keys case-insensitive,
// unknown keys ignored). A record is one TXT answer: its character strings joined without spaces.

import { FINGERPRINT_RE } from './pins.js';

export interface AmpTxt {
  endpoint: string;
  fingerprint: string;
}

/** The first valid `v=AMP1` record of a TXT answer set (as node:dns resolveTxt gives it), or why none is. */
export function parseAmpTxt(records: readonly (readonly string[])[]): AmpTxt | string {
  let why = 'no TXT record';
  for (const chunks of records) {
    const r = parseRecord(chunks.join(''));
    if (typeof r === 'object') return r;
    why = r;
  }
  return why;
}

export function parseRecord(text: string): AmpTxt | string {
  const fields = new Map<string, string>();
  for (const part of text.split(';')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq <= 0) return `malformed field '${p}'`;
    const key = p.slice(0, eq).trim().toLowerCase();
    if (!fields.has(key)) fields.set(key, p.slice(eq + 1).trim());
  }
  if (fields.get('v') !== 'AMP1') return `not an AMP1 record ('${text.slice(0, 80)}')`;
  const endpoint = fields.get('endpoint');
  const fingerprint = fields.get('pubkey');
  if (!endpoint) return 'no endpoint=';
  if (!fingerprint || !FINGERPRINT_RE.test(fingerprint)) return 'no pubkey=SHA256:… fingerprint';
  return { endpoint, fingerprint };
}
