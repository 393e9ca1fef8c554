// The README's commands work as written from a clone: after `npm ci` the amp-relay bin is in
// node_modules/.bin, not on PATH, so every command names it through npx. The one place a bare
// `amp-relay` belongs is after a global install (blocks that run `npm install -g`, and prose that says so).
import { describe, expect, it } from 'vitest';
import { readmeBlocks, readmeText } from '../helpers/readme.js';

const COMMANDS = 'serve|print-env|check-config|keygen|admin-token|admin|signing-keys|rotate-signing-key|backup|restore';
const SUBCOMMAND = new RegExp(`(?<![\\w./-])amp-relay (?=(${COMMANDS}|version|help|--help|--version)\\b)`, 'g');

function bareUses(text: string): string[] {
  return text.split('\n').flatMap((line) => {
    const bare = [...line.matchAll(SUBCOMMAND)].filter((m) => !line.slice(0, m.index).endsWith('npx '));
    return bare.length > 0 ? [line.trim()] : [];
  });
}

describe('README commands', () => {
  it('run amp-relay through npx (outside the global install)', () => {
    const globalInstall = readmeBlocks().find((b) => b.id === 'global-install');
    expect(globalInstall, 'the README has a global-install block').toBeDefined();
    // Blocks that install the package globally first (global-install, the systemd example) may use it bare.
    let text = readmeText();
    for (const b of readmeBlocks()) if (/npm install -g/.test(b.code)) text = text.replace(b.code, '');
    const offending = bareUses(text).filter((line) => !/global install/.test(line));
    expect(offending).toEqual([]);
  });

  it('the check sees a bare amp-relay command', () => {
    const text = 'amp-relay print-env\n`npx amp-relay version`, `amp-relay keygen`\namp-relay runs on Node 20';
    expect(bareUses(text)).toEqual(['amp-relay print-env', '`npx amp-relay version`, `amp-relay keygen`']);
  });
});
