// The webhook URL at registration and update (spec §4, §7.1, §18): the SSRF rules, with
// AMP_WEBHOOK_ALLOW_HOSTS as the exemptions; a refusal is 400 invalid_field `delivery.webhook_url`.

import { isIP } from 'node:net';
import { invalidField } from '../../proto/index.js';
import { type AllowList, checkUrl, parseAllowList, UrlRefusedError } from '../outbound/index.js';

/** The allow list of AMP_WEBHOOK_ALLOW_HOSTS (config checked its entries at start). */
export function webhookAllowList(entries: readonly string[]): AllowList {
  return parseAllowList(entries).allow;
}

/**
 * At registration and update: the SSRF rules, or 400 invalid_field `delivery.webhook_url`. The
 * message names the rule that refused the URL, never what its name resolved to (no DNS oracle).
 */
export async function checkWebhookUrl(url: string, allow: AllowList): Promise<void> {
  try {
    await checkUrl(url, allow);
  } catch (e) {
    if (!(e instanceof UrlRefusedError)) throw e;
    throw invalidField('delivery.webhook_url', `webhook_url refused: ${publicReason(e)}`);
  }
}

/** The refusal in words about the URL as written: an IP literal keeps its range, a name says no more. */
function publicReason(e: UrlRefusedError): string {
  const host = hostOf(e.url);
  if (e.reason === 'unresolvable') return host ? `'${host}' does not resolve` : 'the host does not resolve';
  if (e.reason !== 'refused_address' || (host && isIP(host))) return e.message;
  return 'the host is a name for a private, loopback, link-local or otherwise reserved address';
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return undefined;
  }
}
