// The config commands of the real bin (issue 14): no EPIPE stack when a pipe closes early, print-env
// as an env file that sh, bash, systemd's parser and docker read back, unknown AMP_* / AID_*
// variables (check-config fails, serve warns), and check-config's host and data-dir checks.
// Every run is `node bin/amp-relay.js` (the built CLI) in a temp dir with only PATH in its env.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { CLIENT_ENV } from '../../src/config/unknown-env.js';
import { OPTIONS } from '../../src/config/schema.js';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import { readmeBlock } from '../helpers/readme.js';
import { ROOT, tempDir } from '../helpers/server.js';

const BIN = join(ROOT, 'bin', 'amp-relay.js');
const RUN_TIMEOUT_MS = 20_000;
const root = tempDir('amp-cfgcli-');
/** Undone before the temp dir is removed (a mount, a mode), whichever tests ran. */
const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const undo of cleanups.reverse()) undo();
  rmSync(root, { recursive: true, force: true });
});

let dirs = 0;
const freshDir = () => {
  const d = join(root, `d${dirs++}`);
  mkdirSync(d);
  return d;
};

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** A temp HOME, so no rc file of this machine's user runs (bash reads ~/.bashrc in some set-ups). */
const baseEnv = (env: Record<string, string>) => ({
  PATH: process.env.PATH ?? '',
  HOME: root,
  NODE: process.execPath,
  BIN,
  ...env,
});

