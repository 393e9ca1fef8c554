// Wire shapes of messages as the provider stores and hands them out (spec §8, §11, §15).

import type { Priority } from './limits.js';

/** Built by the provider; optional fields are omitted, never null. */
export interface Envelope {
  version: 'amp/0.1';
  id: string;
  from: string;
  to: string;
  subject: string;
  priority: Priority;
  timestamp: string;
  signature: string;
  thread_id: string;
  in_reply_to?: string;
  expires_at?: string;
  idempotency_key?: string;
}

export type TrustLevel = 'verified' | 'external' | 'untrusted';

export interface Security {
  trust_level: TrustLevel;
  signature_verified: boolean;
  sender_authenticated: boolean;
  injection_flags: string[];
}

/** One item of the pending list, and the `data` of a `message.new` frame. */
export interface QueuedMessage {
  id: string;
  envelope: Envelope;
  payload: Record<string, unknown>;
  queued_at: string;
  expires_at: string;
  /** 64 lowercase hex of the sender's Ed25519 key when the message was signed, else "". */
  sender_public_key: string;
  security: Security;
  /** The provider's record of each attachment the payload names (§22), with a working `url`. */
  attachments?: AttachmentMeta[];
  /** E.g. `attachment_suspicious` when an admin-approved suspicious file is carried. */
  warnings?: string[];
}

/** What a recipient learns of an attachment from the provider (the payload itself is never changed). */
export interface AttachmentMeta {
  id: string;
  filename: string;
  content_type: string;
  size: number;
  digest: string;
  scan_status: string;
  url: string;
  expires_at: string;
}

export type RouteStatus = 'delivered' | 'queued';
export type RouteMethod = 'websocket' | 'relay' | 'mesh';

export interface RouteResult {
  id: string;
  status: RouteStatus;
  method: RouteMethod;
  delivered_at?: string;
  queued_at?: string;
  thread_id: string;
  warnings?: string[];
  /** §19.2: the mesh peer that took the message (with `method: "mesh"`). */
  remote_host?: string;
}
