// `npm run bench [-- --quick] [--only NAMES] [--no-pin] [--out DIR] [--store nats]`: calibrators,
// then the scenarios, each against a fresh server process; one progress line a second; a JSON
// result and a Markdown summary in bench/results/. Figures are reported, never asserted. With
// `--store nats` the trusted and REST scenarios run again on two relay nodes in cluster mode (a
// 3-server NATS JetStream cluster), reported next to the single-node LMDB figures of the same run.

import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { placement, ROOT, runJsonChild, startBenchServer, type BenchServer, type Placement } from './lib/proc.js';
import { writeResults, summaryTable, type BenchResult, type ScenarioResult } from './lib/report.js';
import { attachmentRows, attachments, diskCalibrator, type AttachmentOptions } from './scenarios/attachments.js';
import { MIB } from './lib/disk.js';
import { backlog } from './scenarios/backlog.js';
import { fanout } from './scenarios/fanout.js';
import { bareHttpRate, restRoute } from './scenarios/rest.js';
import { natsPeer, type PeerOutcome } from './scenarios/nats-peer.js';
import { startBareHttp } from './lib/bare-http.js';
import { federation, federationRows, type FederationOptions } from './scenarios/federation.js';
import { coreList, loadCores, providerPlacement, startProviders } from './lib/providers.js';
import { closePairs, closedLoop, fixedRate, setupPairs } from './scenarios/routing.js';
import { natsRss, setupPairsAcross, startBenchCluster, type BenchCluster } from './lib/cluster.js';

const HELP = `amp-relay bench: the real server as a child process on its own core, load from this one.

Usage: npm run bench [-- options]

Options:
  --quick          about a minute: fewer sockets, shorter runs (a smoke test of the harness)
  --only NAMES     comma-separated scenarios: signed, trusted, rest, fanout, backlog, rates, attachments,
                   federation (two providers, a.example and b.example, each on its own core)
  --no-pin         do not pin the server and the load to separate cores with taskset
  --out DIR        where result files go (default bench/results)
  --profile        run each server under node --cpu-prof; profiles go to DIR/profiles
  --server-root D  run the server from another built checkout D (a baseline to compare with)
  --server-args S  more 'amp-relay serve' flags for every server, e.g. "--ed25519 node"
  --server-logs    federation: keep both providers' logs in DIR/logs/<time>-<domain>.log
  --store nats     also run trusted and rest on two relay nodes in cluster mode (AMP_STORE=nats) on a
                   3-server NATS JetStream cluster (Debian's nats-server), next to the LMDB figures;
                   without --only it runs just trusted and rest
  --clamd-socket P attachments: the server scans with the clamd listening on unix socket P
                   (AMP_CLAMD_SOCKET); without it AMP_CLAMD_* are unset: no antivirus
  -h, --help       this text

Writes DIR/<time>-<mode>.json (every figure) and .md (the summary table, also printed).`;

const SCENARIOS = ['signed', 'trusted', 'rest', 'fanout', 'backlog', 'rates', 'attachments', 'federation'] as const;
type Name = (typeof SCENARIOS)[number];

