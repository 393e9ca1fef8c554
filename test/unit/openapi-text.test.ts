// The OpenAPI text is serialized once and each request's `servers` spliced in: the result is the
// document as JSON.stringify would give it with that `servers`, for any URL, with nothing kept per URL.

import { describe, expect, it } from 'vitest';
import { openApiText } from '../../src/transport/http/openapi.js';

describe('openApiText', () => {
  const doc = {
    openapi: '3.1.0',
    info: { title: 't', version: '1', description: 'a "quoted" },{ text' },
    paths: { '/x': { get: { summary: 's' } } },
    components: { schemas: {} },
  };

  it('splices servers after info, as a full serialization would place it', () => {
    const text = openApiText(doc);
    for (const url of ['http://a.example', 'https://b.example:8443', 'http://"odd"\\host']) {
      const { openapi, info, ...rest } = doc;
      expect(text(url)).toBe(JSON.stringify({ openapi, info, servers: [{ url }], ...rest }));
      expect(JSON.parse(text(url)).servers).toEqual([{ url }]);
    }
  });

  it('gives each of many URLs its own servers (no per-URL cache to thrash or grow)', () => {
    const text = openApiText(doc);
    const urls = Array.from({ length: 100 }, (_, i) => `http://h${i}.example`);
    for (const url of [...urls, ...urls]) expect(JSON.parse(text(url)).servers[0].url).toBe(url);
  });
});
