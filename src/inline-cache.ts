/**
 * BuildKit's inline cache lives in the image config under "moby.buildkit.cache.v0"
 * (base64 JSON): records keyed by cache-key digest, each with the index of the
 * image layer that holds its result. On this project's engine (BuildKit 0.8) a
 * step that was a cache hit is written back without its layer link, so a cache
 * image rebuilt partly from cache stops serving that step (ENGINE.md). Its layers
 * are the same as in the image the hit came from, though: where the source image
 * links a record to layer i and both images have the same layers 0..i, the link
 * is valid for the new image too, and can be written back. Pure functions.
 */

export const INLINE_CACHE_KEY = 'moby.buildkit.cache.v0';

interface CacheRecord {
  digest?: string;
  layers?: { layer: number; createdAt?: string }[];
  [key: string]: unknown;
}

export interface ImageConfig {
  rootfs?: { diff_ids?: string[] };
  [key: string]: unknown;
}

function records(config: ImageConfig): CacheRecord[] | undefined {
  const encoded = config[INLINE_CACHE_KEY];
  if (typeof encoded !== 'string') return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as unknown;
    return Array.isArray(parsed) ? (parsed as CacheRecord[]) : undefined;
  } catch {
    return undefined;
  }
}

function samePrefix(a: readonly string[], b: readonly string[], upTo: number): boolean {
  if (upTo >= a.length || upTo >= b.length) return false;
  for (let i = 0; i <= upTo; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Returns the config with layer links restored from `sources`, and how many
 * records were repaired; undefined when nothing needed repair.
 */
export function repairInlineCache(target: ImageConfig, sources: readonly ImageConfig[]): { config: ImageConfig; repaired: number } | undefined {
  const own = records(target);
  const ownLayers = target.rootfs?.diff_ids ?? [];
  if (!own) return undefined;
  const missing = new Map<string, CacheRecord>();
  for (const record of own) if (record.digest && (!record.layers || record.layers.length === 0)) missing.set(record.digest, record);
  let repaired = 0;
  for (const source of sources) {
    const theirs = records(source);
    const theirLayers = source.rootfs?.diff_ids ?? [];
    for (const record of theirs ?? []) {
      const hole = record.digest ? missing.get(record.digest) : undefined;
      if (!hole || !record.layers || record.layers.length === 0) continue;
      if (!record.layers.every((l) => samePrefix(ownLayers, theirLayers, l.layer))) continue;
      hole.layers = record.layers.map((l) => ({ ...l }));
      missing.delete(record.digest ?? '');
      repaired++;
    }
  }
  if (repaired === 0) return undefined;
  return { config: { ...target, [INLINE_CACHE_KEY]: Buffer.from(JSON.stringify(own)).toString('base64') }, repaired };
}
