/**
 * The escrow of each message this connector sent on an escrow topic: the Feldman sharing its data
 * key derives from, and the escrow metadata it published. A retried send (same topic and id) must
 * publish the very bytes the first attempt did — the message's leaf, the holders' receipts and the
 * sealed shares all refer to them — and must not place the chunks a second time under a new secret.
 *
 * Order matters: the stored ciphertext is encrypted under a key derived from the secret, so the
 * sharing is kept (`keepSharing`) BEFORE the payload it encrypts is stored, and the metadata is
 * added (`put`) once the chunks are placed. A send that crashed in between finds the same sharing
 * again and places the same ciphertext under it (the secret alone would not do: the shares and
 * commitments come from the random polynomial, which only the whole sharing keeps).
 *
 * The sharing is kept in the clear, like the payload it protects: this connector can decrypt its
 * own payload anyway. Rows go with the message (`delete`, when its sent row goes).
 */
import type Database from 'better-sqlite3';
import { bytesEqual, decodeWith, encodeWith, t } from '../../codec/index.js';
import { escrowLimits, escrowMetadataSchema } from '../../contracts/escrow/transactions.js';
import type { EscrowMetadata } from '../../contracts/escrow/transactions.js';
import type { FeldmanSharing } from '../../crypto/escrow/index.js';
import { assert } from '../../errors.js';

const table = `
  CREATE TABLE IF NOT EXISTS escrow_sent (
    topic TEXT NOT NULL,
    id TEXT NOT NULL,
    sharing BLOB NOT NULL,
    metadata BLOB,
    PRIMARY KEY (topic, id)
  ) WITHOUT ROWID;
`;

const scalar = t.bytes({ length: 32 });
const sharingSchema = t.record({
  secret: scalar,
  commitments: t.array(scalar, { minItems: 1, maxItems: escrowLimits.sharesMax }),
  shares: t.array(t.record({ index: t.uint({ min: 1, max: escrowLimits.sharesMax }), value: scalar }), {
    minItems: 1,
    maxItems: escrowLimits.sharesMax,
  }),
});

/** Encoded metadata is the master table plus shares, commitments and placement: well under this. */
const metadataBytesMax = escrowLimits.masterTableBytesMax + 256 * 1024;

export interface SentEscrow {
  /** The Feldman secret (32-byte scalar) the payload's data key and master-table key derive from. */
  readonly secret: Uint8Array;
  /** The whole sharing of `secret` (what `EscrowPlacer.place` takes). */
  readonly sharing: FeldmanSharing;
  readonly metadata: EscrowMetadata;
}

interface SentEscrowRow {
  sharing: Buffer;
  /** NULL while the chunks are being placed. */
  metadata: Buffer | null;
}

export class SentEscrowStore {
  /** Creates the table if it is missing; `db` is the connector's database (`ConnectorDatabase.db`). */
  constructor(private readonly db: Database.Database) {
    db.exec(table);
  }

  /** The escrow of (topic, id) once its metadata is stored, else undefined. A damaged row throws. */
  get(topic: string, id: string): SentEscrow | undefined {
    const row = this.row(topic, id);
    if (row === undefined || row.metadata === null) return undefined;
    const sharing = decodeSharing(row.sharing);
    return {
      secret: sharing.secret,
      sharing,
      metadata: decodeWith(escrowMetadataSchema, new Uint8Array(row.metadata), {
        maxBytes: metadataBytesMax,
      }),
    };
  }

  /** The sharing kept for (topic, id), with or without its metadata yet. */
  sharing(topic: string, id: string): FeldmanSharing | undefined {
    const row = this.row(topic, id);
    return row === undefined ? undefined : decodeSharing(row.sharing);
  }

  /**
   * Keeps `sharing` for (topic, id) durably unless one is kept already, and returns the one kept:
   * derive the data key from ITS secret. Call before the payload encrypted under it is stored.
   */
  keepSharing(topic: string, id: string, sharing: FeldmanSharing): FeldmanSharing {
    this.db
      .prepare(
        'INSERT INTO escrow_sent (topic, id, sharing, metadata) VALUES (?, ?, ?, NULL) ON CONFLICT (topic, id) DO NOTHING',
      )
      .run(topic, id, encodeSharing(sharing));
    const kept = this.sharing(topic, id);
    assert(kept !== undefined, 'an escrow row exists once inserted');
    return kept;
  }

  /**
   * Stores the escrow of (topic, id) durably, unless its metadata is stored already: the FIRST
   * escrow of a message is the one it keeps, so two racing attempts publish the same bytes. Returns
   * what is stored now — publish that, not `metadata`, when they differ. `sharing` must be the one
   * kept for the message, if one is (asserted: metadata made under another secret would escrow a
   * key that does not decrypt the stored payload). Throws LedgerbusError(SchemaMismatch) naming the
   * field if `metadata` does not fit the contract's schema.
   */
  put(topic: string, id: string, sharing: FeldmanSharing, metadata: EscrowMetadata): SentEscrow {
    const encoded = encodeWith(escrowMetadataSchema, metadata);
    const stored = this.db.transaction(() => {
      const kept = this.keepSharing(topic, id, sharing);
      assert(
        bytesEqual(kept.secret, sharing.secret),
        'escrow metadata is stored under the sharing kept for it',
      );
      this.db
        .prepare('UPDATE escrow_sent SET metadata = ? WHERE topic = ? AND id = ? AND metadata IS NULL')
        .run(encoded, topic, id);
      return this.get(topic, id);
    })();
    assert(stored !== undefined, 'escrow metadata exists once stored');
    return stored;
  }

  /** Forgets the escrow of (topic, id); true if there was one. */
  delete(topic: string, id: string): boolean {
    return this.db.prepare('DELETE FROM escrow_sent WHERE topic = ? AND id = ?').run(topic, id).changes > 0;
  }

  private row(topic: string, id: string): SentEscrowRow | undefined {
    return this.db
      .prepare<[string, string], SentEscrowRow>(
        'SELECT sharing, metadata FROM escrow_sent WHERE topic = ? AND id = ?',
      )
      .get(topic, id);
  }
}

function encodeSharing(sharing: FeldmanSharing): Uint8Array {
  return encodeWith(sharingSchema, {
    secret: sharing.secret,
    commitments: [...sharing.commitments],
    shares: sharing.shares.map((share) => ({ index: share.index, value: share.value })),
  });
}

function decodeSharing(bytes: Buffer): FeldmanSharing {
  const decoded = decodeWith(sharingSchema, new Uint8Array(bytes));
  return { secret: decoded.secret, commitments: [...decoded.commitments], shares: [...decoded.shares] };
}
