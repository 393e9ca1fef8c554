// The uWS app and its listen socket: start listening, stop accepting, end every connection.

import type { TemplatedApp, us_listen_socket, us_socket } from 'uWebSockets.js';
import { loadUws, type Uws } from './uws.js';

/** LIBUS_LISTEN_EXCLUSIVE_PORT: the native addon exports it (1, as `ListenOptions` in its typings). */
function exclusivePort(uws: Uws): number {
  return (uws as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT?: number }).LIBUS_LISTEN_EXCLUSIVE_PORT ?? 1;
}

/** The port could not be taken. */
export class ListenError extends Error {
  override name = 'ListenError';
}

/** Certificate and key files for HTTPS/WSS (checked beforehand: config/tls.ts). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  passphrase?: string;
}

export class HttpServer {
  readonly app: TemplatedApp;
  /** 'https' when serving TLS (uWS's SSLApp): URLs given out say https and wss. */
  readonly scheme: 'http' | 'https';
  private readonly uws: Uws;
  private listenSocket?: us_listen_socket;

  constructor(tls?: TlsFiles) {
    this.uws = loadUws();
    this.scheme = tls ? 'https' : 'http';
    this.app = tls ? this.sslApp(tls) : this.uws.App();
  }

  private sslApp(tls: TlsFiles): TemplatedApp {
    try {
      return this.uws.SSLApp({
        cert_file_name: tls.certFile,
        key_file_name: tls.keyFile,
        ...(tls.passphrase ? { passphrase: tls.passphrase } : {}),
      });
    } catch (e) {
      // uWS says only "App construction failed"; the files were checked, so this is rare.
      throw new ListenError(
        `cannot start TLS with certificate ${tls.certFile} and key ${tls.keyFile}: ${(e as Error).message}`,
      );
    }
  }

  /**
   * Listen on host:port (0: any free port); resolves with the bound port. The port is taken
   * exclusively: uWS otherwise sets SO_REUSEPORT, and a second server on the same port would start
   * and share the connections (each with its own in-memory state).
   */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      // The native listen takes (host, port, options, cb); this build's typings lack that overload.
      const listen = this.app.listen as unknown as (
        host: string,
        port: number,
        options: number,
        cb: (token: us_listen_socket | false) => void,
      ) => TemplatedApp;
      listen.call(this.app, host, port, exclusivePort(this.uws), (token) => {
        if (!token) {
          this.closeAll(); // nothing else will use this app
          return reject(
            new ListenError(
              `cannot listen on ${host}:${port}: the address is in use (another server?) or not available`,
            ),
          );
        }
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
