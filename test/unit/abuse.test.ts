// The §20 abuse counters (src/relay/abuse.ts): a rolling 24 h in hourly buckets, only the sender's
// own refusals counted as blocked, the export bounded to the top agents. A fake clock, no waiting.

import { describe, expect, it } from 'vitest';
import { AmpError } from '../../proto/index.js';
import { AbuseCounters } from '../../src/relay/abuse.js';

const HOUR = 3600 * 1000;

describe('AbuseCounters', () => {
  it('counts over a rolling 24 h and forgets an agent whose 24 h are empty', () => {
    let now = 1_000 * HOUR;
    const c = new AbuseCounters(() => now);
    c.sent('a');
    c.refused('a', new AmpError('signature_invalid', 'x'));
    c.refused('a', new AmpError('queue_full', "not the sender's doing"));
    c.refused('a', new Error('not an AmpError'));
    now += 12 * HOUR;
    c.sent('a');
    expect(c.top()).toEqual([{ agentId: 'a', total_messages: 2, blocked: 1, quarantined: 0, flagged: 0 }]);
    now += 12 * HOUR; // the first hour has left the window
    expect(c.top()).toEqual([{ agentId: 'a', total_messages: 1, blocked: 0, quarantined: 0, flagged: 0 }]);
    now += 30 * HOUR;
    expect([c.top(), c.tracked()]).toEqual([[], 0]);
    expect(c.blockedTotal).toBe(1);
  });

  it('exports the agents with the most blocked, then sent, routes, at most `top`', () => {
    const c = new AbuseCounters(() => 0);
    for (let i = 0; i < 10; i++) for (let j = 0; j <= i; j++) c.sent(`s${i}`);
    c.refused('bad', new AmpError('forbidden', 'x'));
    expect(c.top(3).map((r) => r.agentId)).toEqual(['bad', 's9', 's8']);
  });
});
