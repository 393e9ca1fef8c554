// The uWS app and its listen socket: start listening, stop accepting, end every connection.

import type { TemplatedApp, us_listen_socket, us_socket } from 'uWebSockets.js';
import { loadUws, type Uws } from './uws.js';

export class HttpServer {
  readonly app: TemplatedApp;
  private readonly uws: Uws;
  private listenSocket?: us_listen_socket;

  constructor() {
    this.uws = loadUws();
    this.app = this.uws.App();
  }

  /** Listen on host:port (0: any free port); resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (token) => {
        if (!token) return reject(new Error(`cannot listen on ${host}:${port} (address in use or not available)`));
        this.listenSocket = token;
        // A listen socket is a socket; the typings keep the two apart.
        resolve(this.uws.us_socket_local_port(token as unknown as us_socket));
      });
    });
  }

  /** Stop accepting connections; open ones go on. */
  stopAccepting(): void {
    if (this.listenSocket) this.uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
  }

  /** End every open connection (and the listen socket, if still open). */
  closeAll(): void {
    // close() is missing from this build's typings.
    (this.app as unknown as { close(): void }).close();
  }
}
