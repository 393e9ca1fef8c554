// Key management (spec §6, §23 item 3): API key rotation with a 24 h grace period, revocation of
// every API key, and Ed25519 keypair rotation proven by the current key. Every change closes the
// sessions it invalidates and leaves an audit log line (never a secret).

import { AmpError, CLOSE, invalidField, isoTime, type RotateKeysRequest } from '../../proto/index.js';
import { parsePublicKeyPem } from '../crypto/keys.js';
import type { AgentRecord, DirectoryStore } from '../store/types.js';
import type { Agents } from './agents.js';
import type { AmpLifecycleHooks, RelayContext } from './context.js';
import type { Sessions } from './sessions.js';

const GRACE_MS = 24 * 3600 * 1000;

export class Keys {
  constructor(
    private readonly ctx: RelayContext,
    private readonly agents: Agents,
    private readonly store: DirectoryStore,
    private readonly sessions: Sessions,
    private readonly identity: AmpLifecycleHooks,
  ) {}

  /** POST auth/rotate-key: a new API key; the calling key stays valid 24 h; at most two valid keys. */
  rotateApiKey(agent: AgentRecord, callerKeyHash: string): Promise<Record<string, unknown>> {
    return this.agents.serialized(agent.id, async () => {
      const store = this.store;
      const now = Date.now();
      const fresh = this.agents.current(agent.id);
      const current = store.getApiKey(callerKeyHash);
      // Checked again under the lock: a revoke or rotation queued before us has run by now.
      if (!current || current.agent_id !== agent.id || current.revoked_at !== null)
        throw new AmpError('unauthorized', 'Invalid or expired API key');
      if (current.expires_at !== null) {
        throw new AmpError('forbidden', 'Only the current API key can rotate; this one is in its grace period', {
          field: 'authorization',
        });
      }
      const writes: Promise<void>[] = [];
      for (const h of fresh.key_hashes) {
        const rec = store.getApiKey(h);
        if (!rec || rec.revoked_at !== null) continue;
        if (h === callerKeyHash) writes.push(store.putApiKey(h, { ...rec, expires_at: now + GRACE_MS }));
        else writes.push(store.putApiKey(h, { ...rec, revoked_at: now })); // an older key still in grace
      }
      const olderKeys = new Set(fresh.key_hashes.filter((h) => h !== callerKeyHash));
      const apiKey = await this.agents.issueKey(fresh, now);
      await Promise.all(writes);
      this.agents.closeSessionsOfKeys(agent.id, olderKeys, 'key_revoked');
      this.ctx.logger.info({ event: 'api_key_rotated', agent: agent.id }, 'api key rotated');
      return { api_key: apiKey, expires_at: null, previous_key_valid_until: isoTime(now + GRACE_MS) };
    });
  }

  /** DELETE auth/revoke-key: every API key of the agent stops working now; its sessions close. */
  revokeApiKeys(agent: AgentRecord): Promise<Record<string, unknown>> {
    return this.agents.serialized(agent.id, async () => {
      const now = Date.now();
      const fresh = this.agents.current(agent.id);
      await this.agents.revokeApiKeys(fresh, now);
      this.agents.closeSessionsOfKeys(agent.id, new Set(fresh.key_hashes), 'key_revoked');
      this.ctx.logger.warn({ event: 'api_keys_revoked', agent: agent.id }, 'all api keys revoked');
      return { revoked: true, revoked_at: isoTime(now) };
    });
  }

  /**
   * POST auth/rotate-keys: replace the Ed25519 key. The proof is the current key's signature over
   * the new PEM exactly as sent, its raw 32 bytes, or their lowercase hex. The body's shape was
   * checked by decodeRotateKeysBody; the PEM is parsed here.
   */
  async rotateKeypair(agent: AgentRecord, req: RotateKeysRequest): Promise<Record<string, unknown>> {
    const store = this.store;
    const { new_public_key: pem, proof: sig } = req;
    const next = parsePublicKeyPem(pem);
    if (typeof next === 'string')
      throw invalidField(
        'new_public_key',
        next === 'private_key' ? 'This is a private key. Send the public key' : 'Invalid public key format',
      );
    // Every check runs under the agent's lock against the record as it is now, so two rotations
    // cannot both be proven by the same (by then revoked) key.
    let change: [AgentRecord, AgentRecord] | undefined;
    const out = await this.agents.serialized(agent.id, async () => {
      const old = this.agents.current(agent.id);
      if (next.fingerprint === old.fingerprint)
        throw invalidField('new_public_key', 'new_public_key is the current key');
      if (store.findRevokedKey(next.fingerprint))
        throw new AmpError('key_revoked', 'This key has been revoked and cannot be used', { field: 'new_public_key' });
      if (
        store.findAgentByFingerprint(next.fingerprint) ||
        this.agents.isReserved(next.fingerprint) ||
        this.identity.keyClaimedByOther(old, next.fingerprint)
      ) {
        throw new AmpError('key_already_registered', 'This public key is already registered to another agent', {
          field: 'new_public_key',
          details: { fingerprint: next.fingerprint },
        });
      }
      const currentKey = old.public_key_pem;
      const candidates = [Buffer.from(pem, 'utf8'), next.raw, Buffer.from(next.raw.toString('hex'), 'utf8')];
      let proven = false;
      for (const c of candidates) if (!proven) proven = await this.agents.verifier.verify(currentKey, c, sig);
      if (!proven) {
        this.ctx.logger.warn(
          { event: 'keypair_rotation_refused', agent: agent.id },
          'keypair rotation proof did not verify',
        );
        throw new AmpError('signature_invalid', 'proof does not verify with the current key', { field: 'proof' });
      }
      const now = Date.now();
      await store.revokeKey({
        fingerprint: old.fingerprint,
        fingerprint_raw: old.fingerprint_raw,
        agent_address: old.address,
        revoked_at: now,
        reason: 'key_rotation',
        superseded_by: next.fingerprint,
      });
      const updated: AgentRecord = {
        ...old,
        public_key_pem: next.pem,
        public_key_hex: next.raw.toString('hex'),
        fingerprint: next.fingerprint,
        fingerprint_raw: next.fingerprintRaw,
      };
      await store.replaceAgentKey(old, updated);
      // Sessions proven by the old key end; API-key sessions were not proven by it and stay.
      this.sessions.closeAgent(agent.id, CLOSE.AUTH_FAILED, 'key_rotated', (s) => s.keyHash === undefined);
      this.ctx.logger.info(
        { event: 'keypair_rotated', agent: agent.id, old: old.fingerprint, new: next.fingerprint },
        'keypair rotated',
      );
      change = [old, updated];
      return { rotated: true, fingerprint: next.fingerprint };
    });
    if (change) await this.identity.followAmpKeyRotation(...change);
    return out;
  }
}
