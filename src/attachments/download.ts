// A download's answer (§22): 200 with the bytes, never a redirect; `ETag` from the digest,
// `Accept-Ranges: bytes` and single ranges (`curl -C -` resumes), `If-None-Match` and `If-Range`.
// The transport streams the file range from disk.

import { AmpError } from '../../proto/index.js';
import type { AttachmentRecord } from '../store/types.js';
import { downloadable } from './documents.js';

export interface DownloadRequest {
  range: string;
  ifNoneMatch: string;
  ifRange: string;
}

export interface FileAnswer {
  status: number;
  headers: Record<string, string>;
  /** Byte range to send, `end` inclusive; absent for 304/416. */
  file?: { path: string; start: number; end: number };
  body?: unknown;
}

/** Why a file cannot be downloaded, as the error a client can act on. */
function refusal(rec: AttachmentRecord, nowMs: number): AmpError {
  if (rec.expiresAt <= nowMs) return new AmpError('attachment_expired', 'This attachment has expired');
  if (rec.scanStatus === 'rejected' || rec.approval?.status === 'rejected')
    return new AmpError('attachment_rejected', 'This attachment was rejected; its file is gone');
  if (rec.scanStatus === 'suspicious')
    return new AmpError('attachment_held', 'This attachment is held for human approval');
  return new AmpError('attachment_pending', 'This attachment is not scanned yet', { retryAfter: 2 });
}

export function fileAnswer(rec: AttachmentRecord, path: string, req: DownloadRequest, nowMs = Date.now()): FileAnswer {
  if (!downloadable(rec, nowMs)) throw refusal(rec, nowMs);
  const etag = `"sha256-${rec.digest.slice(7)}"`;
  const headers: Record<string, string> = {
    ETag: etag,
    'Accept-Ranges': 'bytes',
    'Content-Type': rec.contentType,
    'Content-Disposition': `attachment; filename="${rec.filename}"`,
    'Cache-Control': 'private, no-cache',
    'X-Content-Type-Options': 'nosniff',
  };
  if (req.ifNoneMatch !== '' && etagListMatches(req.ifNoneMatch, etag)) return { status: 304, headers };
  const useRange = req.range !== '' && (req.ifRange === '' || req.ifRange === etag);
  if (!useRange) return { status: 200, headers, file: { path, start: 0, end: rec.size - 1 } };
  const r = parseRange(req.range, rec.size);
  if (r === 'ignore') return { status: 200, headers, file: { path, start: 0, end: rec.size - 1 } };
  if (r === 'unsatisfiable') {
    // A JSON error, not the file: none of the file's own headers.
    return {
      status: 416,
      headers: { 'Content-Range': `bytes */${rec.size}`, 'Accept-Ranges': 'bytes', ETag: etag },
      body: { error: 'range_not_satisfiable', message: `The file has ${rec.size} bytes`, details: { size: rec.size } },
    };
  }
  headers['Content-Range'] = `bytes ${r.start}-${r.end}/${rec.size}`;
  return { status: 206, headers, file: { path, start: r.start, end: r.end } };
}

function etagListMatches(header: string, etag: string): boolean {
  return header.trim() === '*' || header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/**
 * One `bytes=a-b`, `bytes=a-` or `bytes=-n` range (RFC 9110 §14.1.2). Several ranges, or another
 * unit, are answered with the whole file ('ignore'); a range past the end is 'unsatisfiable'.
 */
export function parseRange(header: string, size: number): { start: number; end: number } | 'ignore' | 'unsatisfiable' {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'ignore';
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}