function cli(args: string[], env: Record<string, string> = {}, cwd = root): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    env: baseEnv(env),
    encoding: 'utf8',
    timeout: RUN_TIMEOUT_MS,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function shell(sh: 'bash' | 'sh', script: string, env: Record<string, string> = {}, cwd = root): Run {
  const r = spawnSync(sh, ['-c', script], { cwd, env: baseEnv(env), encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('a reader that closes the pipe early', () => {
  const commands = [
    ['keygen'],
    ['print-env'],
    ['help'],
    ['serve', '--help'],
    ['version'],
    ['signing-keys', '--data-dir', 'DATA'],
  ];
  // `true` closes its end before node has started, so the first write meets EPIPE every time;
  // `head -n 1` is the everyday case.
  for (const reader of ['true', 'head -n 1'])
    it.each(commands.map((c) => [c.join(' '), c]))(`%s | ${reader}: no stack trace, status 0`, async (_, args) => {
      // signing-keys lists the keys of a data dir a server has used: one with a key set.
      const keyed = async () => {
        const dir = freshDir();
        await SigningKeys.load(dir, 'RS256');
        return dir;
      };
      const argv = (await Promise.all(args.map((a) => (a === 'DATA' ? keyed() : a)))).join(' ');
      const r = shell(
        'bash',
        `set -o pipefail; "$NODE" "$BIN" ${argv} | ${reader} >/dev/null; echo "\${PIPESTATUS[*]}"`,
      );
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('0 0\n');
    });
});

describe("a reader that closes the pipe early keeps the command's exit code", () => {
  // `admin` alone prints its help on stdout and exits 2 (a usage error): the closed pipe must not make it 0.
  for (const reader of ['true', 'head -n 1'])
    it(`admin | ${reader}: status 2, no stack trace`, () => {
      const r = shell('bash', `"$NODE" "$BIN" admin | ${reader} >/dev/null; echo "\${PIPESTATUS[*]}"`);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('2 0\n');
    });
});

describe("every command's --help / -h prints its usage on stdout, exit 0", () => {
  const commands = [
    'serve',
    'print-env',
    'check-config',
    'keygen',
    'admin-token',
    'admin',
    'signing-keys',
    'rotate-signing-key',
    'backup',
    'restore',
    'version',
    'help',
  ];
  for (const flag of ['--help', '-h'])
    it.each(commands)(`%s ${flag}`, (cmd) => {
      // In a dir with no data dir: a command that ran instead of helping would fail or create one.
      const dir = freshDir();
      const r = cli([cmd, flag], {}, dir);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/usage/i);
      expect(r.stdout).toContain(`amp-relay ${cmd}`);
      expect(r.stdout).not.toContain('PRIVATE KEY');
      expect(readdirSync(dir)).toEqual([]);
    });

  it("help wins over other arguments, and the text is that command's", () => {
    const r = cli(['restore', '/some/backup', '--force', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('amp-relay restore DIR [--force]');
    expect(r.stdout).not.toContain('amp-relay backup DIR');
    expect(r.stdout).toContain('--data-dir');
    const k = cli(['keygen', '-h']);
    expect(k.stdout).not.toContain('--data-dir'); // keygen takes no options
  });
});

/** Settings that need quoting in an env file, and plain ones that must not be quoted (docker reads them). */
const TRICKY = {
  AMP_CONTACT: 'Ops "team" <ops@example.com>, it\'s $HOME `id` \\ ~ #1 ',
  AMP_REGISTRATION_MODE: 'key',
  AMP_REGISTRATION_KEYS: 'acme:s3cret & $PATH key,*:another-key-of-16+',
};
const PLAIN = {
  AMP_PORT: '8080',
  AMP_PUBLIC_URL: 'https://amp.example.com/relay',
  AMP_PROVIDER_ALIASES: 'a.example,b.example',
  AMP_RATE_LIMIT_OVERRIDES: 'route=100/min,register=5/min',
};

/** `print-env` of these settings, written to amp.env in a fresh dir. */
function printEnvFile(env: Record<string, string>): { dir: string; text: string } {
  const dir = freshDir();
  const r = cli(['print-env'], env, dir);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  writeFileSync(join(dir, 'amp.env'), r.stdout);
  return { dir, text: r.stdout };
}

/** `env -0` output as a map. */
const parseEnv0 = (out: string) =>
  new Map(
    out
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );

/** docker --env-file: KEY=value lines taken literally, # lines and blank lines skipped. */
const dockerParse = (text: string) =>
  new Map(
    text
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );

describe('print-env', () => {
  it('writes each comment on its own line above NAME=value, never after a value', () => {
    const { text } = printEnvFile(PLAIN);
    const lines = text.trimEnd().split('\n');
    expect(text).not.toContain('\t');
    const settings = lines.filter((l) => l !== '' && !l.startsWith('#'));
    expect(settings.map((l) => l.slice(0, l.indexOf('=')))).toEqual(Object.values(OPTIONS).map((o) => o.env));
    for (const l of settings) expect(l).toMatch(/^[A-Z][A-Z0-9_]*=(\S*|".*")$/);
    for (let i = 0; i < lines.length; i++) if (/^[A-Z]/.test(lines[i])) expect(lines[i - 1]).toMatch(/^# \S/);
  });

  for (const sh of ['bash', 'sh'] as const)
    it(`reads back through ${sh}: set -a; . ./amp.env gives the same settings`, () => {
      const { dir, text } = printEnvFile({ ...TRICKY, ...PLAIN });
      const again = shell(sh, 'set -a; . ./amp.env; exec "$NODE" "$BIN" print-env', {}, dir);
      expect(again.stderr).toBe('');
      expect(again.stdout).toBe(text);
      const vars = parseEnv0(shell(sh, 'set -a; . ./amp.env; env -0', {}, dir).stdout);
      for (const [k, v] of Object.entries({ ...TRICKY, ...PLAIN })) expect(vars.get(k), k).toBe(v);
    });

  it('docker --env-file style: plain values are bare, so a parser without quote handling reads them', () => {
    const { dir, text } = printEnvFile({ ...TRICKY, ...PLAIN });
    const docker = dockerParse(text);
    const shellVars = parseEnv0(shell('bash', 'set -a; . ./amp.env; env -0', {}, dir).stdout);
    const quoted = [...docker].filter(([, v]) => v.startsWith('"')).map(([k]) => k);
    expect(quoted.sort()).toEqual(['AMP_CONTACT', 'AMP_REGISTRATION_KEYS']);
    for (const [k, v] of docker) if (!quoted.includes(k)) expect(v, k).toBe(shellVars.get(k));
    for (const [k, v] of Object.entries(PLAIN)) expect(docker.get(k), k).toBe(v);
    expect(docker.get('AMP_CORS_ORIGIN')).toBe('*');
  });

  // systemd's env-file parser, run by its environment.d generator: the same parser as
  // EnvironmentFile=, but the generator then expands $VAR and refuses empty values, which
  // EnvironmentFile= does not. So: no $ in these values, and the empty settings left out.
  const GENERATOR = '/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator';
  it.skipIf(!existsSync(GENERATOR))('reads back through systemd’s env-file parser', () => {
    const noDollar = {
      ...PLAIN,
      AMP_CONTACT: 'Ops "team" <ops@example.com>, it\'s `id` \\ ~ #1 ',
      AMP_REGISTRATION_MODE: 'key',
      AMP_REGISTRATION_KEYS: "acme:s3cret & 'key' \\n,*:another-key-of-16+",
    };
    const { dir, text } = printEnvFile(noDollar);
    const home = join(dir, 'home');
    mkdirSync(join(home, '.config', 'environment.d'), { recursive: true });
    const withoutEmpty = text.split('\n').filter((l) => !/^[A-Z0-9_]+=$/.test(l));
    writeFileSync(join(home, '.config', 'environment.d', '50-amp.conf'), withoutEmpty.join('\n'));
    const parsed = execFileSync(GENERATOR, { env: { HOME: home }, encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
    // The generator prints shell assignments; the shell only undoes systemd's quoting of them.
    writeFileSync(join(dir, 'systemd.env'), parsed);
    const again = shell('bash', 'set -a; . ./systemd.env; exec "$NODE" "$BIN" print-env', {}, dir);
    expect(again.stderr).toBe('');
    expect(again.stdout).toBe(text);
  });
});

describe('unknown AMP_* / AID_* variables', () => {
  it('check-config fails on each, with the closest name', () => {
    const r = cli(['check-config', '--data-dir', freshDir()], {
      AMP_PROT: '1',
      AID_JWT_ALGO: 'EdDSA',
      AMP_ZZZZZZZZ: 'x',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('AMP_PROT is not a setting (did you mean AMP_PORT?)');
    expect(r.stderr).toContain('AID_JWT_ALGO is not a setting (did you mean AID_JWT_ALG?)');
    expect(r.stderr).toMatch(/AMP_ZZZZZZZZ is not a setting\n/);
  });

  it('check-config accepts every setting and the variables the clients, tests and bench read', () => {
    const env: Record<string, string> = Object.fromEntries(CLIENT_ENV.map((n) => [n, 'x']));
    for (const line of printEnvFile({}).text.split('\n')) {
      const m = /^([A-Z0-9_]+)=(.+)$/.exec(line);
      if (m) env[m[1]] = m[2];
    }
    env.AMP_DATA_DIR = join(freshDir(), 'data');
    const r = cli(['check-config'], env);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('configuration is valid\n');
    expect(r.status).toBe(0);
  });

  it('every AMP_* / AID_* variable that src/, scripts/, test/ and bench/ read from the environment is known', () => {
    const known = new Set([...CLIENT_ENV, ...Object.values(OPTIONS).map((o) => o.env)]);
    const read = new Set<string>();
    const scan = (dir: string, re: RegExp) => {
      for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })) {
        if (!e.isFile() || !/\.(sh|ts|mjs|js)$/.test(e.name)) continue;
        for (const m of readFileSync(join(e.parentPath, e.name), 'utf8').matchAll(re)) read.add(m[1]);
      }
    };
    for (const dir of ['scripts', 'test']) scan(dir, /\$\{((?:AMP|AID)_[A-Z0-9_]+):?[-=?+]/g); // ${NAME:-default} reads NAME
    for (const dir of ['src', 'test', 'bench', 'scripts']) scan(dir, /process\.env\.((?:AMP|AID)_[A-Z0-9_]+)/g);
    expect(read.size).toBeGreaterThan(0);
    expect([...read].filter((n) => !known.has(n))).toEqual([]);
  });

  it('serve logs a warning naming the variable and the closest name, and ignores client variables', async () => {
    const dataDir = freshDir();
    const args = [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir];
    const proc = spawn(process.execPath, args, {
      cwd: root,
      env: baseEnv({ AMP_PROT: '1', AMP_DIR: '/nowhere', AMP_PROVIDER: 'http://x' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const records: { level?: number; msg?: string; variable?: string; suggestion?: string }[] = [];
    const exited = new Promise<number | string>((res) => proc.on('exit', (c, s) => res(c ?? s ?? -1)));
    const warned = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no warning within ${RUN_TIMEOUT_MS} ms`)), RUN_TIMEOUT_MS);
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        records.push(JSON.parse(line));
        if (records.at(-1)!.variable === 'AMP_PROT') {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then(() => reject(new Error('server exited before warning')));
    });
    try {
      await warned;
    } finally {
      proc.kill('SIGTERM');
      await exited;
    }
    const warning = records.find((r) => r.variable === 'AMP_PROT')!;
    expect(warning).toMatchObject({ level: 40, suggestion: 'AMP_PORT' });
    expect(warning.msg).toBe('AMP_PROT is not a setting (did you mean AMP_PORT?): ignored');
    expect(records.some((r) => r.msg === 'listening')).toBe(true);
    expect(JSON.stringify(records)).not.toMatch(/AMP_DIR|AMP_PROVIDER\b/);
  });
});

describe('check-config: host and data dir', () => {
  it('refuses host 999.1.1.1, naming the flag or the variable it came from', () => {
    const dir = freshDir();
    const byFlag = cli(['check-config', '--data-dir', dir, '--host', '999.1.1.1']);
    expect(byFlag.status).toBe(2);
    expect(byFlag.stderr).toMatch(/--host is not a valid IPv4 address: four numbers 0-255 \(got '999\.1\.1\.1'\)/);
    const byEnv = cli(['check-config', '--data-dir', dir], { AMP_HOST: '999.1.1.1' });
    expect(byEnv.status).toBe(2);
    expect(byEnv.stderr).toMatch(/AMP_HOST is not a valid IPv4 address/);
    for (const host of ['127.0.0.1', '::1', 'localhost'])
      expect(cli(['check-config', '--data-dir', dir, '--host', host]).status).toBe(0);
  });

  it('names --port or AMP_PORT, whichever the bad value came from', () => {
    const byFlag = cli(['check-config', '--port', 'abc']);
    expect(byFlag.stderr).toContain("--port: port must be a whole number (got 'abc')");
    expect(byFlag.stderr).not.toContain('AMP_PORT');
    const byEnv = cli(['check-config'], { AMP_PORT: 'abc' });
    expect(byEnv.stderr).toContain("AMP_PORT: port must be a whole number (got 'abc')");
    expect(byEnv.stderr).not.toContain('--port');
    const cross = cli(['check-config', '--registration-mode', 'key']);
    expect(cross.stderr).toContain('--registration-mode key needs --registration-keys / AMP_REGISTRATION_KEYS');
  });

  it('accepts a data dir that can be created, and does not create it', () => {
    const dataDir = join(freshDir(), 'a', 'b');
    const r = cli(['check-config', '--data-dir', dataDir]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(existsSync(join(dataDir, '..'))).toBe(false);
  });

  it('refuses a data dir under a regular file', () => {
    const file = join(freshDir(), 'file');
    writeFileSync(file, 'x');
    const r = cli(['check-config'], { AMP_DATA_DIR: join(file, 'data') });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`AMP_DATA_DIR ${join(file, 'data')} cannot be created: ${file} is not a directory`);
  });

  // Root may write into a 0500 dir (access(2) rightly says so), but not on a read-only mount;
  // other users get a 0500 dir. Skipped, with a message, when root cannot mount a tmpfs.
  it('refuses a read-only data dir (a read-only tmpfs as root, a 0500 dir otherwise)', (ctx) => {
    const readOnly = makeReadOnlyDir();
    if (typeof readOnly === 'string') {
      console.warn(`read-only data dir test skipped: ${readOnly}`);
      return ctx.skip();
    }
    for (const dataDir of [readOnly.dir, join(readOnly.dir, 'data')]) {
      const r = cli(['check-config', '--data-dir', dataDir]);
      expect(r.status, `${readOnly.how}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`--data-dir ${dataDir}`);
      expect(r.stderr).toMatch(readOnly.why);
    }
  });
});

interface ReadOnlyDir {
  dir: string;
  how: string;
  why: RegExp;
}

/** A dir this user cannot write: a read-only tmpfs for root, a 0500 dir for others; or why not. */
function makeReadOnlyDir(): ReadOnlyDir | string {
  const dir = join(freshDir(), 'ro');
  mkdirSync(dir);
  if (process.getuid?.() !== 0) {
    chmodSync(dir, 0o500);
    cleanups.push(() => chmodSync(dir, 0o700));
    return { dir, how: 'a 0500 dir', why: /is not writable by this user/ };
  }
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    return `cannot mount a read-only tmpfs: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`;
  }
  cleanups.push(() => execFileSync('umount', [dir]));
  return { dir, how: 'a read-only tmpfs, as root', why: /is on a read-only file system/ };
}

// The README's blocks, run by bash in a fresh dir. The one adaptation: `npx amp-relay` needs the
// repository as its working dir, so a shell function runs this checkout's bin for it instead.
describe('README: Configuration blocks', () => {
  const NPX_SHIM = 'npx() { [ "$1" = amp-relay ] || return 99; shift; "$NODE" "$BIN" "$@"; }\n';

  it('config-env-file: print-env, source it, check-config', () => {
    const dir = freshDir();
    const r = shell('bash', `set -e\n${NPX_SHIM}${readmeBlock('config-env-file')}`, {}, dir);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('configuration is valid\n');
    expect(r.status).toBe(0);
    expect(readFileSync(join(dir, 'amp-relay.env'), 'utf8')).toMatch(/^# TCP port.*\nAMP_PORT=8080$/m);
  });

  it('config-typo: check-config fails on AMP_PROT and suggests AMP_PORT', () => {
    const r = shell('bash', NPX_SHIM + readmeBlock('config-typo'), {}, freshDir());
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('AMP_PROT is not a setting (did you mean AMP_PORT?)');
  });
});
