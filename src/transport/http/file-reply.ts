// Streaming a byte range of a file from disk into a uWS response, with backpressure: one chunk is
// read ahead at most (CHUNK bytes), and the next is read only once uWS took the previous one.
//
// uWS: `tryEnd(chunk, total)` writes what the socket takes now and reports `[ok, done]`; when not ok,
// the part it did not take is ours to send again from `onWritable(offset)` (offset: the body bytes
// written so far). The first `tryEnd` writes `Content-Length: total` itself. Every write after an
// await is corked. The connection's reads stay paused while the file streams (a request pipelined
// behind it would otherwise be parsed while this answer is pending, and uWS would drop the
// connection, uWS#1301); they resume right before the last chunk.

import { open, type FileHandle } from 'node:fs/promises';
import type { HttpResponse } from 'uWebSockets.js';
import type { PauseControl } from './flow.js';
import type { FileRange } from './router.js';

export const FILE_CHUNK = 256 * 1024;

export interface FileSend {
  res: HttpResponse;
  file: FileRange;
  /** A HEAD request: status and headers only (framed as an empty body, as every HEAD answer). */
  head: boolean;
  flow: PauseControl;
  /** Write the status line and headers (called inside a cork, before any body byte). */
  writeHead: () => void;
  isAborted: () => boolean;
  /** Register the one callback to run when the connection goes away (replaces the previous one). */
  onAbort: (fn: () => void) => void;
}

/**
 * - `sent`: the whole range was handed to uWS;
 * - `missing`: the file could not be opened as absent (ENOENT/ENOTDIR): nothing written;
 * - `unreadable`: another open error (`error`): nothing written;
 * - `cut`: headers were written but the stream stopped (the connection went away, or a read failed:
 *   then the connection was closed, `error` tells why);
 * - `gone`: the connection went away before anything was written.
 */
export type FileSendResult =
  | { kind: 'sent' | 'missing' | 'gone' }
  | { kind: 'unreadable'; error: unknown }
  | { kind: 'cut'; error?: unknown };

export async function sendFile(s: FileSend): Promise<FileSendResult> {
  let fh: FileHandle;
  try {
    fh = await open(s.file.path, 'r');
  } catch (e) {
    if (s.isAborted()) return { kind: 'gone' };
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? { kind: 'missing' } : { kind: 'unreadable', error: e };
  }
  try {
    if (s.isAborted()) return { kind: 'gone' };
    return await stream(s, fh);
  } finally {
    await fh.close().catch(() => {});
  }
}

async function stream(s: FileSend, fh: FileHandle): Promise<FileSendResult> {
  const { res, file } = s;
  const total = Math.max(0, file.end - file.start + 1);
  s.flow.hold('file');
  if (s.head || total === 0) {
    res.cork(() => {
      s.writeHead();
      s.flow.finish(true);
      res.end();
    });
    return { kind: 'sent' };
  }
  res.cork(() => s.writeHead());
  let pos = file.start;
  try {
    while (pos <= file.end) {
      const want = Math.min(FILE_CHUNK, file.end + 1 - pos);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      if (s.isAborted()) return { kind: 'cut' };
      if (bytesRead === 0) throw new Error(`${file.path} ended at byte ${pos}, before the range's end ${file.end}`);
      pos += bytesRead;
      if (!(await writeChunk(s, buf.subarray(0, bytesRead), total, pos > file.end))) return { kind: 'cut' };
    }
  } catch (error) {
    if (!s.isAborted()) res.close();
    return { kind: 'cut', error };
  }
  return { kind: 'sent' };
}

/** Hand `chunk` to uWS; resolves true once uWS took all of it, false if the connection went away. */
function writeChunk(s: FileSend, chunk: Buffer, total: number, last: boolean): Promise<boolean> {
  const { res } = s;
  return new Promise((resolve) => {
    s.onAbort(() => resolve(false));
    const offset = res.getWriteOffset();
    let ok = false;
    let done = false;
    res.cork(() => {
      if (last) s.flow.finish(true);
      [ok, done] = res.tryEnd(chunk, total);
    });
    if (ok || done) return resolve(true);
    res.onWritable((at) => {
      const [more, finished] = res.tryEnd(chunk.subarray(at - offset), total);
      if (more || finished) resolve(true);
      return more;
    });
  });
}