const parsed = (() => {
  try {
    return parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        'no-pin': { type: 'boolean', default: false },
        out: { type: 'string' },
        profile: { type: 'boolean', default: false },
        'server-root': { type: 'string' },
        'server-args': { type: 'string' },
        'clamd-socket': { type: 'string' },
        'server-logs': { type: 'boolean', default: false },
        store: { type: 'string', default: 'lmdb' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message} (see npm run bench -- --help)\n`);
    process.exit(2);
  }
})();
const args = parsed.values;
if (args.help) {
  process.stdout.write(HELP + '\n');
  process.exit(0);
}
if (args.store !== 'lmdb' && args.store !== 'nats') {
  process.stderr.write(`bench: --store is lmdb or nats, not '${args.store}'\n`);
  process.exit(2);
}
const clusterMode = args.store === 'nats';
const only = new Set(
  (args.only ?? (clusterMode ? 'trusted,rest' : SCENARIOS.join(',')))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
for (const n of only) {
  if (!(SCENARIOS as readonly string[]).includes(n)) {
    process.stderr.write(`bench: unknown scenario '${n}' (${SCENARIOS.join(', ')})\n`);
    process.exit(2);
  }
}
const clamdSocket = args['clamd-socket'];
if (clamdSocket !== undefined && !isSocket(clamdSocket)) {
  process.stderr.write(`bench: --clamd-socket ${clamdSocket} is not a unix socket (is clamd running?)\n`);
  process.exit(2);
}
const cores = cpus().length;
const place: Placement = placement(!args['no-pin'], cores);
// Scenario 8 runs two servers, on a core each; alone, its load goes where they leave room (on two
// cores: nowhere, so it is not pinned). With other scenarios the load stays where theirs goes.
const fedPlace = providerPlacement(!args['no-pin'], cores);
const fedOnly = only.size === 1 && only.has('federation');
const loadPin = fedOnly ? fedPlace.load : place.load;

// The load runs pinned too: re-run this file under taskset once.
if (loadPin !== undefined && process.env.AMP_BENCH_PINNED !== '1') {
  const child = spawn(
    'taskset',
    ['-c', loadPin, process.execPath, '--import', 'tsx', join(ROOT, 'bench', 'run.ts'), ...process.argv.slice(2)],
    { stdio: 'inherit', env: { ...process.env, AMP_BENCH_PINNED: '1' } },
  );
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  await main();
}

async function main(): Promise<void> {
  const quick = args.quick;
  const P = quick
    ? {
        cal: 2,
        warm: 0.5,
        secs: 4,
        pairs: 16,
        sockets: 1000,
        fanSenders: 8,
        backlog: 20_000,
        restBacklog: 5_000,
        pages: [100],
        rateSecs: 3,
        conns: 128,
        attSizes: [
          { bytes: MIB, count: 5 },
          { bytes: 25 * MIB, count: 1 },
        ],
        attScans: 1,
        attBaseline: 2,
        fedSenders: 8,
        fedLight: 2,
      }
    : {
        cal: 5,
        warm: 2,
        secs: 10,
        pairs: 32,
        sockets: 10_000,
        fanSenders: 16,
        backlog: 1_000_000,
        restBacklog: 20_000,
        pages: [10, 50, 100],
        rateSecs: 10,
        conns: 256,
        attSizes: [
          { bytes: MIB, count: 20 },
          { bytes: 25 * MIB, count: 3 },
        ],
        attScans: 3,
        attBaseline: 3,
        fedSenders: 16,
        fedLight: 5,
      };
  const BYTES = 1024;
  const result: BenchResult = {
    started_at: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores,
      memory_gb: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      platform: process.platform,
    },
    placement: fedOnly
      ? `${fedPlace.note}; load on core(s) ${loadCores() || '?'}${loadPin === undefined ? ' (not pinned)' : ''}; calibrators ${place.server === undefined ? 'not pinned' : `on core ${place.server}`}`
      : place.note,
    server: { root: args['server-root'] ?? ROOT, args: args['server-args'] ?? '', store: args.store },
    calibrators: {},
    scenarios: [],
  };
  console.log(
    `amp-relay bench (${result.mode}): ${result.machine.cpu} × ${cores}; ${place.note}; server from ${result.server.root} ${result.server.args}`,
  );

  // Calibrators: on the server's core (what the server can get) and, for verify, on all cores.
  const calibrate = async (key: string, mode: string, where: string | undefined, more: string[] = []) => {
    const c = await runJsonChild<{ value: number; unit: string; details: Record<string, unknown> }>(
      ['--import', 'tsx', join(ROOT, 'bench', 'calibrate.ts'), mode, String(P.cal), ...more],
      where,
      120_000,
    );
    result.calibrators[key] = c;
    console.log(`  calibrator ${key}: ${c.value.toLocaleString('en-US')} ${c.unit}`);
    return c.value;
  };
  // The server's verifier (sodium-native where it loads) on the server's core: sync on the event
  // loop, one core is all it can use. node:crypto is measured too, on the server's core and on all.
  const verifyServer = await calibrate('verify_sodium_server_cores', 'verify-sodium', place.server);
  const verifyNode = await calibrate('verify_node_server_cores', 'verify-node', place.server);
  if (place.server !== undefined) await calibrate('verify_node_all_cores', 'verify-node', undefined);
  const lmdb = await calibrate('lmdb_appends_server_cores', 'lmdb', place.server);
  // For the attachments: the same file sizes and counts written and fsynced on the server's core,
  // in the temp file system the server's data dir is made in (startBenchServer: os.tmpdir()).
  const disk: Record<string, number> = {};
  if (only.has('attachments')) {
    for (const s of P.attSizes) {
      const key = diskCalibrator(s.bytes);
      // The count bounds it; a time budget of P.cal seconds cuts a very slow disk short (≥ 1 file).
      disk[key] = await calibrate(key, 'disk-fsync', place.server, [String(s.bytes), String(s.count), tmpdir()]);
    }
  }

  const outDir = args.out ?? join(ROOT, 'bench', 'results');
  const signed = (n: number) => `${n >= 0 ? '+' : ''}${n}`;
  const ratio = (v: number, c: number) => (c > 0 ? +(v / c).toFixed(3) : undefined);
  const withServer = async (fn: (s: BenchServer) => Promise<void>, env?: Record<string, string>) => {
    const s = await startBenchServer(place.server, {
      profileDir: args.profile ? join(outDir, 'profiles') : undefined,
      serverRoot: args['server-root'],
      extraArgs: (args['server-args'] ?? '').split(/\s+/).filter(Boolean),
      env,
    });
    try {
      await fn(s);
    } finally {
      await s.stop();
    }
  };
  const push = (r: ScenarioResult) => {
    result.scenarios.push(r);
    console.log(
      `  => ${r.title}: ${r.value.toLocaleString('en-US')} ${r.unit}${r.ratio !== undefined ? ` (${r.ratio} × ${r.calibrator})` : ''}${r.latency ? `, p50 ${r.latency.p50_ms} ms, p99 ${r.latency.p99_ms} ms, p99.9 ${r.latency.p999_ms} ms` : ''}`,
    );
  };
  const run = async (name: Name, fn: () => Promise<void>) => {
    if (!only.has(name)) return;
    console.log(`\n${name}`);
    await fn();
  };

  // The peer (trusted only): the same loop on Debian's nats-server with JetStream, on the server's core.
  let peer: PeerOutcome | undefined;
  const runPeer = async () => {
    peer = await natsPeer(place.server, {
      label: 'nats-peer',
      pairs: P.pairs,
      window: 32,
      seconds: P.secs,
      warmupSeconds: P.warm,
      bytes: BYTES,
    });
    result.calibrators.nats_peer_server_cores = {
      value: peer.rate,
      unit: 'msg/s',
      details: {
        what: 'nats-server 2.9 JetStream (file storage, 1 replica) on the server core: per pair, 32 publishes in flight, a push consumer acking each',
        durability:
          'JetStream acknowledges a publish without an fsync per message (it syncs on an interval); amp-relay fsyncs before it answers',
        latency: peer.latency,
        server_cpu_s_per_s: peer.cpu_seconds_per_s,
        errors: peer.errors,
        notes: peer.notes,
      },
    };
    console.log(
      `  calibrator nats_peer_server_cores: ${peer.rate.toLocaleString('en-US')} msg/s, p50 ${peer.latency.p50_ms} ms, p99 ${peer.latency.p99_ms} ms`,
    );
  };

  for (const signed of [true, false]) {
    await run(signed ? 'signed' : 'trusted', async () => {
      if (!signed) await runPeer();
      await withServer(async (s) => {
        const p = await setupPairs(s, P.pairs);
        const framesPerSender = signed
          ? Math.ceil((Math.max(verifyServer, verifyNode) * (P.secs + P.warm) * 1.2) / P.pairs) + 64
          : 0;
        const o = await closedLoop(s, p, {
          label: signed ? 'signed' : 'trusted',
          window: signed ? 16 : 32,
          seconds: P.secs,
          warmupSeconds: P.warm,
          bytes: BYTES,
          signed,
          framesPerSender,
        });
        await closePairs(p);
        const cal = signed ? verifyServer : lmdb;
        push({
          name: signed ? 'ws_signed' : 'ws_trusted',
          title: signed ? '1 WS→WS signed 1 KB' : '2 WS→WS trusted (unsigned) 1 KB',
          value: o.rate,
          unit: 'msg/s',
          calibrator: signed ? 'verify_sodium_server_cores' : 'lmdb_appends_server_cores',
          ratio: ratio(o.rate, cal),
          target: signed ? '≥ 0.6 × verify' : '≥ 0.3 × lmdb',
          latency: o.latency.summary(),
          details: signed
            ? o.details
            : { ...o.details, ratio_vs_nats_peer: peer ? ratio(o.rate, peer.rate) : undefined },
          errors: o.errors,
          notes: o.notes,
        });
      });
    });
  }

  await run('rest', async () => {
    // The calibrator first: the same autocannon load on a bare uWS POST handler on the server's core.
    const bareServer = await startBareHttp(place.server);
    let bare: Awaited<ReturnType<typeof bareHttpRate>>;
    try {
      bare = await bareHttpRate(bareServer.api, { label: 'bare', connections: P.conns, seconds: P.secs, bytes: BYTES });
    } finally {
      await bareServer.stop();
    }
    result.calibrators.bare_uws_post_server_cores = {
      value: bare.rate,
      unit: 'req/s',
      details: {
        what: 'a bare uWebSockets.js POST handler (read the body, answer 200) on the server core, same autocannon load',
        connections: P.conns,
        seconds: P.secs,
        p50_ms: bare.result.latency.p50,
        p99_ms: bare.result.latency.p99,
        non2xx: bare.result.non2xx,
        errors: bare.result.errors,
      },
    };
    console.log(`  calibrator bare_uws_post_server_cores: ${bare.rate.toLocaleString('en-US')} req/s`);
    await withServer(async (s) => {
      const r = await restRoute(s, { label: 'rest', connections: P.conns, seconds: P.secs, bytes: BYTES });
      const l = r.result.latency;
      push({
        name: 'rest_route',
        title: '3 REST route (autocannon) 1 KB',
        value: r.rate,
        unit: 'req/s',
        calibrator: 'bare_uws_post_server_cores',
        ratio: ratio(r.rate, bare.rate),
        target: '≥ 0.2 × bare uWS POST',
        latency: {
          count: r.result['2xx'],
          p50_ms: l.p50,
          p90_ms: l.p90,
          p99_ms: l.p99,
          p999_ms: l.p99_9,
          max_ms: l.max,
          mean_ms: l.mean,
        },
        details: {
          connections: P.conns,
          seconds: P.secs,
          ok: r.result['2xx'],
          non2xx: r.result.non2xx,
          queued_after: r.queued,
          ratio_vs_lmdb_appends: ratio(r.rate, lmdb),
          ...r.cpu,
        },
        // Requests still in flight when autocannon stops are queued but not counted: queued ≥ 2xx.
        errors: r.result.errors + r.result.non2xx + r.result.timeouts + Math.max(0, r.result['2xx'] - r.queued),
        notes:
          r.queued >= r.result['2xx'] ? [] : [`LOST: ${r.result['2xx']} answered 2xx but only ${r.queued} are queued`],
      });
    });
  });

  await run('fanout', () =>
    withServer(async (s) => {
      const o = await fanout(s, {
        label: 'fanout',
        sockets: P.sockets,
        senders: P.fanSenders,
        window: 32,
        seconds: P.secs,
        warmupSeconds: P.warm,
        bytes: BYTES,
      });
      push({
        name: 'push_fanout',
        title: `4 push fan-out to ${P.sockets.toLocaleString('en-US')} sockets`,
        value: o.rate,
        unit: 'msg/s',
        calibrator: 'lmdb_appends_server_cores',
        ratio: ratio(o.rate, lmdb),
        target: '≤ 10 KB per idle socket',
        latency: o.latency.summary(),
        details: o.details,
        errors: o.errors,
        notes: [`server memory per idle socket: ${String(o.details.rss_per_idle_socket_kb)} KB`, ...o.notes],
      });
    }),
  );

  await run('backlog', () =>
    withServer(async (s) => {
      const b = await backlog(s, {
        label: 'backlog',
        messages: P.backlog,
        restMessages: P.restBacklog,
        pages: P.pages,
        bytes: BYTES,
      });
      const leftover = b.ws.remaining_after + b.rest.reduce((n, r) => n + r.remaining_after, 0);
      const ws = `${P.backlog.toLocaleString('en-US')}`;
      const wsNotes = leftover ? [`${leftover} messages left after acking everything`] : [];
      push({
        name: 'drain_ws',
        title: `5 backlog drain over WS (${ws}), received`,
        value: b.ws.rate,
        unit: 'msg/s',
        calibrator: 'lmdb_appends_server_cores',
        ratio: ratio(b.ws.rate, lmdb),
        target: '≥ 50k msg/s',
        details: { ...b.ws, fill_rate: b.fillRate, rss: b.rss },
        errors: leftover,
        notes: [
          ...wsNotes,
          `server RSS ${b.rss.start_mb} MiB before, ${b.rss.filled_mb} MiB with the backlog, ${b.rss.drained_mb} MiB after the drain (${signed(b.rss.return_pct)} %; target ≤ +20 %); anonymous ${b.rss.anon_mb.join(' / ')} MiB (${signed(b.rss.anon_return_pct)} %), mapped file pages ${b.rss.file_mb.join(' / ')} MiB`,
        ],
      });
      push({
        name: 'drain_ws_acked',
        title: `5 backlog drain over WS (${ws}), received + acked`,
        value: b.ws.acked_rate,
        unit: 'msg/s',
        calibrator: 'lmdb_appends_server_cores',
        ratio: ratio(b.ws.acked_rate, lmdb),
        details: { messages: b.ws.messages },
        errors: 0,
        notes: [],
      });
      for (const r of b.rest) {
        push({
          name: `drain_rest_${r.page}`,
          title: `5 backlog drain over REST, pages of ${r.page}`,
          value: r.rate,
          unit: 'msg/s',
          calibrator: 'lmdb_appends_server_cores',
          ratio: ratio(r.rate, lmdb),
          details: { ...r, per_round_trip_ms: +((r.messages / r.rate / r.round_trips) * 1000).toFixed(3) },
          errors: r.remaining_after,
          notes: [],
        });
      }
    }),
  );

  await run('rates', async () => {
    for (const rate of [1000, 5000, 20_000]) {
      await withServer(async (s) => {
        const o = await fixedRate(s, {
          label: `rate ${rate}`,
          rate,
          pairs: 8,
          seconds: P.rateSecs,
          warmupSeconds: P.warm,
          bytes: BYTES,
        });
        push({
          name: `rate_${rate}`,
          title: `6 fixed rate ${rate.toLocaleString('en-US')} msg/s (trusted)`,
          value: o.rate,
          unit: 'msg/s',
          calibrator: 'target rate',
          ratio: ratio(o.rate, rate),
          target: rate === 5000 ? 'p99 ≤ 2 ms' : undefined,
          latency: o.latency.summary(),
          details: o.details,
          errors: o.errors,
          notes: o.notes,
        });
      });
    }
  });

  await run('attachments', () => {
    const o: AttachmentOptions = {
      label: 'attachments',
      sizes: P.attSizes,
      scans: P.attScans,
      scanBytes: 25 * MIB,
      baselineSeconds: P.attBaseline,
      probeIntervalMs: 2,
      av: clamdSocket !== undefined,
      probeCores: place.load,
    };
    return withServer(
      async (s) => {
        for (const r of attachmentRows(await attachments(s, o), disk, o)) push(r);
      },
      clamdSocket === undefined ? undefined : { AMP_CLAMD_SOCKET: clamdSocket },
    );
  });

  await run('federation', async () => {
    const lc = loadCores();
    const shares = [fedPlace.a, fedPlace.b].filter((c) => c !== undefined && coreList(lc).includes(Number(c)));
    const how =
      loadPin === undefined
        ? 'not pinned'
        : `pinned, sharing the core of ${shares.map((c) => (c === fedPlace.a ? 'A' : 'B')).join(' and ') || 'neither'}`;
    const note = `${fedPlace.note}; load process on core(s) ${lc || 'unknown'} (${how})`;
    console.log(`  ${note}`);
    const o: FederationOptions = {
      label: 'federation',
      senders: P.fedSenders,
      window: 16,
      seconds: P.secs,
      warmupSeconds: P.warm,
      lightSeconds: P.fedLight,
      bytes: BYTES,
      framesPerSender: Math.ceil((Math.max(verifyServer, verifyNode) * (P.secs + P.warm) * 1.2) / P.fedSenders) + 64,
      drainMs: 30_000,
      placementNote: note,
    };
    const providers = await startProviders(
      fedPlace,
      {
        profileDir: args.profile ? join(outDir, 'profiles') : undefined,
        serverRoot: args['server-root'],
        extraArgs: (args['server-args'] ?? '').split(/\s+/).filter(Boolean),
      },
      args['server-logs'] ? join(outDir, 'logs', result.started_at.replace(/[:.]/g, '-')) : undefined,
    );
    try {
      for (const r of federationRows(await federation(providers, o), o)) push(r);
    } finally {
      await providers.stop();
    }
  });

  /** Trusted and REST again on two relay nodes in nats mode, as ratios to their LMDB rows above. */
  async function clusterScenarios(): Promise<void> {
    const withCluster = async (fn: (c: BenchCluster) => Promise<void>) => {
      const c = await startBenchCluster(place.server, {
        profileDir: args.profile ? join(outDir, 'profiles') : undefined,
        serverRoot: args['server-root'],
        extraArgs: (args['server-args'] ?? '').split(/\s+/).filter(Boolean),
      });
      try {
        await fn(c);
      } finally {
        await c.stop();
      }
    };
    const lmdbRow = (name: string) => result.scenarios.find((r) => r.name === name);
    const where = `2 relay nodes${place.server === undefined ? '' : ` sharing core ${place.server}`}, 3 NATS servers not pinned`;
    const natsUse = (c: BenchCluster, cpu0: number, t0: number) => ({
      nats_cpu_pct: Math.round((100 * (c.natsCpuSeconds() - cpu0)) / ((performance.now() - t0) / 1000)),
      nats_rss_mb: Math.round(natsRss(c) / 1048576),
      placement: where,
    });
    if (only.has('trusted')) {
      console.log(`\ntrusted, cluster mode (${where})`);
      await withCluster(async (c) => {
        const p = await setupPairsAcross(c.nodes, P.pairs);
        const cpu0 = c.natsCpuSeconds();
        const t0 = performance.now();
        const o = await closedLoop(c.combined, p, {
          label: 'trusted-nats',
          window: 32,
          seconds: P.secs,
          warmupSeconds: P.warm,
          bytes: BYTES,
          signed: false,
          framesPerSender: 0,
        });
        const use = natsUse(c, cpu0, t0);
        await closePairs(p);
        const base = lmdbRow('ws_trusted');
        push({
          name: 'ws_trusted_nats',
          title: '2n WS→WS trusted 1 KB, nats: 2 nodes, every message across nodes',
          value: o.rate,
          unit: 'msg/s',
          calibrator: 'ws_trusted (LMDB, one node, this run)',
          ratio: base ? ratio(o.rate, base.value) : undefined,
          latency: o.latency.summary(),
          details: {
            ...o.details,
            ...use,
            server_cpu_note: 'server_* figures: both relay nodes summed (threads: node 1)',
          },
          errors: o.errors,
          notes: o.notes,
        });
      });
    }
    if (only.has('rest')) {
      console.log(`\nrest, cluster mode (${where})`);
      await withCluster(async (c) => {
        const cpu0 = c.natsCpuSeconds();
        const t0 = performance.now();
        const r = await restRoute(c.combined, {
          label: 'rest-nats',
          connections: P.conns,
          seconds: P.secs,
          bytes: BYTES,
          nodes: c.nodes,
        });
        const use = natsUse(c, cpu0, t0);
        const l = r.result.latency;
        const base = lmdbRow('rest_route');
        push({
          name: 'rest_route_nats',
          title: '3n REST route (autocannon) 1 KB, nats: 2 nodes, connections split',
          value: r.rate,
          unit: 'req/s',
          calibrator: 'rest_route (LMDB, one node, this run)',
          ratio: base ? ratio(r.rate, base.value) : undefined,
          latency: {
            count: r.result['2xx'],
            p50_ms: l.p50,
            p90_ms: l.p90,
            p99_ms: l.p99,
            p999_ms: l.p99_9,
            max_ms: l.max,
            mean_ms: l.mean,
          },
          details: {
            connections: P.conns,
            seconds: P.secs,
            ok: r.result['2xx'],
            non2xx: r.result.non2xx,
            queued_after: r.queued,
            latency_note: 'the worse of the two autocannon runs (one per node)',
            ...r.cpu,
            ...use,
          },
          errors: r.result.errors + r.result.non2xx + r.result.timeouts + Math.max(0, r.result['2xx'] - r.queued),
          notes:
            r.queued >= r.result['2xx']
              ? []
              : [`LOST: ${r.result['2xx']} answered 2xx but only ${r.queued} are queued`],
        });
      });
    }
  }

  if (clusterMode) await clusterScenarios();

  const files = writeResults(outDir, result);
  console.log('\n' + summaryTable(result));
  console.log(`results: ${files.json}\n         ${files.md}`);
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}
