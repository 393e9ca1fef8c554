// IP addresses as bytes and CIDR ranges over them, for the SSRF rules (spec §18). Addresses are
// compared as bytes, never as strings, so every IPv6 spelling of an address (compressed, with a
// dotted IPv4 tail, upper case) is the same address here.

import { isIP } from 'node:net';

export interface Cidr {
  /** 4 bytes (IPv4) or 16 (IPv6), host bits zero. */
  bytes: Uint8Array;
  prefix: number;
  /** As written in the rules (`127.0.0.0/8`), for messages. */
  text: string;
}

/** The bytes of an IPv4 or IPv6 address (an IPv6 zone `%eth0` is ignored); undefined if it is not one. */
export function ipBytes(address: string): Uint8Array | undefined {
  const a = address.replace(/%.*$/, '');
  const family = isIP(a);
  if (family === 4) return Uint8Array.from(a.split('.').map(Number));
  if (family === 6) return ipv6Bytes(a);
  return undefined;
}

/** Only called on strings node:net accepts as IPv6. */
function ipv6Bytes(address: string): Uint8Array {
  let text = address.toLowerCase();
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const [a, b, c, d] = tail[1].split('.').map(Number);
    text = text.slice(0, -tail[1].length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = rest ? rest.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** `10.0.0.0/8`, `fc00::/7`, or a bare address (a /32 or /128); undefined if malformed. */
export function parseCidr(text: string): Cidr | undefined {
  const [address, prefixText, extra] = text.split('/');
  if (extra !== undefined || address.includes('%')) return undefined;
  const bytes = ipBytes(address);
  if (!bytes) return undefined;
  const bits = bytes.length * 8;
  if (prefixText !== undefined && !/^(0|[1-9]\d{0,2})$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return undefined;
  return { bytes: masked(bytes, prefix), prefix, text: prefixText === undefined ? address : text };
}

function masked(bytes: Uint8Array, prefix: number): Uint8Array {
  return bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
}

/** Is the address (bytes) inside the range? Families never match each other. */
export function inCidr(bytes: Uint8Array, cidr: Cidr): boolean {
  if (bytes.length !== cidr.bytes.length) return false;
  const m = masked(bytes, cidr.prefix);
  return m.every((b, i) => b === cidr.bytes[i]);
}

/** The IPv4 address an IPv6 address carries as IPv4-mapped (`::ffff:a.b.c.d`), if it is one. */
export function mappedIpv4(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.length !== 16) return undefined;
  const isMapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return isMapped ? bytes.slice(12) : undefined;
}
