// vitest marks the tests of a file whose beforeAll threw as skipped, not failed, so a missing tool
// would pass unnoticed. This runs `setup` once and makes every test fail with its error instead.
import { beforeAll, beforeEach } from 'vitest';

export function setupOrFailEveryTest(setup: () => Promise<void>): void {
  let setupError: unknown;
  beforeAll(async () => {
    try {
      await setup();
    } catch (e) {
      setupError = e;
    }
  });
  beforeEach(() => {
    if (setupError) throw setupError;
  });
}
