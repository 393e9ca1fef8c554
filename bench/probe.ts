// `node --import tsx bench/probe.ts URL INTERVAL_MS MAX_OUTSTANDING MAX_SECONDS`: the open-loop
// prober of lib/prober.ts in a process of its own. Prints `ready` at its first answer; when its
// stdin closes (or MAX_SECONDS have passed) it stops and prints one JSON line: its samples.

import { Prober } from './lib/prober.js';

const [url = '', interval = '', outstanding = '', seconds = ''] = process.argv.slice(2);
const o = { intervalMs: Number(interval), maxOutstanding: Number(outstanding), maxSeconds: Number(seconds) };
if (!/^http:\/\//.test(url) || !(o.intervalMs > 0) || !(o.maxOutstanding > 0) || !(o.maxSeconds > 0)) {
  process.stderr.write('usage: probe.ts URL INTERVAL_MS MAX_OUTSTANDING MAX_SECONDS\n');
  process.exit(2);
}
const p = new Prober(new URL(url), o);
p.onFirst = () => process.stdout.write('ready\n');
let stopping = false;
const finish = async () => {
  if (stopping) return;
  stopping = true;
  clearTimeout(limit);
  await p.stop();
  const line = JSON.stringify({ samples: p.samples, skipped: p.skipped, lastError: p.lastError }) + '\n';
  // Exit only once the line is flushed: a pipe to a busy parent takes it in pieces.
  process.stdout.write(line, () => process.exit(0));
};
const limit = setTimeout(finish, o.maxSeconds * 1000 + 1000);
process.stdin.on('data', () => {});
process.stdin.on('end', finish);
process.stdin.on('error', finish);
p.start();
