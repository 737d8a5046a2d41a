/**
 * Logging what a peer can make us log as often as it likes (refused keys, quota refusals) would turn
 * a flood into a log flood. A throttle lets one line per key through per interval and counts the
 * rest, so the next line says how many were held back.
 */
export class LogThrottle {
  /** At most `keysMax` keys, the oldest forgotten first. */
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number,
    /** Keys remembered at most; the oldest is forgotten first (an attacker may vary the key). */
    private readonly keysMax = 1024,
  ) {}

  /**
   * Undefined if this line should be held back; otherwise how many lines for `key` were held back
   * since the last one that went through.
   */
  admit(key: string): number | undefined {
    const now = this.now();
    const entry = this.last.get(key);
    if (entry !== undefined && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return undefined;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.last.delete(key);
    this.last.set(key, { at: now, suppressed: 0 });
    if (this.last.size > this.keysMax) this.last.delete(this.last.keys().next().value as string);
    return suppressed;
  }
}
