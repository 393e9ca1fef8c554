// The AMP contract: pure TypeScript, no I/O. Imported by the server, client SDK, bench and tests.
export * from './address.js';
export * from './canonical.js';
export * from './close-codes.js';
export * from './aid-errors.js';
export * from './errors.js';
export * from './ids.js';
export * from './limits.js';
export * from './register-body.js';
export * from './ack-body.js';
export * from './rotate-keys-body.js';
export * from './agent-update-body.js';
export * from './route-body.js';
export * from './attachments.js';
export * from './wire.js';
export * from './json.js';
export * from './frames.js';
export * from './msgpack.js';
