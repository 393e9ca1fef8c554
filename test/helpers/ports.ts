// A free loopback port, for child servers that must know each other's address before they start
// (mesh and federation configs name their peers' URLs). The port is released before use, so
// another process could take it meanwhile: rare on loopback, and the child then fails to start.

import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}
