// Generated files are committed; this fails when the sources changed and `npm run gen` was not run.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generatedArtifacts } from '../../proto/artifacts.js';

describe('proto/generated', () => {
  it.each(Object.entries(generatedArtifacts()))('%s matches the sources (run npm run gen)', (name, text) => {
    const committed = readFileSync(new URL(`../../proto/generated/${name}`, import.meta.url), 'utf8');
    expect(committed).toBe(text);
  });

  it('lists every wire code of the spec with its HTTP status', () => {
    const errors = JSON.parse(generatedArtifacts()['errors.json']).errors;
    expect(errors.queue_full).toEqual({
      http_status: 429,
      ws_close: null,
      retry: true,
      used_for: 'recipient queue at maximum',
    });
    expect(errors.request_too_large.http_status).toBe(413);
    expect(errors.insufficient_storage).toMatchObject({ http_status: 507, ws_close: null, retry: true });
    expect(errors.store_unavailable).toMatchObject({ http_status: 503, ws_close: null, retry: true });
    expect(Object.keys(errors)).toHaveLength(48);
  });
});
