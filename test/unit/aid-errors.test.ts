// The AID error catalog against the spec's §15 table (test/fixtures/agent-identity.md, a copy of
// ../shared/spec/agent-identity.md kept equal by test/unit/fixtures-sync.test.ts): the
// same codes, each with the statuses the table gives it; AidError takes its status from it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generatedArtifacts } from '../../proto/artifacts.js';
import { AID_ERROR_CATALOG, type AidErrorSpec } from '../../proto/aid-errors.js';
import { AidError } from '../../src/identity/errors.js';

const SPEC = readFileSync(new URL('../fixtures/agent-identity.md', import.meta.url), 'utf8');

/** code -> statuses, from the rows of the §15 table (`| 500 / 503 | a / b |` pairs them up). */
function specStatuses(): Map<string, Set<number>> {
  const section = SPEC.slice(SPEC.indexOf('## 15. Errors'), SPEC.indexOf('## 16.'));
  const out = new Map<string, Set<number>>();
  for (const m of section.matchAll(/^\| ([\d /]+) \| (.+) \|$/gm)) {
    const statuses = m[1].split('/').map((s) => Number(s.trim()));
    const groups = statuses.length > 1 ? m[2].split(' / ') : [m[2]];
    groups.forEach((group, i) => {
      for (const [, code] of group.matchAll(/`([a-z_]+)`/g)) {
        if (!out.has(code)) out.set(code, new Set());
        out.get(code)!.add(statuses[i]);
      }
    });
  }
  return out;
}

/** Statuses we give beyond the table, each with the reason (the spec sets the limit, not the status). */
const BEYOND_SPEC: Record<string, number[]> = { invalid_request: [413] };

describe('AID error catalog', () => {
  it('has exactly the codes of spec §15, each with the statuses the table gives it', () => {
    const spec = specStatuses();
    expect(spec.size).toBeGreaterThan(20);
    expect(Object.keys(AID_ERROR_CATALOG).sort()).toEqual([...spec.keys()].sort());
    for (const [code, e] of Object.entries(AID_ERROR_CATALOG as Record<string, AidErrorSpec>)) {
      const ours = [e.status, ...Object.keys(e.alsoStatus ?? {}).map(Number)];
      const expected = [...spec.get(code)!, ...(BEYOND_SPEC[code] ?? [])];
      expect(ours.sort(), code).toEqual(expected.sort());
    }
  });

  it('gives invalid_proof 400 (token endpoint), with 401 only for the status poll', () => {
    expect(AID_ERROR_CATALOG.invalid_proof.status).toBe(400);
    expect(Object.keys(AID_ERROR_CATALOG.invalid_proof.alsoStatus)).toEqual(['401']);
  });

  it('is generated into aid-errors.json with statuses and uses', () => {
    const json = JSON.parse(generatedArtifacts()['aid-errors.json']);
    expect(json.errors.invalid_transition).toEqual({ http_status: 422, used_for: expect.any(String) });
    expect(json.errors.invalid_proof.also_http_status).toEqual({ 401: expect.any(String) });
    expect(json.aliases).toEqual({ expired_code: 'expired_token', denied: 'access_denied' });
  });
});

describe('AidError', () => {
  it('takes its status from the catalog and writes both body shapes', () => {
    const e = new AidError('invalid_transition', 'Cannot suspend a registration in status pending');
    expect(e.status).toBe(422);
    expect(e.headers).toEqual({});
    expect(e.body()).toEqual({
      error: 'invalid_transition',
      error_description: 'Cannot suspend a registration in status pending',
      errors: [
        { status: '422', code: 'invalid_transition', detail: 'Cannot suspend a registration in status pending' },
      ],
    });
  });

  it('takes a listed second status when asked, and headers', () => {
    const e = new AidError('invalid_proof', 'status proof does not verify', { status: 401, headers: { A: 'b' } });
    expect(e.status).toBe(401);
    expect(e.headers).toEqual({ A: 'b' });
    expect(e.body().errors[0].status).toBe('401');
    // Checked by the compiler: 401 is not a status the catalog lists for invalid_grant.
    // @ts-expect-error
    const unlisted = () => new AidError('invalid_grant', 'x', { status: 401 });
    expect(unlisted).toBeTypeOf('function');
  });
});
