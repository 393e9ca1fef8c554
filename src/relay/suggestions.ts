// Free alternatives for a taken agent name (§4.2): `<name>-<n>` and `<name>-<adjective>-<noun>`.

import { randomInt } from '../crypto/random.js';

const ADJECTIVES = ['cosmic', 'stellar', 'swift', 'quiet', 'bright', 'lunar', 'amber', 'silver', 'brave', 'clever'];
const NOUNS = ['panda', 'wolf', 'falcon', 'otter', 'lynx', 'heron', 'comet', 'maple', 'badger', 'raven'];
const MAX_NAME = 63;

function fitName(base: string, suffix: string): string {
  return base.slice(0, MAX_NAME - suffix.length).replace(/[-_]+$/, '') + suffix;
}

/** Up to three names for which `isFree` holds. Bounded: at most 40 candidates are tried. */
export function nameSuggestions(name: string, isFree: (n: string) => boolean): string[] {
  const out: string[] = [];
  for (let n = 2; n < 20 && out.length < 1; n++) {
    const c = fitName(name, `-${n}`);
    if (isFree(c)) out.push(c);
  }
  for (let tries = 0; tries < 20 && out.length < 3; tries++) {
    const c = fitName(name, `-${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}`);
    if (!out.includes(c) && isFree(c)) out.push(c);
  }
  return out;
}
