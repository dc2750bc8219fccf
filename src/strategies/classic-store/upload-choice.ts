/**
 * Which way a cache image goes to the registry. `docker push` uploads only the
 * layers the registry lacks but compresses them at ~26 MB/s; the direct upload
 * (direct-push.ts) moves ~100 MB/s but reads the whole image through `docker save`.
 * So the direct upload wins when the new layers are a fair share of the image.
 * Pure; the sizes come from `docker history` (newest first, 0 for entries without
 * a layer), the known layers from the registry.
 */

export type Uploader = 'direct' | 'engine';
export type UploadChoice = 'auto' | Uploader;

/** Below this, docker push's compression costs well under a second. */
const MIN_NEW_BYTES = 4e6;
/** docker save reads ~4x faster than docker push compresses incompressible bytes. */
const SAVE_SPEEDUP = 4;

/**
 * Bytes of the layers the registry lacks. New layers are usually the top ones
 * (a changed step rebuilds everything after it), so the newest sizes are summed;
 * a new layer of 0 bytes cannot be told from an entry without a layer, which can
 * only make the estimate larger.
 */
export function estimateNewBytes(diffIds: readonly string[], known: ReadonlySet<string>, sizesNewestFirst: readonly number[]): number {
  let newLayers = diffIds.filter((d) => !known.has(d)).length;
  let bytes = 0;
  for (const size of sizesNewestFirst) {
    if (newLayers === 0) break;
    if (size > 0) {
      bytes += size;
      newLayers--;
    }
  }
  return bytes;
}

export function chooseUploader(choice: UploadChoice, diffIds: readonly string[] | undefined, known: ReadonlySet<string>, sizesNewestFirst: readonly number[] | undefined): Uploader {
  if (choice !== 'auto') return choice;
  if (!diffIds || !sizesNewestFirst) return 'engine';
  const total = sizesNewestFirst.reduce((sum, s) => sum + s, 0);
  const fresh = estimateNewBytes(diffIds, known, sizesNewestFirst);
  return fresh >= MIN_NEW_BYTES && fresh * SAVE_SPEEDUP >= total ? 'direct' : 'engine';
}
