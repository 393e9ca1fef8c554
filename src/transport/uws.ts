// Loading uWebSockets.js. The npm build we use silently falls back to a slow pure-JS server when
// its native binary cannot load. We always refuse that fallback: besides being slow, in this
// build it crashes the process on the first request (its HttpRequest.getQuery throws).

import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

export type Uws = typeof UWS;

const require = createRequire(import.meta.url);

export function loadUws(): Uws {
  const uws = require('uWebSockets.js') as Uws;
  // The fallback module exports App and a few helpers only; the native addon also has SSLApp.
  const native = typeof (uws as { SSLApp?: unknown }).SSLApp === 'function';
  if (!native) {
    throw new Error(
      'uWebSockets.js could not load its native binary (this build has binaries for Node 20 on linux/darwin/win32, ' +
        'x64/arm64; UWS_USE_FALLBACK must not be set) and fell back to its pure-JS server. Refusing to start on the fallback.',
    );
  }
  return uws;
}
