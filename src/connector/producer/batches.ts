/** How a send's messages are cut into signed publishes. */

/**
 * Messages per signed publish. Every message's proof carries its whole batch transaction, so a
 * batch bounds proof size (64 × ~250 B metadata) while still sharing one signature check among many.
 */
export const publishBatchMessagesMax = 64;

/**
 * Splits `items` into maximal runs of consecutive items with the same recipient set (in any order),
 * keeping their order: batches cut from the runs are submitted in order, so offsets still follow
 * the order the application gave.
 */
export function runsOfSameRecipients<T>(
  items: readonly T[],
  recipientsOf: (item: T) => readonly string[],
): T[][] {
  const runs: T[][] = [];
  let previous: string | undefined;
  for (const item of items) {
    const key = JSON.stringify([...new Set(recipientsOf(item))].sort());
    if (key !== previous || runs.length === 0) runs.push([]);
    runs[runs.length - 1]!.push(item);
    previous = key;
  }
  return runs;
}

/**
 * The publishes of one partition's messages, in order: a batch holds only messages with the same
 * recipients (a recipient's proof shows no metadata of messages addressed to others) and at most
 * `publishBatchMessagesMax` of them.
 */
export function publishBatches<T>(items: readonly T[], recipientsOf: (item: T) => readonly string[]): T[][] {
  const batches: T[][] = [];
  for (const run of runsOfSameRecipients(items, recipientsOf)) {
    for (let start = 0; start < run.length; start += publishBatchMessagesMax) {
      batches.push(run.slice(start, start + publishBatchMessagesMax));
    }
  }
  return batches;
}
