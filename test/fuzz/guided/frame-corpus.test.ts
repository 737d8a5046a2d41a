/**
 * Replays the committed corpus of frame-decoder.fuzz.ts (seeds, inputs the fuzzer kept for new
 * coverage, and any crash-* / timeout-* reproducer it saved) through the same check, so CI guards
 * the corpus without running the fuzzer.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkFrameInput } from './frame-decoder.fuzz.js';

const directory = new URL('./corpus/frames/', import.meta.url);
const entries = readdirSync(directory)
  .filter((name) => !name.startsWith('.'))
  .sort();

describe('frame decoder fuzz corpus', () => {
  it('has the seed corpus', () => {
    expect(entries.filter((name) => name.startsWith('seed-')).length).toBeGreaterThan(0);
  });

  it.each(entries)('%s', (name) => {
    expect(() => checkFrameInput(readFileSync(new URL(name, directory)))).not.toThrow();
  });
});
