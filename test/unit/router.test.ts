// The REST route table: which entry a path picks (literal segments over parameters, whatever the
// registration order), 405 with Allow, HEAD, the double API mount. No server: handlers are tags.
import { describe, expect, it } from 'vitest';
import { type Handler, type Match, Router } from '../../src/transport/http/router.js';

const tag = (name: string): Handler => Object.assign(() => ({ status: 200, body: name }), { tag: name });
const picked = (m: Match) => (m.kind === 'handler' ? (m.handler as Handler & { tag: string }).tag : m.kind);

describe('Router', () => {
  it('prefers a literal segment over a parameter, even when the parameter route came first', () => {
    const r = new Router()
      .add('GET', '/:t/items/:id', tag('get item'))
      .add('DELETE', '/:t/items/:id', tag('delete item'))
      .add('POST', '/:t/items/request', tag('request'));
    expect(picked(r.match('POST', '/acme/items/request'))).toBe('request');
    // The most specific path decides, then the method: no fall-through to /:id for GET.
    expect(r.match('GET', '/acme/items/request')).toEqual({
      kind: 'method_not_allowed',
      allow: ['POST'],
      route: '/:t/items/request',
    });
    const item = r.match('GET', '/acme/items/42');
    expect(picked(item)).toBe('get item');
    expect(item.kind === 'handler' && item.params).toEqual({ t: 'acme', id: '42' });
  });

  it('decides at the first segment where a literal and a parameter differ', () => {
    const r = new Router().add('GET', '/:a/b/c', tag('late literals')).add('GET', '/a/:b/:c', tag('early literal'));
    expect(picked(r.match('GET', '/a/b/c'))).toBe('early literal');
    expect(picked(r.match('GET', '/z/b/c'))).toBe('late literals');
  });

  it('falls back to a less specific path when the more specific one does not match further on', () => {
    const r = new Router().add('GET', '/:y/b/d', tag('param first')).add('GET', '/a/:x/c', tag('literal first'));
    expect(picked(r.match('GET', '/a/b/d'))).toBe('param first');
    expect(picked(r.match('GET', '/a/b/c'))).toBe('literal first');
  });

  it('an all-literal path beats any pattern', () => {
    const r = new Router().add('GET', '/agents/:address', tag('resolve')).add('GET', '/agents/me', tag('me'));
    expect(picked(r.match('GET', '/agents/me'))).toBe('me');
    expect(picked(r.match('GET', '/agents/a@b.c'))).toBe('resolve');
  });

  it('answers 405 with every method of the path, HEAD served by GET, 404 for unknown paths', () => {
    const r = new Router().add('GET', '/things/:id', tag('get')).add('DELETE', '/things/:id', tag('delete'));
    expect(r.match('PUT', '/things/1')).toEqual({
      kind: 'method_not_allowed',
      allow: ['GET', 'DELETE'],
      route: '/things/:id',
    });
    expect(picked(r.match('HEAD', '/things/1'))).toBe('get');
    expect(r.match('GET', '/things/1/more')).toEqual({ kind: 'not_found' });
    expect(r.match('GET', '/things/')).toEqual({ kind: 'not_found' }); // an empty segment is no parameter
  });

  it('ignores one trailing slash and percent-decodes parameters (a bad escape is kept as sent)', () => {
    const r = new Router().add('GET', '/a/:x', tag('a'));
    expect(r.match('GET', '/a/b%40c/')).toMatchObject({ kind: 'handler', params: { x: 'b@c' } });
    expect(r.match('GET', '/a/%E0%A4%A')).toMatchObject({ kind: 'handler', params: { x: '%E0%A4%A' } });
  });

  it('api() mounts a path under /v1 and /api/v1', () => {
    const r = new Router().api('GET', '/info', tag('info'));
    expect(picked(r.match('GET', '/v1/info'))).toBe('info');
    expect(picked(r.match('GET', '/api/v1/info'))).toBe('info');
    expect(r.match('GET', '/info')).toEqual({ kind: 'not_found' });
  });

  it("streamBody is per method and mount; HEAD carries GET's; default false", () => {
    const r = new Router()
      .api('PUT', '/files/:id', tag('put'), { streamBody: true })
      .api('GET', '/files/:id', tag('get'))
      .add('GET', '/raw', tag('raw'), { streamBody: true });
    for (const path of ['/v1/files/1', '/api/v1/files/1'])
      expect(r.match('PUT', path)).toMatchObject({ kind: 'handler', streamBody: true, params: { id: '1' } });
    expect(r.match('GET', '/v1/files/1')).toMatchObject({ kind: 'handler', streamBody: false });
    expect(r.match('HEAD', '/raw')).toMatchObject({ kind: 'handler', streamBody: true });
  });
});
