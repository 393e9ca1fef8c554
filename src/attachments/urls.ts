// Signed URLs, the credentials of the two requests that carry no API key: the single-use upload
// URL (PUT, valid for an hour) and an attachment's download URL (`url`, valid while the attachment
// lives, which is 7 days after its message was routed). HMAC-SHA256 with a secret derived from the
// provider key; compared in constant time.

import { AmpError } from '../../proto/index.js';
import { hmacSha256, safeEqual } from '../crypto/hash.js';

export class UrlSigner {
  constructor(private readonly secret: Buffer) {}

  uploadQuery(id: string, expS: number): string {
    return `exp=${expS}&sig=${hmacSha256(this.secret, `upload\n${id}\n${expS}`)}`;
  }

  fileQuery(id: string): string {
    return `sig=${hmacSha256(this.secret, `file\n${id}`)}`;
  }

  /** The upload URL's signature and expiry: 403 `upload_url_invalid`, 410 `upload_url_expired`. */
  checkUpload(id: string, query: URLSearchParams, nowMs: number): void {
    const exp = query.get('exp') ?? '';
    const sig = query.get('sig') ?? '';
    const good = /^[0-9]{1,12}$/.test(exp) && safeEqual(sig, hmacSha256(this.secret, `upload\n${id}\n${exp}`));
    if (!good)
      throw new AmpError(
        'upload_url_invalid',
        'This upload URL is not valid: use the upload_url from attachments/upload',
      );
    if (Number(exp) * 1000 <= nowMs)
      throw new AmpError('upload_url_expired', 'This upload URL has expired; start again with attachments/upload');
  }

  /** A download URL's signature; a bad one answers as an unknown attachment (it reveals nothing). */
  checkFile(id: string, query: URLSearchParams): void {
    if (!safeEqual(query.get('sig') ?? '', hmacSha256(this.secret, `file\n${id}`)))
      throw new AmpError('attachment_not_found', 'No such attachment (or the URL is not valid)');
  }
}
