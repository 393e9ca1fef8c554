// Starting and ending the REST calibrator's server (bench/bare-http.ts) as a child process on the
// given cores. Only the process started here is ended, by PID.

import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { ROOT, spawnNode } from './proc.js';

const START_TIMEOUT_MS = 20_000;

export interface BareHttp {
  /** `http://127.0.0.1:<port>/api/v1`: POST `${api}/route` answers 200. */
  api: string;
  stop(): Promise<void>;
}

export async function startBareHttp(cores: string | undefined): Promise<BareHttp> {
  const proc = spawnNode(['--import', 'tsx', join(ROOT, 'bench', 'bare-http.ts')], cores);
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const api = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bare-http did not start: ${err}`)), START_TIMEOUT_MS);
    createInterface({ input: proc.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve((JSON.parse(line) as { url: string }).url);
      } catch {
        reject(new Error(`bare-http printed ${line}: ${err}`));
      }
    });
    void exited.then(() => reject(new Error(`bare-http exited before listening: ${err}`)));
  });
  return {
    api,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}
