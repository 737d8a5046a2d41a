/**
 * The genesis document's format: what a genesis file may hold and the types parsed from it. Genesis is
 * JSON (people read and diff it) with keys as lowercase hex; `parseGenesis` (genesis.ts) applies this
 * schema and then cross-checks ids and references.
 *
 * It lives apart from the parser because the registry's state machines and views need the `Genesis`
 * type while the parser builds a `RegistryView` from them: with both in one module the registry
 * imported itself in a circle.
 */
import { t } from '../codec/index.js';
import type { Infer } from '../codec/index.js';
import { policySchema } from './admin-transactions.js';

const hexKey32 = t.string({ pattern: /^[0-9a-f]{64}$/ });
const identifier = t.string({ minLength: 1, maxLength: 128, pattern: /^[a-zA-Z0-9._-]+$/ });
const address = t.string({ maxLength: 300, pattern: /^[^\s:]+:\d{1,5}$/ });

const organizationSchema = t.record({
  id: identifier,
  roles: t.array(t.oneOf('member', 'supervisor', 'auditor'), { minItems: 1, maxItems: 3 }),
  /** Ed25519 keys of the organization's connectors: any one may sign its transactions. */
  signingKeys: t.array(hexKey32, { minItems: 1, maxItems: 16 }),
  /** X25519 key that payloads are encrypted to (HPKE). */
  encryptionKey: hexKey32,
});

const nodeSchema = t.record({
  id: identifier,
  organization: identifier,
  /** Ed25519 key the node signs consensus messages with and pins in TLS. */
  publicKey: hexKey32,
  /** host:port of its listener (peers and connectors). */
  address,
});

const topicSchema = t.record({
  name: t.string({ minLength: 1, maxLength: 249, pattern: /^[a-zA-Z0-9._-]+$/ }),
  partitions: t.array(t.record({ replicas: t.array(identifier, { minItems: 4, maxItems: 7 }) }), {
    minItems: 1,
    maxItems: 1024,
  }),
  producers: t.array(identifier, { maxItems: 1024 }),
  consumers: t.array(identifier, { maxItems: 1024 }),
  /**
   * messageBytesMax, ttlMs, payloadRetentionMs, and for an escrow topic `"availability": "escrow"`
   * with `escrow` (chunkBytes, replicas, threshold, shares, auditApprovals): the same record a
   * createTopic transaction carries, checked by `validateTopicPolicy` in `parseGenesis`.
   */
  policy: policySchema,
});

export const genesisSchema = t.record({
  network: identifier,
  organizations: t.array(organizationSchema, { minItems: 1, maxItems: 10_000 }),
  nodes: t.array(nodeSchema, { minItems: 1, maxItems: 10_000 }),
  topics: t.array(topicSchema, { maxItems: 10_000 }),
});
export type Genesis = Infer<typeof genesisSchema>;
export type GenesisOrganization = Infer<typeof organizationSchema>;
export type GenesisNode = Infer<typeof nodeSchema>;
export type GenesisTopic = Infer<typeof topicSchema>;
