// Loading uWebSockets.js. The npm build we use silently falls back to a slow pure-JS server when
// its native binary cannot load; we refuse to run on that fallback unless explicitly allowed.

import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

export type Uws = typeof UWS;

const require = createRequire(import.meta.url);

export interface LoadedUws {
  uws: Uws;
  native: boolean;
}

export function loadUws(allowFallback: boolean): LoadedUws {
  const uws = require('uWebSockets.js') as Uws;
  // The fallback module exports App and a few helpers only; the native addon also has SSLApp.
  const native = typeof (uws as { SSLApp?: unknown }).SSLApp === 'function';
  if (!native && !allowFallback) {
    throw new Error(
      'uWebSockets.js could not load its native binary (this build supports Node 20 on linux/darwin/win32 x64/arm64) ' +
        'and fell back to its slow pure-JS server. Refusing to start; set AMP_ALLOW_UWS_FALLBACK=true to run anyway.',
    );
  }
  return { uws, native };
}
