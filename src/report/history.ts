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

/** Seconds each step took when the image was built, by normalised instruction. */
export function stepDurations(history: readonly HistoryEntry[]): Map<string, number> {
  const durations = new Map<string, number>();
  for (let i = 1; i < history.length; i++) {
    const before = history[i - 1];
    const entry = history[i];
    const previous = Date.parse(before?.created ?? '');
    const current = Date.parse(entry?.created ?? '');
    const seconds = (current - previous) / 1000;
    // The first step after the base image measures the base image's age, not a step:
    // BuildKit marks its own entries, and a gap of over half an hour is never one step here.
    const fromBase = (entry?.created_by ?? '').endsWith('# buildkit') && !(before?.created_by ?? '').endsWith('# buildkit');
    if (!Number.isFinite(seconds) || seconds < 0 || seconds > 1800 || fromBase) continue;
    const key = normaliseInstruction(history[i]?.created_by ?? '');
    if (key !== '') durations.set(key, seconds);
  }
  return durations;
}

/** Sum of the known durations of the given (cached) instructions. */
export function savedSeconds(cachedInstructions: readonly string[], durations: ReadonlyMap<string, number>): number {
  return cachedInstructions.reduce((sum, instruction) => sum + (durations.get(normaliseInstruction(instruction)) ?? 0), 0);
}
