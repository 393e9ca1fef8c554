// `amp-relay print-env`: the settings in force as an environment file that reads back the same
// everywhere: `set -a; . ./file` (sh, bash), systemd's EnvironmentFile= and `docker --env-file`.
// Each comment is a line of its own (an env file has no trailing comments: `VAR=x # doc` sets VAR
// to `x # doc` for systemd and docker). Plain values are written bare, which all three read
// literally; any other is double-quoted with \ before " \ $ and `, the four escapes sh and
// systemd share. (Not single quotes: systemd ends a value at its closing quote, so the shell's
// '\'' for a quote inside breaks there.) docker does no unquoting: such a value keeps its quotes.

import { type Config, OPTIONS, type OptionSpec } from './schema.js';

/** Characters every reader takes literally in an unquoted value (no `$`, `~`, quote, space, `#`, `\`). */
const BARE_RE = /^[A-Za-z0-9_@%+=:,./*-]*$/;

/** `value` as an env-file value: bare when plain, else double-quoted. */
export function envFileValue(value: string): string {
  if (BARE_RE.test(value)) return value;
  return `"${value.replace(/["\\$`]/g, '\\$&')}"`;
}

function redacted(spec: OptionSpec, value: string): string {
  return spec.redact ? spec.redact(value) : value;
}

/** The lines of `print-env`: a header, then `# doc` and `NAME=value` for each setting. */
export function describeEnv(c: Config, header: string): string[] {
  const lines = [`# ${header}`];
  for (const [key, spec] of Object.entries(OPTIONS) as [keyof Config, OptionSpec][]) {
    const v = c[key];
    if (spec.secret && v !== '') {
      lines.push('', `# ${spec.doc}`, '# (set, not printed: fill it in)', `${spec.env}=`);
      continue;
    }
    const text = Array.isArray(v) ? v.map((x) => redacted(spec, String(x))).join(',') : redacted(spec, String(v));
    const note =
      text !== (Array.isArray(v) ? v.join(',') : String(v))
        ? ['# (a credential in it is not printed: fill it in)']
        : [];
    lines.push('', `# ${spec.doc}`, ...note, `${spec.env}=${envFileValue(text)}`);
  }
  return lines;
}
