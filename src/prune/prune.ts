import { createHash, randomBytes } from 'node:crypto';
import { type ImageRef, withTag } from '../plan/image-ref.js';
import { type RegistryApi, RegistryError } from '../registry/registry.js';
import { type CacheTag, judge, parseCacheTags, type Policy, type Reason } from './classify.js';

/**
 * Removes the cache tags of branches that are gone. The registry API deletes a manifest
 * by digest, which removes every tag pointing at it; cache tags share digests with
 * deploy tags (manifest copies) and with other branches' caches, so a digest is deleted
 * only when no kept tag points at it. A gone tag whose digest is shared is first pointed
 * at a small manifest of its own, which is then deleted: the tag goes, the shared
 * manifest and every kept tag stay as they were.
 */
export interface PruneOptions {
  readonly repo: Pick<ImageRef, 'domain' | 'path'>;
  readonly policy: Policy;
  readonly remove: boolean;
  /** Registry requests at once. */
  readonly concurrency: number;
  readonly now: number;
}

export interface PruneRow {
  readonly tag: string;
  readonly scheme: CacheTag['scheme'];
  /** "branch TOKEN" or "unprefixed". */
  readonly scope: string;
  readonly ageDays: number | null;
  readonly digest: string | null;
  action: 'keep' | 'delete';
  reason: Reason;
  /** With --delete: what happened. */
  result?: 'deleted' | 'untagged' | 'failed';
  message?: string;
}

export interface PruneResult {
  readonly repository: string;
  readonly tagsListed: number;
  readonly rows: PruneRow[];
  readonly deleted: boolean;
}

/** The registry refused a delete (not enabled, or no rights): what was done before it is in `rows`. */
export class DeleteRefused extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly result: PruneResult,
  ) {
    super(message);
  }
}

const EMPTY_CONFIG = Buffer.from('{}');
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Runs `work` over `items`, at most `limit` at once, results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  });
  await Promise.all(workers);
  return results;
}

/** When a cache was written: an image's config `created`, or the time the helper recorded in a registry cache's index. */
async function createdAt(registry: RegistryApi, ref: ImageRef): Promise<number | undefined> {
  try {
    const manifest = await registry.getManifest(ref);
    const body = JSON.parse(manifest.body.toString('utf8')) as { config?: { digest?: string; mediaType?: string }; annotations?: Record<string, string>; manifests?: { annotations?: Record<string, string> }[] };
    const annotated = body.annotations?.['org.docker-build-remote-cache.created'] ?? body.annotations?.['org.opencontainers.image.created'];
    if (annotated) return Date.parse(annotated);
    // BuildKit notes when each layer of a registry cache was made.
    const layerTimes = (body.manifests ?? []).map((m) => Date.parse(m.annotations?.['buildkit/createdat'] ?? '')).filter(Number.isFinite);
    if (layerTimes.length > 0) return Math.max(...layerTimes);
    if (!body.config?.digest || /buildkit\.cacheconfig/.test(body.config.mediaType ?? '')) return undefined;
    const image = await registry.image(ref);
    const created = Date.parse(String(image.config.created ?? ''));
    return Number.isFinite(created) ? created : undefined;
  } catch {
    return undefined;
  }
}

export async function prune(registry: RegistryApi, options: PruneOptions): Promise<PruneResult> {
  const { repo } = options;
  const tags = await registry.tags(repo);
  const cacheTags = parseCacheTags(tags);
  // Every tag's digest: kept tags that are not cache tags (deploy tags) protect what they point at too.
  const digests = new Map<string, string | null>();
  await mapLimit(tags, options.concurrency, async (tag) => {
    const info = await registry.head(withTag(repo, tag)).catch(() => undefined);
    digests.set(tag, info?.digest || null);
  });
  const ages = await mapLimit(cacheTags, options.concurrency, (t) => createdAt(registry, withTag(repo, t.tag)));
  const rows: PruneRow[] = cacheTags.map((tag, i) => {
    const created = ages[i];
    const ageDays = created === undefined ? undefined : (options.now - created) / 86_400_000;
    const verdict = judge(tag, ageDays, options.policy);
    return {
      tag: tag.tag,
      scheme: tag.scheme,
      scope: tag.token === null ? 'unprefixed' : `branch ${tag.token}`,
      ageDays: ageDays === undefined ? null : Math.round(ageDays * 10) / 10,
      digest: digests.get(tag.tag) ?? null,
      action: verdict.action,
      reason: verdict.reason,
    };
  });
  // A digest is deleted only when no kept tag points at it.
  const doomed = new Set(rows.filter((r) => r.action === 'delete').map((r) => r.tag));
  const kept = new Set([...digests].filter(([tag]) => !doomed.has(tag)).map(([, digest]) => digest));
  const shared = rows.filter((r) => r.action === 'delete' && (r.digest === null || kept.has(r.digest)));
  const result: PruneResult = { repository: `${repo.domain ? `${repo.domain}/` : ''}${repo.path}`, tagsListed: tags.length, rows, deleted: options.remove };
  if (!options.remove) return result;

  const refused = (error: unknown): never => {
    const status = error instanceof RegistryError ? error.status : undefined;
    throw new DeleteRefused((error as Error).message, status, result);
  };
  const isRefusal = (error: unknown): boolean => error instanceof RegistryError && (error.status === 405 || error.status === 401 || error.status === 403 || /UNSUPPORTED/.test(error.message));

  // Whole manifests that only gone tags use: one DELETE each.
  const byDigest = new Map<string, PruneRow[]>();
  for (const row of rows) if (row.action === 'delete' && !shared.includes(row) && row.digest) byDigest.set(row.digest, [...(byDigest.get(row.digest) ?? []), row]);
  for (const [digest, group] of byDigest) {
    try {
      await registry.deleteManifest(withTag(repo, digest));
      for (const row of group) row.result = 'deleted';
    } catch (error) {
      if (isRefusal(error)) refused(error);
      for (const row of group) Object.assign(row, { result: 'failed', message: (error as Error).message });
    }
  }
  // Tags whose manifest a kept tag shares: each pointed at a manifest of its own, which is deleted.
  if (shared.length > 0) {
    let configReady: Promise<unknown> | undefined;
    // One at a time: the registry resolves a manifest delete against every tag of the repository.
    await mapLimit(shared, 1, async (row) => {
      try {
        configReady ??= registry.hasBlob(repo, digestOf(EMPTY_CONFIG)).then((has) => (has ? undefined : registry.pushBlob(repo, EMPTY_CONFIG)));
        await configReady;
        const body = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_MANIFEST,
            config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(EMPTY_CONFIG), size: EMPTY_CONFIG.length },
            layers: [],
            annotations: { 'org.docker-build-remote-cache.untag': `${row.tag} ${randomBytes(8).toString('hex')}` },
          }),
        );
        await registry.putManifest(withTag(repo, row.tag), { body, mediaType: OCI_MANIFEST, digest: '' });
        await registry.deleteManifest(withTag(repo, digestOf(body)));
        row.result = 'untagged';
      } catch (error) {
        if (isRefusal(error)) refused(error);
        // Neither way worked: the tag is kept, and the table says why.
        Object.assign(row, { action: 'keep', reason: 'shares its manifest with a kept tag', result: 'failed', message: (error as Error).message });
      }
    });
  }
  return result;
}

function digestOf(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
