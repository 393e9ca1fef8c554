// WebSocket endpoints `/v1/ws` and `/api/v1/ws` on the uWS app (spec §17). The relay's gateway
// decides each upgrade synchronously and opens the protocol session; this file carries bytes and
// events between uWS and it.

import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { AmpError, isAmpError, MAX_WS_FRAME_BYTES, WS_PATHS } from '../../../proto/index.js';
import type { WsGateway } from '../../relay/ws-gateway.js';
import { errorReply, statusLine } from '../http/respond.js';
import { type BufferLimits, type UserData, WsConnection } from './connection.js';

/** The reason uWS gives (with 1006) when it failed a connection over a text frame that is not UTF-8. */
const UWS_INVALID_UTF8 = 'Received invalid UTF-8';

export interface WsOptions {
  gateway: WsGateway;
  logger: Logger;
  corsOrigin: string;
  buffers: BufferLimits;
}

function refuseUpgrade(res: HttpResponse, e: AmpError, corsOrigin: string): void {
  const reply = errorReply(e);
  res.writeStatus(statusLine(reply.status));
  res.writeHeader('Access-Control-Allow-Origin', corsOrigin);
  res.writeHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(reply.headers ?? {})) res.writeHeader(k, v);
  res.writeHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(reply.body), true);
}

export function attachWebSockets(app: TemplatedApp, opts: WsOptions): void {
  for (const path of WS_PATHS) {
    app.ws<UserData>(path, {
      compression: 0,
      // uWS drops an oversized frame's connection without a close frame; with headroom here the
      // session sees the frame and closes with 1009 itself (§8.3). Beyond this, uWS drops it.
      maxPayloadLength: 2 * MAX_WS_FRAME_BYTES,
      // uWS drops sends above this; the relay pauses pushes long before (soft limit) and closes
      // slow consumers at this hard limit, so only control frames could ever reach it.
      maxBackpressure: opts.buffers.hardBytes,
      closeOnBackpressureLimit: 0,
      // Idle handling is the relay's (close code 4502 and protocol pings from Sessions.sweep).
      idleTimeout: 0,
      sendPingsAutomatically: false,
      upgrade: (res, req, context) => upgrade(opts, res, req, context),
      open: (ws) => {
        const data = ws.getUserData();
        const conn = new WsConnection(ws, opts.buffers, data.accepted.binary);
        data.conn = conn;
        // Wired before it starts: starting can send, and a send can close the socket.
        conn.events = opts.gateway.open(conn, data.accepted);
        data.accepted.pre = undefined;
        conn.events.start();
      },
      message: (ws, message, isBinary) => {
        try {
          // A view, not a copy: the session decodes it before this callback returns.
          ws.getUserData().conn?.events?.message(new Uint8Array(message), isBinary);
        } catch (e) {
          opts.logger.error({ err: e }, 'websocket message handler failed');
        }
      },
      // Writing from inside uWS's drain callback can leave large frames stuck in its buffer with
      // no further drain event; resume pushes on the next turn instead.
      drain: (ws) => {
        const conn = ws.getUserData().conn;
        if (conn) setImmediate(() => conn.drained());
      },
      // Protocol pings and pongs both count as inbound traffic for the idle timeout.
      ping: (ws) => ws.getUserData().conn?.events?.pong(),
      pong: (ws) => ws.getUserData().conn?.events?.pong(),
      // uWS validates text frames as UTF-8 itself, before `message` could see one, and on a bad one
      // ends the TCP connection at once (no close frame, so no 1007 either; nothing can be written
      // by then) and reports 1006 with this reason. Said to the session as what it is.
      close: (ws, code, message) => {
        const invalidUtf8 = code === 1006 && Buffer.from(message).toString('latin1') === UWS_INVALID_UTF8;
        ws.getUserData().conn?.ended(invalidUtf8 ? 'invalid_utf8' : undefined, code);
      },
    });
  }
}

type UpgradeArgs = Parameters<NonNullable<Parameters<TemplatedApp['ws']>[1]['upgrade']>>;

/** Headers are copied synchronously: the uWS request is invalid once this returns. */
function upgrade(opts: WsOptions, res: HttpResponse, req: UpgradeArgs[1], context: UpgradeArgs[2]): void {
  const key = req.getHeader('sec-websocket-key');
  const extensions = req.getHeader('sec-websocket-extensions');
  try {
    const accepted = opts.gateway.accept({
      query: req.getQuery() ?? '',
      offeredProtocols: req.getHeader('sec-websocket-protocol'),
      authorization: req.getHeader('authorization'),
      xApiKey: req.getHeader('x-api-key'),
      ip: Buffer.from(res.getRemoteAddressAsText()).toString('utf8'),
    });
    res.upgrade<UserData>({ accepted }, key, accepted.answer, extensions, context);
  } catch (e) {
    if (!isAmpError(e)) opts.logger.error({ err: e }, 'websocket upgrade failed');
    refuseUpgrade(res, isAmpError(e) ? e : new AmpError('internal_error', 'Internal server error'), opts.corsOrigin);
  }
}
