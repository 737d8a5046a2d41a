/** A received row as applications see it (the REST API's `ReceivedMessage`). */
import type { ReceivedMessage } from '../api-types.js';
import type { ReceivedRow } from '../connector-database.js';

/** The row with its key and proof in base64 and its columns in camelCase. */
export function toReceivedMessage(row: ReceivedRow): ReceivedMessage {
  return {
    sequence: row.sequence,
    id: row.id,
    topic: row.topic,
    partition: row.partition,
    offset: row.offset,
    sender: row.sender,
    size: row.size,
    sha256: row.sha256,
    contentType: row.content_type,
    key: row.message_key === null ? null : Buffer.from(row.message_key).toString('base64'),
    receivedAt: row.received_at,
    proof: Buffer.from(row.proof).toString('base64'),
  };
}
