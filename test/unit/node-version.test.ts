// The Node version gate (src/node-version.ts): only Node 20 from 20.19 runs amp-relay. The bin's wiring
// of it is exercised in test/e2e/node-version.test.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeVersionProblem, SUPPORTED_NODE } from '../../src/node-version.js';
import { ROOT } from '../helpers/server.js';

describe('nodeVersionProblem', () => {
  it.each(['20.19.0', '20.20.2', '20.99.1'])('accepts %s', (v) => {
    expect(nodeVersionProblem(v)).toBeUndefined();
  });

  it.each(['18.20.4', '20.18.3', '21.7.3', '22.12.0', '24.11.1', '25.0.0', '2.20.0', '200.1.0', 'x', ''])(
    'refuses %s, naming it and the supported versions',
    (v) => {
      const problem = nodeVersionProblem(v);
      expect(problem).toContain(`this is Node.js ${v}.`);
      expect(problem).toContain(`runs on Node.js ${SUPPORTED_NODE}`);
      expect(problem).toContain('Node versions');
    },
  );

  it('accepts the Node running the tests (the CI and this machine run Node 20)', () => {
    expect(nodeVersionProblem(process.versions.node)).toBeUndefined();
  });

  it('agrees with "engines" in package.json', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.engines.node).toBe('>=20.19 <21');
  });
});
