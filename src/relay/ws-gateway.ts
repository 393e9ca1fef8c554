// Who may open a WebSocket session (spec §17.1), decided at the upgrade: the connection rate per
// IP, credentials in the URL refused, an Authorization header checked before the socket opens, the
// first supported subprotocol picked. Then each open socket gets its protocol session.

import {
  AmpError,
  pickSubprotocol,
  SUBPROTOCOL_JSON,
  SUBPROTOCOL_MSGPACK,
  type Subprotocol,
} from '../../proto/index.js';
import type { AgentRecord } from '../store/types.js';
import { enforce } from './ratelimit.js';
import type { Connection } from './sessions.js';
import { effectiveStatus } from './suspension.js';
import { type ConnectionEvents, type SessionDeps, WsSession } from './ws-session.js';

const URL_CREDENTIALS_RE = /(?:^|&)(?:token|api_key|key)=/i;

/** What the transport copies out of the upgrade request. */
export interface UpgradeRequest {
  query: string;
  offeredProtocols: string;
  authorization: string;
  xApiKey: string;
  ip: string;
}

/** An accepted upgrade: the subprotocol to answer with ('' for none) and how to open the session. */
export interface AcceptedUpgrade {
  /** Sec-WebSocket-Protocol to answer with; '' when the client offered none we speak. */
  answer: string;
  protocol: Subprotocol;
  /** Frames go as MessagePack binary frames. */
  binary: boolean;
  /** Set when the upgrade carried a valid Authorization header. */
  pre?: { agent: AgentRecord; keyHash: string };
}

export class WsGateway {
  constructor(
    private readonly deps: SessionDeps,
    private readonly isClosing: () => boolean,
  ) {}

  /** Decide an upgrade; a refusal throws the AmpError to answer with. */
  accept(req: UpgradeRequest): AcceptedUpgrade {
    enforce(this.deps.limits.takeForIp('ws_connect', req.ip), 'ip');
    if (this.isClosing()) {
      throw new AmpError('service_unavailable', 'The server is shutting down; reconnect shortly', { retryAfter: 1 });
    }
    if (URL_CREDENTIALS_RE.test(req.query)) {
      throw new AmpError(
        'invalid_request',
        'Credentials in the URL are refused; send Authorization: Bearer or an auth frame',
      );
    }
    let pre: AcceptedUpgrade['pre'];
    if (req.authorization || req.xApiKey) {
      pre = this.deps.agents.authenticateKey(req.authorization, req.xApiKey);
      if (effectiveStatus(pre.agent, Date.now()) === 'suspended')
        throw new AmpError('agent_suspended', 'This agent is suspended');
    }
    const picked = pickSubprotocol(req.offeredProtocols);
    const protocol = picked ?? SUBPROTOCOL_JSON;
    return { answer: picked ?? '', protocol, binary: protocol === SUBPROTOCOL_MSGPACK, pre };
  }

  /** The socket is open: its protocol session, to be started once the transport has wired it. */
  open(conn: Connection, accepted: AcceptedUpgrade): ConnectionEvents {
    return new WsSession(conn, this.deps, accepted.protocol, accepted.pre);
  }
}
