// Calibrators: what this machine can do at most, measured in the same run as the scenarios so that
// every scenario can be quoted as a ratio that holds on any machine. Run as a child process (the
// runner pins it to the server's core, or to all cores) and prints one JSON line.
//
//   verify-sodium, verify-node
//           Ed25519 verifications/s through the server's own code path (the verifier object of
//           src/crypto/verifier.ts, its key cached) with each implementation: libsodium on the
//           event loop, or node:crypto with a callback on the libuv pool.
//   lmdb    durable appends/s: 1 KB queue records put into an LMDB environment opened as the
//           store opens it (overlappingSync off, so each commit is fsynced), many outstanding
//           so lmdb-js batches them into few transactions. lmdb is used raw here on purpose: the
//           calibrator is the floor under src/store, not src/store itself.
//   disk-fsync SECONDS BYTES COUNT DIR
//           MiB/s of a `dd bs=1M conv=fsync`-style write: COUNT new files of BYTES each, written
//           sequentially and fsynced, in a temp directory under DIR (the file system the server's
//           data dir is on); the median over the files (lib/disk.ts).

import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { createVerifier } from '../src/crypto/verifier.js';
import { canonicalString, payloadHash } from '../proto/index.js';
import { payload } from './lib/client.js';
import { diskFsyncWrite } from './lib/disk.js';

const VERIFY_IN_FLIGHT = 256;
const LMDB_OUTSTANDING = 4096;
const RECORD_BYTES = 1024;

function signedSample() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const p = payload(0, 0, RECORD_BYTES);
  const data = Buffer.from(
    canonicalString({
      from: 'a@bench.aimaestro.local',
      to: 'b@bench.aimaestro.local',
      subject: 'bench',
      priority: 'normal',
      payload_hash: payloadHash(p),
    }),
    'utf8',
  );
  const publicKeyPem = publicKey.export({ format: 'pem', type: 'spki' }) as string;
  return { publicKeyPem, data, signature: sign(null, data, privateKey) };
}

/** Verifications/s through src/crypto/verifier.ts with the given verifier, VERIFY_IN_FLIGHT at a time. */
async function verifyRate(seconds: number, choice: 'sodium' | 'node'): Promise<Record<string, unknown>> {
  const verifier = createVerifier(choice);
  const impl = verifier.name;
  const { publicKeyPem, data, signature } = signedSample();
  let done = 0;
  let bad = 0;
  const until = performance.now() + seconds * 1000;
  const lane = async () => {
    while (performance.now() < until) {
      if (await verifier.verify(publicKeyPem, data, signature)) done++;
      else bad++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: VERIFY_IN_FLIGHT }, lane));
  const ms = performance.now() - t0;
  const how =
    impl === 'node:crypto'
      ? `node:crypto verify with a callback (libuv pool of ${process.env.UV_THREADPOOL_SIZE ?? '4'})`
      : 'sodium-native crypto_sign_verify_detached (on the event loop)';
  return {
    value: Math.round((done * 1000) / ms),
    unit: 'verify/s',
    details: { impl: how, in_flight: VERIFY_IN_FLIGHT, bad },
  };
}

async function lmdbRate(seconds: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'amp-bench-lmdb-'));
  const root = open({ path: join(dir, 'cal.lmdb'), maxDbs: 4, overlappingSync: false, compression: false });
  const queue = root.openDB({ name: 'queue' });
  const record = { e: Date.now() + 86_400_000, i: 'msg_0_calibrator', j: 'x'.repeat(RECORD_BYTES) };
  let seq = 0;
  let committed = 0;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const lane = async () => {
    while (performance.now() < until) {
      await queue.put(['agt_calibrator', seq++], record);
      committed++;
    }
  };
  await Promise.all(Array.from({ length: LMDB_OUTSTANDING }, lane));
  const ms = performance.now() - t0;
  await root.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    value: Math.round((committed * 1000) / ms),
    unit: 'appends/s',
    details: {
      record_bytes: RECORD_BYTES,
      outstanding: LMDB_OUTSTANDING,
      durable: 'fsync per commit (overlappingSync off)',
    },
  };
}

const [mode = '', secondsArg = '3', bytesArg = '', countArg = '', dirArg = ''] = process.argv.slice(2);
const seconds = Number(secondsArg);
const diskArgsOk = Number.isSafeInteger(Number(bytesArg)) && Number(bytesArg) > 0 && Number(countArg) > 0 && !!dirArg;
const run = {
  'verify-sodium': (t: number) => verifyRate(t, 'sodium'),
  'verify-node': (t: number) => verifyRate(t, 'node'),
  lmdb: lmdbRate,
  'disk-fsync': async (t: number) => diskFsyncWrite(dirArg, Number(bytesArg), Number(countArg), t * 1000),
}[mode];
if (!run || !(seconds > 0) || (mode === 'disk-fsync' && !diskArgsOk)) {
  process.stderr.write('usage: calibrate.ts verify-sodium|verify-node|lmdb SECONDS\n');
  process.stderr.write('       calibrate.ts disk-fsync SECONDS BYTES COUNT DIR\n');
  process.exit(2);
}
process.stdout.write(JSON.stringify(await run(seconds)) + '\n');
