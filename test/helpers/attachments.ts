// Attachments over the real HTTP API (§22): declare, PUT, confirm, wait for the scan.

import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { call, type Registered, type Reply } from './server.js';

export const sha256 = (b: Uint8Array | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Declared {
  filename: string;
  content_type: string;
  size: number;
  digest: string;
}

export function declare(bytes: Buffer, filename = 'notes.txt', contentType = 'text/plain'): Declared {
  return { filename, content_type: contentType, size: bytes.length, digest: sha256(bytes) };
}

export async function init(api: string, agent: Registered, d: Declared): Promise<Reply> {
  return call('POST', `${api}/attachments/upload`, { key: agent.api_key, json: d });
}

export async function put(uploadUrl: string, bytes: Buffer, contentType = 'text/plain'): Promise<Reply> {
  return call('PUT', uploadUrl, { raw: bytes, headers: { 'Content-Type': contentType } });
}

/** Declare, PUT and confirm; the attachment id (the scan is under way). */
export async function uploadConfirmed(
  api: string,
  agent: Registered,
  bytes: Buffer,
  filename = 'notes.txt',
  contentType = 'text/plain',
): Promise<string> {
  const i = await init(api, agent, declare(bytes, filename, contentType));
  if (i.status !== 201) throw new Error(`upload init: ${i.status} ${JSON.stringify(i.body)}`);
  const p = await put(i.body.upload_url, bytes, contentType);
  if (p.status !== 200) throw new Error(`PUT: ${p.status} ${JSON.stringify(p.body)}`);
  const c = await call('POST', `${api}/attachments/${i.body.attachment_id}/confirm`, { key: agent.api_key });
  if (c.status !== 200) throw new Error(`confirm: ${c.status} ${JSON.stringify(c.body)}`);
  return i.body.attachment_id;
}

/** Poll the status until it leaves `pending` (every 25 ms, at most `timeoutMs`); the last status document. */
export async function settled(api: string, agent: Registered, id: string, timeoutMs = 15_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await call('GET', `${api}/attachments/${id}`, { key: agent.api_key });
    if (s.status !== 200) throw new Error(`status: ${s.status} ${JSON.stringify(s.body)}`);
    if (s.body.scan_status !== 'pending') return s.body;
    if (Date.now() > deadline) throw new Error(`attachment ${id} still pending after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The signing secret the server derives from its provider key (to forge an expired, correctly signed URL). */
export function urlSecret(dataDir: string): Buffer {
  const pem = readFileSync(join(dataDir, 'provider-ed25519.pem'), 'utf8');
  return createHash('sha256').update('amp-relay attachment urls\n').update(pem).digest();
}

export function signedUploadQuery(dataDir: string, id: string, expS: number): string {
  const sig = createHmac('sha256', urlSecret(dataDir)).update(`upload\n${id}\n${expS}`).digest('base64url');
  return `exp=${expS}&sig=${sig}`;
}
