/**
 * The process's clock and timers in the shape the partition and Raft group drivers take
 * (`PartitionClock`, `RaftClock`): `setTimeout` returns the function that cancels it.
 */
export const processClock = {
  now: (): number => Date.now(),
  setTimeout(callback: () => void, ms: number): () => void {
    const timer = setTimeout(callback, ms);
    return () => clearTimeout(timer);
  },
};
