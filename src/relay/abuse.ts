// The per-agent abuse counters of spec §20, over a rolling 24 h: `total_messages` (routes the agent
// sent that were accepted) and `blocked` (its routes refused for signature, policy, suspension or
// rate-limit reasons). `quarantined` and `flagged` stay 0: this provider neither quarantines nor
// flags content yet. Kept in memory (a restart starts them over), one-hour buckets.
//
// Cardinality is bounded twice: at most MAX_TRACKED_AGENTS agents are followed (new ones past it are
// not counted until others age out), and /metrics shows only the TOP_AGENTS agents with the most
// blocked, then sent, messages; agents whose 24 h are all zero are forgotten.

import { isAmpError } from '../../proto/index.js';

const HOUR_MS = 3600 * 1000;
const HOURS = 24;
export const MAX_TRACKED_AGENTS = 50_000;
export const TOP_AGENTS = 50;

/** Refusals that count as `blocked` for the sender. */
const BLOCKED_CODES = new Set([
  'signature_invalid',
  'signature_missing',
  'key_revoked',
  'agent_suspended',
  'forbidden',
  'rate_limited',
]);

interface Tally {
  /** The hour (ms / HOUR_MS) of the newest bucket. */
  hour: number;
  /** [messages x 24 | blocked x 24], bucket = hour % 24. */
  slots: Uint32Array;
}

export interface AbuseRow {
  agentId: string;
  total_messages: number;
  blocked: number;
  quarantined: number;
  flagged: number;
}

export class AbuseCounters {
  private readonly tallies = new Map<string, Tally>();
  /** Refusals of either kind since start, whatever the per-agent bound. */
  blockedTotal = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** An accepted route from `agentId`. */
  sent(agentId: string): void {
    this.add(agentId, 0);
  }

  /** A refused route from `agentId`: counted when the refusal is the sender's doing. */
  refused(agentId: string, e: unknown): void {
    if (!isAmpError(e) || !BLOCKED_CODES.has(e.code)) return;
    this.blockedTotal++;
    this.add(agentId, HOURS);
  }

  /** The agents with the most blocked, then sent, messages over the last 24 h (at most `top`). */
  top(top: number = TOP_AGENTS): AbuseRow[] {
    const hour = Math.floor(this.now() / HOUR_MS);
    const rows: AbuseRow[] = [];
    for (const [agentId, t] of this.tallies) {
      roll(t, hour);
      let total = 0;
      let blocked = 0;
      for (let i = 0; i < HOURS; i++) {
        total += t.slots[i];
        blocked += t.slots[HOURS + i];
      }
      if (total === 0 && blocked === 0) {
        this.tallies.delete(agentId);
        continue;
      }
      rows.push({ agentId, total_messages: total, blocked, quarantined: 0, flagged: 0 });
    }
    rows.sort((a, b) => b.blocked - a.blocked || b.total_messages - a.total_messages);
    return rows.slice(0, top);
  }

  /** Agents followed now. */
  tracked(): number {
    return this.tallies.size;
  }

  private add(agentId: string, offset: 0 | typeof HOURS): void {
    const hour = Math.floor(this.now() / HOUR_MS);
    let t = this.tallies.get(agentId);
    if (!t) {
      if (this.tallies.size >= MAX_TRACKED_AGENTS) return;
      t = { hour, slots: new Uint32Array(2 * HOURS) };
      this.tallies.set(agentId, t);
    }
    roll(t, hour);
    t.slots[offset + (hour % HOURS)]++;
  }
}

/** Empty the buckets of the hours between the tally's newest and `hour`. */
function roll(t: Tally, hour: number): void {
  if (hour <= t.hour) return;
  const gap = Math.min(hour - t.hour, HOURS);
  for (let i = 1; i <= gap; i++) {
    const b = (t.hour + i) % HOURS;
    t.slots[b] = 0;
    t.slots[HOURS + b] = 0;
  }
  t.hour = hour;
}
