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

interface InputRef {
  link?: number;
}

/**
 * Fills links the engine dropped from the image's own chain of steps, where the
 * layer arithmetic leaves no choice. Each step adds at most one layer on top of
 * its first input (the filesystem it ran on). If a linked step at layer m sits j
 * unlinked steps above a linked step at layer k, and m - k = j + 1, every step in
 * between added exactly one layer, so the i-th of them is at layer k + i. The
 * assumption is checked on the image's own linked pairs first (each must differ by
 * 0 or 1, else nothing is inferred); chains through a step with several possible
 * inputs are left alone, and a chain reaches down to the base image only when the
 * caller gives its layer count (checked against this image's first layers). Seen on the 20.10 engine: a cold build whose own records lacked
 * the links of COPY deps and RUN deps (layers 3 and 4) between WORKDIR (2) and
 * COPY src (5); the next source change then re-ran the 8 s step.
 */
export function inferChainLinks(target: ImageConfig, baseLayers?: number): { config: ImageConfig; repaired: number } | undefined {
  const own = records(target);
  const layerCount = target.rootfs?.diff_ids?.length ?? 0;
  if (!own) return undefined;
  // The FROM image: a record without inputs under a step's filesystem. Its result is the
  // base's layers, when the caller has checked how many there are.
  const base: CacheRecord = { digest: '(base image)' };
  const isSource = (r: CacheRecord | undefined): boolean => r !== undefined && (!r.inputs || (r.inputs as unknown[]).length === 0);
  const layerOf = (r: CacheRecord | undefined): number | undefined => {
    if (r === base) return baseLayers !== undefined && baseLayers > 0 ? baseLayers - 1 : undefined;
    return r?.layers && r.layers.length > 0 ? r.layers[0]?.layer : undefined;
  };
  const parentOf = (r: CacheRecord): CacheRecord | undefined => {
    const first = (r.inputs as InputRef[][] | undefined)?.[0] ?? [];
    const candidates = first.map((alt) => (alt.link === undefined ? undefined : own[alt.link]));
    if (candidates.length === 0 || candidates.some((c) => c === undefined)) return undefined;
    if (candidates.every(isSource)) return base;
    return candidates.length === 1 ? candidates[0] : undefined;
  };
  for (const record of own) {
    const mine = layerOf(record);
    const below = layerOf(parentOf(record));
    if (mine !== undefined && below !== undefined && (mine - below < 0 || mine - below > 1)) return undefined;
  }
  let repaired = 0;
  for (const top of own) {
    const m = layerOf(top);
    if (m === undefined) continue;
    const unlinked: CacheRecord[] = [];
    let current = parentOf(top);
    while (current && layerOf(current) === undefined && !unlinked.includes(current)) {
      unlinked.push(current);
      current = parentOf(current);
    }
    const k = layerOf(current);
    if (k === undefined || unlinked.length === 0 || m - k !== unlinked.length + 1 || m >= layerCount) continue;
    const createdAt = top.layers?.[0]?.createdAt;
    unlinked.reverse().forEach((record, i) => {
      record.layers = [{ layer: k + 1 + i, ...(createdAt ? { createdAt } : {}) }];
      repaired++;
    });
  }
  if (repaired === 0) return undefined;
  return { config: { ...target, [INLINE_CACHE_KEY]: Buffer.from(JSON.stringify(own)).toString('base64') }, repaired };
}
