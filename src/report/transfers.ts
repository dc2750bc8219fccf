/**
 * What docker's own output says it moved to or from a registry, for the report's
 * MB pulled and pushed per phase. Pure parsing; sizes come from the lines that
 * give them, else from registry manifests (the caller's `sizes`).
 *
 * - BuildKit (plain progress): `#11 pulling sha256:D 0.5s done` for a layer of a
 *   --cache-from image it downloaded (no size; "pulling D done" without a duration
 *   downloaded nothing), `#4 sha256:D 1.05MB / 1.05MB 0.1s done` for a blob of a
 *   FROM image.
 * - docker pull and the classic builder's FROM: `0123456789ab: Pull complete`, the
 *   first 12 hex digits of the compressed digest (`Already exists` moves nothing).
 * - docker push: `0123456789ab: Pushed`, the first 12 hex digits of the diff_id
 *   (`Layer already exists` and `Mounted from` move nothing).
 */

const UNITS: Record<string, number> = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };

/** docker's human sizes ("735B", "1.72kB", "104.9MB": powers of 1000) in bytes. */
export function parseHumanSize(text: string): number | undefined {
  const match = /^([\d.]+)\s*([kKMGT]?B)$/.exec(text.trim());
  const unit = match?.[2] ? UNITS[match[2]] : undefined;
  return match && unit !== undefined ? Math.round(Number(match[1]) * unit) : undefined;
}

/** Blobs a BuildKit build fetched, by digest, with the size its line gave (undefined for cache layers). */
export function buildkitFetches(output: string): Map<string, number | undefined> {
  const fetched = new Map<string, number | undefined>();
  for (const line of output.split('\n')) {
    // Only a pull that took time fetched bytes: BuildKit also prints "pulling D done", without
    // a duration, for cache layers it never downloads (a no-change build on a fresh engine lists
    // every layer of the cache chain that way while the registry serves none of them).
    const pulling = /^#\d+ pulling (sha256:[0-9a-f]{64}) [\d.]+s done\s*$/.exec(line);
    if (pulling?.[1]) {
      fetched.set(pulling[1], undefined);
      continue;
    }
    const downloaded = /^#\d+ (sha256:[0-9a-f]{64}) \S+ \/ (\S+) .*done\s*$/.exec(line);
    if (downloaded?.[1] && downloaded[2]) fetched.set(downloaded[1], parseHumanSize(downloaded[2]));
  }
  return fetched;
}

/** docker's 12-digit ID of a digest or diff_id, as its pull and push lines print it. */
export function shortId(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

function idsWithStatus(output: string, status: RegExp): Set<string> {
  const ids = new Set<string>();
  for (const line of output.split('\n')) {
    const match = /^\s*([0-9a-f]{12}): (.*)$/.exec(line);
    if (match?.[1] && status.test(match[2] ?? '')) ids.add(match[1]);
  }
  return ids;
}

/** Layers docker pull (or the classic builder pulling a FROM image) downloaded: short compressed digests. */
export function pullCompleteIds(output: string): Set<string> {
  // The containerd image store says "Download complete" and never "Pull complete"; the classic one says both.
  return idsWithStatus(output, /^(Pull|Download) complete\s*$/);
}

/** Layers docker push uploaded: short diff_ids. */
export function pushedIds(output: string): Set<string> {
  return idsWithStatus(output, /^Pushed\s*$/);
}

/** Sum of the sizes of `fetched`, taking a blob's size from `sizes` (digest -> bytes) when its line had none; blobs of unknown size add nothing. */
export function fetchedBytes(fetched: ReadonlyMap<string, number | undefined>, sizes: ReadonlyMap<string, number>): number {
  let total = 0;
  for (const [digest, size] of fetched) total += size ?? sizes.get(digest) ?? 0;
  return total;
}

/** Sum of the sizes of the blobs whose digest starts with one of the short IDs. */
export function bytesOfShortIds(ids: ReadonlySet<string>, sizes: ReadonlyMap<string, number>): number {
  let total = 0;
  for (const [digest, size] of sizes) if (ids.has(shortId(digest))) total += size;
  return total;
}
