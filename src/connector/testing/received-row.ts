import type { ReceivedRow } from '../connector-database.js';

/** A received message row as the consumer would store it, small and valid, for database tests. */
export function receivedRow(
  id: string,
  topic: string,
  overrides: Partial<ReceivedRow> = {},
): Omit<ReceivedRow, 'sequence' | 'confirmed'> {
  return {
    id,
    topic,
    partition: 0,
    group_id: `${topic}/0`,
    offset: 0,
    sender: 'org1',
    size: 3,
    sha256: 'a'.repeat(64),
    storage_key: 'a'.repeat(64),
    content_type: 'text/plain',
    message_key: null,
    proof: new Uint8Array([1]),
    received_at: 1,
    ...overrides,
  };
}
