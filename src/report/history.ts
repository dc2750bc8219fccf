/**
 * Estimates what a cache hit saved: an image config's history has a "created"
 * time per step, so the gap between consecutive entries is how long the step took
 * when it last ran. Pure functions; matching is by instruction text, best effort.
 */

export interface HistoryEntry {
  readonly created?: string;
  readonly created_by?: string;
}

/** Normalises an instruction as BuildKit or the classic builder records it. */
export function normaliseInstruction(text: string): string {
  return text
    .replace(/\s+# buildkit$/, '')
    .replace(/^\/bin\/sh -c #\(nop\)\s+/, '')
    .replace(/^\/bin\/sh -c /, 'RUN ')
    .replace(/^RUN \/bin\/sh -c /, 'RUN ')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Seconds each step took when the image was built, by normalised instruction.
 * `ownEntries`: how many of the last entries are the stage's own, when known. The
 * first of them is measured against the entry before it, the base image's, so its
 * gap is the base's age, not a step (a base built two minutes earlier read as a
 * 150 s step on Docker 26, whose BuildKit no longer marks its entries): left out.
 */
export function stepDurations(history: readonly HistoryEntry[], ownEntries?: number): Map<string, number> {
  const durations = new Map<string, number>();
  const baseEntries = ownEntries === undefined ? undefined : history.length - ownEntries;
  // More own entries than the image has: the count does not match this image; trust none.
  if (baseEntries !== undefined && baseEntries < 0) return durations;
  const first = baseEntries === undefined ? 1 : baseEntries + 1;
  for (let i = Math.max(1, first); i < history.length; i++) {
    const before = history[i - 1];
    const entry = history[i];
    const previous = Date.parse(before?.created ?? '');
    const current = Date.parse(entry?.created ?? '');
    const seconds = (current - previous) / 1000;
    // Without the stage's own count: BuildKit 0.8 marked its own entries ("# buildkit"), and
    // a gap of over half an hour is never one step here.
    const fromBase = baseEntries === undefined && isBuildkitEntry(entry) && !isBuildkitEntry(before);
    if (!Number.isFinite(seconds) || seconds < 0 || seconds > 1800 || fromBase) continue;
    const key = normaliseInstruction(history[i]?.created_by ?? '');
    if (key !== '') durations.set(key, seconds);
  }
  return durations;
}

function isBuildkitEntry(entry: HistoryEntry | undefined): boolean {
  return (entry?.created_by ?? '').endsWith('# buildkit');
}

/** Sum of the known durations of the given (cached) instructions. */
export function savedSeconds(cachedInstructions: readonly string[], durations: ReadonlyMap<string, number>): number {
  return cachedInstructions.reduce((sum, instruction) => sum + (durations.get(normaliseInstruction(instruction)) ?? 0), 0);
}
