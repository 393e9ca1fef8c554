// The webhook URL at registration and update (spec §4, §7.1, §18): the SSRF rules, with
// AMP_WEBHOOK_ALLOW_HOSTS as the exemptions; a refusal is 400 invalid_field `delivery.webhook_url`.

import { invalidField } from '../../proto/index.js';
import { type AllowList, checkUrl, parseAllowList, UrlRefusedError } from '../outbound/index.js';

/** The allow list of AMP_WEBHOOK_ALLOW_HOSTS (config checked its entries at start). */
export function webhookAllowList(entries: readonly string[]): AllowList {
  return parseAllowList(entries).allow;
}

/** At registration and update: the SSRF rules, or 400 invalid_field `delivery.webhook_url`. */
export async function checkWebhookUrl(url: string, allow: AllowList): Promise<void> {
  try {
    await checkUrl(url, allow);
  } catch (e) {
    if (!(e instanceof UrlRefusedError)) throw e;
    throw invalidField('delivery.webhook_url', `webhook_url refused: ${e.message}`);
  }
}
