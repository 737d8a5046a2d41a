/** How messages are grouped into signed publishes (the Coalescer cuts the batches). */

/**
 * Messages per signed publish. Every message's proof carries its whole batch transaction, so a
 * batch bounds proof size (64 × ~250 B metadata) while still sharing one signature check among many.
 */
export const publishBatchMessagesMax = 64;

/** One string per recipient set, whatever the order or repeats of its members. */
export function recipientSetKey(recipients: readonly string[]): string {
  return JSON.stringify([...new Set(recipients)].sort());
}

/**
 * Splits `items` into maximal runs of consecutive items with the same recipient set, keeping their
 * order. A batch holds only messages with the same recipients (a recipient's proof shows no
 * metadata of messages addressed to others), so each run goes to its own queue; runs are submitted
 * in order, so offsets still follow the order the application gave.
 */
export function runsOfSameRecipients<T>(
  items: readonly T[],
  recipientsOf: (item: T) => readonly string[],
): T[][] {
  const runs: T[][] = [];
  let previous: string | undefined;
  for (const item of items) {
    const key = recipientSetKey(recipientsOf(item));
    if (key !== previous || runs.length === 0) runs.push([]);
    runs[runs.length - 1]!.push(item);
    previous = key;
  }
  return runs;
}
