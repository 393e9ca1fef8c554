// Sessions and cluster presence: the first session of an agent on this node announces it online,
// the last one closing announces it offline (once each); an agent online on another node counts
// as online here; replacing the only session under a cap of 1 keeps the agent online.

import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/schema.js';
import type { ClusterPresence } from '../../src/relay/presence.js';
import { AgentSession, type Connection, Sessions } from '../../src/relay/sessions.js';
import type { AgentRecord } from '../../src/store/types.js';

class FakePresence implements ClusterPresence {
  readonly said: Array<[string, boolean]> = [];
  readonly elsewhere = new Set<string>();
  announce(agentId: string, online: boolean): void {
    this.said.push([agentId, online]);
  }
  onlineElsewhere(agentId: string): boolean {
    return this.elsewhere.has(agentId);
  }
  countElsewhere(skip: (agentId: string) => boolean): number {
    return [...this.elsewhere].filter((a) => !skip(a)).length;
  }
}

const conn = (): Connection & { closedWith?: number } => {
  const c: Connection & { closedWith?: number } = {
    send: () => 'sent',
    bufferedBytes: () => 0,
    ping: () => {},
    close: (code) => {
      c.closedWith = code;
    },
  };
  return c;
};

const agent = (id: string) => ({ id }) as AgentRecord;
const session = (id: string) => new AgentSession(`s-${Math.random()}`, agent(id), conn(), 'amp.v1', undefined);

function setup(wsMaxSessions = 8) {
  const presence = new FakePresence();
  const sessions = new Sessions(loadConfig({ env: {}, overrides: { wsMaxSessions } }), presence);
  return { presence, sessions };
}

describe('Sessions with cluster presence', () => {
  it('announces an agent online at its first session and offline when its last one goes', () => {
    const { presence, sessions } = setup();
    const a = session('a1');
    const b = session('a1');
    sessions.add(a);
    sessions.add(b);
    sessions.remove(a);
    expect(presence.said).toEqual([['a1', true]]);
    sessions.close(b, 1000, 'bye');
    expect(presence.said).toEqual([
      ['a1', true],
      ['a1', false],
    ]);
  });

  it('counts agents online elsewhere once, those also online here not twice', () => {
    const { presence, sessions } = setup();
    presence.elsewhere.add('a1').add('a2');
    sessions.add(session('a1'));
    sessions.add(session('a3'));
    expect(sessions.isOnline('a2')).toBe(true);
    expect(sessions.isOnline('a4')).toBe(false);
    expect(sessions.onlineAgents()).toBe(3);
    expect(sessions.localOnlineAgents()).toBe(2);
  });

  it('a new session replacing the only one under a cap of 1 keeps the agent online', () => {
    const { presence, sessions } = setup(1);
    const first = session('a1');
    sessions.add(first);
    const second = session('a1');
    sessions.add(second);
    expect((first.conn as { closedWith?: number }).closedWith).toBe(4009);
    expect(sessions.isOnline('a1')).toBe(true);
    expect([...sessions.of('a1')]).toEqual([second]);
    expect(presence.said.at(-1)).toEqual(['a1', true]);
  });
});
