// The REST calibrator's server (issue 19): a bare uWebSockets.js HTTP handler for `POST …/route`
// that reads the whole body (as the relay does) and answers 200 with a small JSON body, nothing
// else: no auth, no parsing, no store. Run as a child process on the server's core (the runner
// pins it), it prints one JSON line `{"url": …}` once listening and runs until SIGTERM. What
// autocannon gets from it with the REST scenario's connections and body is the ceiling of an HTTP
// POST on this machine; the relay's REST route is quoted as a ratio to it.

import type { us_socket } from 'uWebSockets.js';
import { loadUws } from '../src/transport/uws.js';

const MAX_BODY = 64 * 1024;
const ANSWER = '{"ok":true}';

const uws = loadUws();
const app = uws.App();
app.post('/*', (res, req) => {
  void req;
  let size = 0;
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  res.onData((chunk, last) => {
    size += chunk.byteLength;
    if (!last || aborted) return;
    res.cork(() => {
      if (size > MAX_BODY) res.writeStatus('413 Payload Too Large').end();
      else res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end(ANSWER);
    });
  });
});
app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end();
});
app.listen('127.0.0.1', 0, (socket) => {
  if (!socket) {
    process.stderr.write('bare-http: could not listen on 127.0.0.1\n');
    process.exit(1);
  }
  const port = uws.us_socket_local_port(socket as unknown as us_socket);
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/api/v1` })}\n`);
  process.on('SIGTERM', () => {
    uws.us_listen_socket_close(socket);
    process.exit(0);
  });
});
