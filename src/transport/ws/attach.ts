// WebSocket endpoints `/v1/ws` and `/api/v1/ws` on the uWS app (spec §17). The upgrade is decided
// synchronously: credentials in the URL are refused, an Authorization header is checked before
// the socket opens, and the first supported subprotocol is picked.

import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import {
  AmpError,
  MAX_WS_FRAME_BYTES,
  SUBPROTOCOL_JSON,
  WS_PATHS,
  isAmpError,
  pickSubprotocol,
} from '../../../proto/index.js';
import type { Config } from '../../config/schema.js';
import type { Agents } from '../../relay/agents.js';
import type { Inbox } from '../../relay/inbox.js';
import type { Presence } from '../../relay/presence.js';
import type { MessageRouter } from '../../relay/route.js';
import type { Store } from '../../store/types.js';
import { errorReply, statusLine, type InFlight } from '../http/respond.js';
import { enforce, type RateLimits } from '../../relay/ratelimit.js';
import { WsSocket, type UserData } from './socket.js';

export interface WsDeps {
  config: Config;
  logger: Logger;
  store: Store;
  agents: Agents;
  router: MessageRouter;
  inbox: Inbox;
  presence: Presence;
  inFlight: InFlight;
  isClosing: () => boolean;
  limits: RateLimits;
}

const URL_CREDENTIALS_RE = /(?:^|&)(?:token|api_key|key)=/i;

function refuseUpgrade(res: HttpResponse, e: AmpError, corsOrigin: string): void {
  const reply = errorReply(e);
  res.writeStatus(statusLine(reply.status));
  res.writeHeader('Access-Control-Allow-Origin', corsOrigin);
  res.writeHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(reply.headers ?? {})) res.writeHeader(k, v);
  res.writeHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(reply.body), true);
}

export function attachWebSockets(app: TemplatedApp, deps: WsDeps): void {
  for (const path of WS_PATHS) {
    app.ws<UserData>(path, {
      compression: 0,
      // uWS drops an oversized frame's connection without a close frame; with headroom here the
      // socket sees the frame and closes with 1009 itself (§8.3). Beyond this, uWS drops it.
      maxPayloadLength: 2 * MAX_WS_FRAME_BYTES,
      // uWS drops sends above this; the relay pauses pushes long before (soft limit) and closes
      // slow consumers at this hard limit, so only control frames could ever reach it.
      maxBackpressure: deps.config.wsHardBuffer,
      closeOnBackpressureLimit: 0,
      // Idle handling is ours (close code 4502 and protocol pings from Presence.sweep).
      idleTimeout: 0,
      sendPingsAutomatically: false,

      upgrade: (res, req, context) => {
        const query = req.getQuery() ?? '';
        const key = req.getHeader('sec-websocket-key');
        const offered = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const authorization = req.getHeader('authorization');
        const xApiKey = req.getHeader('x-api-key');
        const ip = Buffer.from(res.getRemoteAddressAsText()).toString('utf8');
        try {
          enforce(deps.limits.takeForIp('ws_connect', ip), 'ip');
          if (deps.isClosing())
            throw new AmpError('service_unavailable', 'The server is shutting down; reconnect shortly', {
              retryAfter: 1,
            });
          if (URL_CREDENTIALS_RE.test(query)) {
            throw new AmpError(
              'invalid_request',
              'Credentials in the URL are refused; send Authorization: Bearer or an auth frame',
            );
          }
          let pre: UserData['pre'];
          if (authorization || xApiKey) {
            pre = deps.agents.authenticateKey(authorization, xApiKey);
            if (pre.agent.status === 'suspended') throw new AmpError('agent_suspended', 'This agent is suspended');
          }
          const protocol = pickSubprotocol(offered);
          res.upgrade<UserData>(
            { protocol: protocol ?? SUBPROTOCOL_JSON, pre },
            key,
            protocol ?? '',
            extensions,
            context,
          );
        } catch (e) {
          if (!isAmpError(e)) deps.logger.error({ err: e }, 'websocket upgrade failed');
          refuseUpgrade(
            res,
            isAmpError(e) ? e : new AmpError('internal_error', 'Internal server error'),
            deps.config.corsOrigin,
          );
        }
      },

      open: (ws) => {
        const data = ws.getUserData();
        data.socket = new WsSocket(ws, deps, data.protocol);
        data.socket.onOpen(data.pre);
        data.pre = undefined;
      },
      message: (ws, message, isBinary) => {
        try {
          ws.getUserData().socket?.onMessage(message, isBinary);
        } catch (e) {
          deps.logger.error({ err: e }, 'websocket message handler failed');
        }
      },
      // Writing from inside uWS's drain callback can leave large frames stuck in its buffer with
      // no further drain event; resume pushes on the next turn instead.
      drain: (ws) => {
        const socket = ws.getUserData().socket;
        if (socket) setImmediate(() => socket.onDrain());
      },
      // Protocol pings and pongs both count as inbound traffic for the idle timeout.
      ping: (ws) => ws.getUserData().socket?.onPong(),
      pong: (ws) => ws.getUserData().socket?.onPong(),
      close: (ws) => ws.getUserData().socket?.onClose(),
    });
  }
}
