import type { Docker } from '../engine/docker.js';
import { firstLine, tail } from '../errors.js';
import { formatRef, type ImageRef } from '../plan/image-ref.js';
import type { Logger } from '../log.js';
import { type Manifest, RegistryError, type RegistryApi } from './registry.js';

type RemoteImage = Awaited<ReturnType<RegistryApi['image']>>;
import { classifyFailure, type RetryPolicy, withRetry } from './retry.js';
import { inferChainLinks, repairInlineCache } from '../strategies/legacy/inline-cache.js';
import { type HistoryEntry, stepDurations } from '../report/history.js';
import { type KnownBlob, pushImageDirect, type UploadedLayer } from '../strategies/legacy/direct-push.js';
import { chooseUploader, type UploadChoice, type Uploader } from '../strategies/legacy/upload-choice.js';
import { bytesOfShortIds, pushedIds } from '../report/transfers.js';

const TIMED_OUT = 'timed out after';

export type Lookup = 'found' | 'missing' | 'unknown';

/** The index annotation that holds a registry cache's step times (seconds by stage and instruction). */
const STEP_SECONDS = 'org.docker-build-remote-cache.step-seconds';

interface Blob {
  readonly digest: string;
  readonly size: number;
  readonly mediaType?: string;
}

interface EarlyUploads {
  /** Early uploads into the repository (each waits for those before it, so no layer goes twice). */
  readonly pending: Promise<unknown>[];
  /** The same, by the cache tag they prepare: its push waits for them. */
  readonly pendingByTag: Map<string, Promise<unknown>[]>;
  readonly layers: Map<number, UploadedLayer>;
}

export interface OpResult {
  readonly ok: boolean;
  readonly message: string;
  /** docker's output (pull, push), read for what moved (transfers.ts). */
  readonly output?: string;
}

/**
 * Registry operations for caches: best-effort, retried when the failure is
 * transient, and skipped for a registry that was found unreachable, so a dead
 * registry costs one timeout, not one per tag.
 */
export class CacheOps {
  retries = 0;
  private readonly down = new Set<string>();
  private readonly noPushRights = new Set<string>();
  /** Manifests and configs read from the registry, by reference; dropped when this run writes the tag. */
  private readonly images = new Map<string, Promise<RemoteImage | undefined>>();
  /** Manifests read this run, by reference: the registry-cache path reads each cache's several times (sizes, step times, blobs). */
  private readonly manifests = new Map<string, Promise<Manifest | undefined>>();
  /**
   * Layers this run uploaded itself: the registry has them, but docker push does
   * not know that and would compress and upload them again.
   */
  private readonly directLayers = new Set<string>();
  /**
   * Layers this run uploaded directly, by repository and tar size (early uploads of a
   * stage's dependency part, and direct cache pushes); pushes of that repository wait
   * for the early uploads under way.
   */
  private readonly early = new Map<string, EarlyUploads>();

  constructor(
    private readonly docker: Docker,
    private readonly registry: RegistryApi,
    private readonly log: Logger,
    private readonly policy: RetryPolicy,
    private readonly timeoutMs: number,
  ) {}

  private domainOf(ref: ImageRef): string {
    return ref.domain ?? 'docker.io';
  }

  isDown(ref: ImageRef): boolean {
    return this.down.has(this.domainOf(ref));
  }

  private markDown(ref: ImageRef, message: string): void {
    const domain = this.domainOf(ref);
    if (this.down.has(domain)) return;
    this.down.add(domain);
    this.log.warn(`registry ${domain} is unreachable (${firstLine(message)}); cache operations on it are skipped for the rest of this run`);
  }

  /**
   * `timeoutMeansDown`: a lookup or pull that keeps timing out says the registry
   * stalls; a push may time out on one large layer while the registry is fine.
   */
  private async retrying(
    what: string,
    ref: ImageRef,
    attempt: () => Promise<OpResult>,
    timeoutMeansDown = true,
    bestEffort = true,
    giveUp?: (message: string) => boolean,
  ): Promise<OpResult> {
    // Best-effort cache work skips a registry given up on; the deploy push always tries.
    if (bestEffort && this.isDown(ref)) return { ok: false, message: `registry ${this.domainOf(ref)} is unreachable` };
    const { value, retries } = await withRetry(
      this.policy,
      async () => {
        const result = await attempt();
        return { ok: result.ok, value: result, message: result.message };
      },
      undefined,
      (n, message, delay) => this.log.info(`  retry ${n} of ${what} ${formatRef(ref)} in ${(delay / 1000).toFixed(1)}s: ${firstLine(message)}`),
      giveUp,
    );
    this.retries += retries;
    // A registry that refused connections, or kept timing out, is not asked again.
    const unreachable = classifyFailure(value.message) === 'unreachable' && !/timed out|timeout/i.test(value.message);
    if (!value.ok && (unreachable || (timeoutMeansDown && /timed out|timeout/i.test(value.message)))) this.markDown(ref, value.message);
    return value;
  }

  /** Lookups started ahead of resolve (while the engine is probed), taken once by `lookup`. */
  private readonly prefetched = new Map<string, Promise<Lookup>>();

  prefetchLookups(refs: readonly ImageRef[]): void {
    for (const ref of refs) if (!this.prefetched.has(formatRef(ref))) this.prefetched.set(formatRef(ref), this.lookupNow(ref));
  }

  /** Whether a tag exists, asked through the registry API. 'unknown' when the API cannot tell. */
  lookup(ref: ImageRef): Promise<Lookup> {
    const ahead = this.prefetched.get(formatRef(ref));
    this.prefetched.delete(formatRef(ref));
    return ahead ?? this.lookupNow(ref);
  }

  private async lookupNow(ref: ImageRef): Promise<Lookup> {
    let found: Lookup = 'unknown';
    const result = await this.retrying('lookup of', ref, async () => {
      try {
        found = (await this.registry.head(ref)) === undefined ? 'missing' : 'found';
        return { ok: true, message: '' };
      } catch (error) {
        return { ok: false, message: (error as Error).message };
      }
    });
    if (!result.ok) this.log.debug(`lookup of ${formatRef(ref)} failed: ${result.message}`);
    return result.ok ? found : 'unknown';
  }

  async pull(ref: ImageRef): Promise<OpResult> {
    return this.retrying('pull of', ref, async () => {
      const result = await this.docker.pull(formatRef(ref), this.timeoutMs);
      return { ok: result.exitCode === 0, message: result.timedOut ? `${TIMED_OUT} ${this.timeoutMs / 1000}s` : tail(result.stderr || result.stdout, 3), output: result.stdout };
    });
  }

  /** Whether an earlier cache push to this registry was refused for lack of rights. */
  cannotPush(ref: ImageRef): boolean {
    return this.noPushRights.has(this.domainOf(ref));
  }

  /** Pushes with retries. A cache push is best-effort; the deploy push (`deploy`) is not. */
  async push(ref: ImageRef, purpose: 'cache' | 'deploy' = 'cache'): Promise<OpResult> {
    this.forget(ref);
    // A cache push is not started over when it used all of --timeout, or when the engine
    // already retried its layer uploads (docker push prints "Retrying in N seconds"; about
    // 50 s of them against a registry that resets every large upload): best-effort work
    // must not multiply a stall.
    let settledByEngine = false;
    const giveUp = purpose === 'cache' ? (message: string): boolean => settledByEngine || message.startsWith(TIMED_OUT) : undefined;
    const result = await this.retrying(`${purpose} push of`, ref, async () => {
      const pushed = await this.docker.push(formatRef(ref), this.timeoutMs);
      settledByEngine = /Retrying in \d+ seconds?/.test(pushed.stdout);
      return { ok: pushed.exitCode === 0, message: pushed.timedOut ? `${TIMED_OUT} ${this.timeoutMs / 1000}s` : tail(pushed.stderr || pushed.stdout, 5), output: pushed.stdout };
    }, false, purpose === 'cache', giveUp);
    if (purpose === 'cache' && !result.ok) this.noteRefusedPush(ref, result.message);
    return result;
  }

  /**
   * A push the registry refused for want of rights (401/403) marks it: later cache
   * pushes there are skipped, with one warning. True when `message` says so.
   */
  noteRefusedPush(ref: ImageRef, message: string): boolean {
    if (!/unauthorized|denied|authentication required|forbidden|\b40[13]\b/i.test(message)) return false;
    const domain = this.domainOf(ref);
    if (!this.noPushRights.has(domain)) {
      this.noPushRights.add(domain);
      this.log.warn(`registry ${domain} refused a push (${firstLine(message)}): no push rights, so the remaining cache pushes are skipped; log in with an account that may push`);
    }
    return true;
  }

  /**
   * Pushes a local image as the cache `ref`: by the direct upload when that is
   * faster (upload-choice.ts), else (or if it fails) tag + docker push.
   * `sources` are registry images whose layers the registry already has.
   */
  async pushCache(
    local: string,
    ref: ImageRef,
    sources: readonly ImageRef[],
    choice: UploadChoice,
    localDiffIds?: readonly string[],
    /**
     * Sources and base for the inline-cache repair: applied to the config before the
     * direct upload sends it, or rewritten in the registry after a docker push.
     */
    repair?: { readonly sources: () => Promise<readonly ImageRef[]>; readonly base: ImageRef | undefined },
  ): Promise<OpResult & { uploader: Uploader; uploadedBytes?: number; repaired: number }> {
    const early = this.early.get(repoKey(ref));
    const earlyForTag = early?.pendingByTag.get(formatRef(ref)) ?? [];
    await Promise.all(earlyForTag);
    if (choice !== 'engine' && !this.isDown(ref) && !this.cannotPush(ref)) {
      // docker save spends most of its time before the first byte (the engine writes the
      // image out first): started now when the direct upload is all but certain (part
      // of this image went up early), it runs while the uploader is chosen.
      let saving = choice === 'direct' || earlyForTag.length > 0 ? this.docker.save(local, this.timeoutMs) : undefined;
      const dropSave = async (): Promise<void> => {
        saving?.kill();
        await saving?.done.catch(() => undefined);
        saving = undefined;
      };
      const [diffIds, sizes, known] = await Promise.all([
        choice === 'auto' ? (localDiffIds ?? this.docker.diffIds(local)) : undefined,
        choice === 'auto' ? this.docker.historySizes(local) : undefined,
        this.knownBlobs(ref, sources),
      ]).catch(async (error: unknown) => {
        await dropSave();
        throw error;
      });
      for (const layer of early?.layers.values() ?? []) known.set(layer.diffId, layer.blob);
      const knownToEngine = new Set([...known.keys()].filter((d) => !this.directLayers.has(d)));
      if (chooseUploader(choice, diffIds, knownToEngine, sizes) === 'direct') {
        this.forget(ref);
        try {
          const rewriteConfig = repair
            ? async (config: Buffer) => {
                const repaired = await this.repairedConfig(JSON.parse(config.toString('utf8')) as Record<string, unknown>, await repair.sources(), repair.base);
                return repaired && { bytes: Buffer.from(JSON.stringify(repaired.config)), repaired: repaired.repaired };
              }
            : undefined;
          const pushed = await pushImageDirect({ docker: this.docker, registry: this.registry }, local, ref, known, this.timeoutMs, { earlier: early?.layers, saving, rewriteConfig });
          const uploaded = this.earlyEntry(ref).layers;
          for (const layer of pushed.encoded) {
            this.directLayers.add(layer.diffId);
            uploaded.set(layer.tarSize, layer);
          }
          return { ok: true, message: '', uploader: 'direct', uploadedBytes: pushed.uploadedBytes, repaired: pushed.repaired };
        } catch (error) {
          this.log.info(`direct upload of ${formatRef(ref)} failed (${firstLine((error as Error).message)}); using docker push`);
        }
      } else await dropSave();
    }
    const tagged = await this.docker.tag(local, formatRef(ref));
    if (tagged.exitCode !== 0) return { ok: false, message: tail(tagged.stderr, 3), uploader: 'engine', repaired: 0 };
    const pushed = await this.push(ref);
    if (!pushed.ok) return { ...pushed, uploader: 'engine', repaired: 0 };
    // Layers first: the repair rewrites only the config, and reading before it reuses one fetch.
    // docker push names the layers it sent ("Pushed"; not those it found or mounted from another repository).
    const uploadedBytes = await this.layerBytesByDiffId(ref, pushedIds(pushed.output ?? ''));
    const repaired = repair ? await this.repairInlineCache(ref, await repair.sources(), repair.base) : 0;
    return { ...pushed, uploader: 'engine', repaired, ...(uploadedBytes !== undefined ? { uploadedBytes } : {}) };
  }

  /**
   * Writes the cache `ref` as a manifest copy of `from`, a registry image of the same
   * local image (the deploy push's tag), then reports and repairs it as after a push.
   */
  async copyCache(
    from: ImageRef,
    ref: ImageRef,
    repair?: { readonly sources: () => Promise<readonly ImageRef[]>; readonly base: ImageRef | undefined },
  ): Promise<OpResult & { uploadedBytes?: number; repaired: number }> {
    const copied = await this.copyManifest(from, ref);
    if (!copied.ok) return { ...copied, repaired: 0 };
    const repaired = repair ? await this.repairInlineCache(ref, await repair.sources(), repair.base) : 0;
    // A manifest copy moves no layer: the deploy push's bytes are the deploy's.
    return { ok: true, message: '', repaired, uploadedBytes: 0 };
  }

  /**
   * Uploads the layers of a local image (no manifest, no tag) into the repository
   * of `ref`, so that the image holding them is pushed later without them. Best-effort:
   * on failure the later push simply uploads them. Returns the bytes uploaded.
   */
  async uploadLayersEarly(local: string, ref: ImageRef, sources: readonly ImageRef[]): Promise<number | undefined> {
    if (this.isDown(ref) || this.cannotPush(ref)) return undefined;
    const entry = this.earlyEntry(ref);
    const upload = this.uploadEarly(local, ref, sources, entry).catch((error: unknown) => {
      this.log.info(`early upload for ${formatRef(ref)} failed (${firstLine((error as Error).message)}); the cache push will upload those layers`);
      return undefined;
    });
    entry.pending.push(upload);
    return upload;
  }

  private async uploadEarly(local: string, ref: ImageRef, sources: readonly ImageRef[], entry: EarlyUploads): Promise<number | undefined> {
    // Layers the registry has (the caches used) or this run sent already are not sent again.
    const [diffIds, sizes, known] = await Promise.all([this.docker.diffIds(local), this.docker.historySizes(local), this.knownBlobs(ref, sources)]);
    for (const layer of entry.layers.values()) known.set(layer.diffId, layer.blob);
    // Worth it only for heavy new layers (the same rule as the uploader choice): docker save reads the whole image.
    if (chooseUploader('auto', diffIds, new Set(known.keys()), sizes) !== 'direct') return undefined;
    const pushed = await pushImageDirect({ docker: this.docker, registry: this.registry }, local, ref, known, this.timeoutMs, { layersOnly: true, earlier: entry.layers });
    for (const layer of pushed.encoded) {
      this.directLayers.add(layer.diffId);
      entry.layers.set(layer.tarSize, layer);
    }
    return pushed.uploadedBytes;
  }


  /** Makes cache pushes into the repository of `ref` wait for `work` (an early upload about to start). */
  awaitBeforePush(ref: ImageRef, work: Promise<unknown>): void {
    const entry = this.earlyEntry(ref);
    entry.pending.push(work);
    const key = formatRef(ref);
    entry.pendingByTag.set(key, [...(entry.pendingByTag.get(key) ?? []), work]);
  }

  /** Settles when the early uploads into the repository of `ref` started so far have ended. */
  async earlyUploadsSoFar(ref: ImageRef): Promise<void> {
    await Promise.all([...this.earlyEntry(ref).pending]);
  }

  private earlyEntry(ref: ImageRef): EarlyUploads {
    const key = repoKey(ref);
    const entry = this.early.get(key) ?? { pending: [], pendingByTag: new Map<string, Promise<unknown>[]>(), layers: new Map<number, UploadedLayer>() };
    this.early.set(key, entry);
    return entry;
  }

  /** Layers (by diff_id) that registry images in the repository of `target` already hold. */
  private async knownBlobs(target: ImageRef, sources: readonly ImageRef[]): Promise<Map<string, KnownBlob>> {
    const known = new Map<string, KnownBlob>();
    const sameRepo = sources.filter((s) => s.domain === target.domain && s.path === target.path);
    for (const image of await Promise.all(sameRepo.map((s) => this.image(s)))) {
      for (const [diffId, blob] of layersByDiffId(image)) known.set(diffId, blob);
    }
    return known;
  }

  /**
   * Points `to` at the manifest of `from` (same repository): no layer moves.
   * The message is "already" when `to` pointed there before.
   */
  async copyManifest(from: ImageRef, to: ImageRef): Promise<OpResult> {
    this.forget(to);
    return this.retrying('manifest copy to', to, async () => {
      try {
        const [manifest, current] = await Promise.all([this.registry.getManifest(from), this.registry.head(to)]);
        if (current !== undefined && current.digest !== '' && current.digest === manifest.digest) return { ok: true, message: 'already' };
        await this.registry.putManifest(to, manifest);
        return { ok: true, message: '' };
      } catch (error) {
        return { ok: false, message: (error as Error).message };
      }
    });
  }

  /**
   * Writes back the inline-cache layer links that the engine dropped for cached
   * steps (see inline-cache.ts), taking them from the images the build's hits came
   * from. Best effort: returns how many records were repaired (0 on any failure).
   */
  async repairInlineCache(pushed: ImageRef, sources: readonly ImageRef[], base?: ImageRef): Promise<number> {
    if (this.isDown(pushed)) return 0;
    try {
      const image = await this.image(pushed);
      if (!image) return 0;
      const repaired = await this.repairedConfig(image.config, sources, base);
      if (!repaired) return 0;
      const bytes = Buffer.from(JSON.stringify(repaired.config));
      const digest = await this.registry.pushBlob(pushed, bytes);
      const body = JSON.parse(image.manifest.body.toString('utf8')) as { config: { digest: string; size: number } };
      body.config.digest = digest;
      body.config.size = bytes.length;
      this.forget(pushed);
      await this.registry.putManifest(pushed, { body: Buffer.from(JSON.stringify(body, null, 3)), mediaType: image.manifest.mediaType, digest: '' });
      return repaired.repaired;
    } catch (error) {
      this.log.debug(`inline cache repair of ${formatRef(pushed)} skipped: ${(error as Error).message}`);
      return 0;
    }
  }

  /**
   * The config with the dropped links written back (from the source images' records,
   * then from the image's own chain), or undefined when none could be.
   */
  async repairedConfig(config: Record<string, unknown>, sources: readonly ImageRef[], base?: ImageRef): Promise<{ config: Record<string, unknown>; repaired: number } | undefined> {
    const sourceImages = await Promise.all(sources.map((s) => this.image(s)));
    const fromSources = repairInlineCache(config, sourceImages.flatMap((i) => (i ? [i.config] : [])));
    const fromChain = inferChainLinks(fromSources?.config ?? config, await this.baseLayerCount(config, base));
    return fromChain ? { config: fromChain.config, repaired: fromChain.repaired + (fromSources?.repaired ?? 0) } : fromSources;
  }

  /** How many layers the base image has, if this image's first layers are exactly the base's. */
  private async baseLayerCount(config: Record<string, unknown>, base: ImageRef | undefined): Promise<number | undefined> {
    if (!base) return undefined;
    const ours = (config.rootfs as { diff_ids?: string[] } | undefined)?.diff_ids ?? [];
    const theirs = (await this.image(base))?.config.rootfs as { diff_ids?: string[] } | undefined;
    const baseIds = theirs?.diff_ids ?? [];
    return baseIds.length > 0 && baseIds.length <= ours.length && baseIds.every((d, i) => d === ours[i]) ? baseIds.length : undefined;
  }

  /** How long each step of a remote image took when it was built (from its history). */
  /** The step times in a cache image's history; `ownEntries`: how many of its last entries are the stage's own. */
  async stepDurations(ref: ImageRef, ownEntries?: number): Promise<Map<string, number> | undefined> {
    const image = await this.image(ref);
    return image ? stepDurations((image.config.history as HistoryEntry[] | undefined) ?? [], ownEntries) : undefined;
  }

  /**
   * A registry cache's step times: BuildKit's cache records no durations, so the helper
   * keeps them in an annotation of the cache's index (BuildKit ignores it). Empty when
   * the cache has none or cannot be read.
   */
  async cacheStepSeconds(ref: ImageRef): Promise<Map<string, number>> {
    if (this.isDown(ref)) return new Map();
    try {
      const manifest = await this.manifest(ref);
      if (!manifest) return new Map();
      const body = JSON.parse(manifest.body.toString('utf8')) as { annotations?: Record<string, string> };
      const record = JSON.parse(body.annotations?.[STEP_SECONDS] ?? '{}') as Record<string, unknown>;
      return new Map(Object.entries(record).filter((e): e is [string, number] => typeof e[1] === 'number'));
    } catch {
      return new Map();
    }
  }

  /** Writes the step times into the registry cache's index (a new digest, same content). Best effort. */
  async recordCacheStepSeconds(ref: ImageRef, seconds: ReadonlyMap<string, number>): Promise<boolean> {
    this.forget(ref);
    const result = await this.retrying('step times of', ref, async () => {
      try {
        const manifest = await this.registry.getManifest(ref);
        const body = JSON.parse(manifest.body.toString('utf8')) as { annotations?: Record<string, string> };
        // And when it was written: a registry cache has no image config with a `created` (prune reads this).
        body.annotations = { ...body.annotations, [STEP_SECONDS]: JSON.stringify(Object.fromEntries(seconds)), 'org.docker-build-remote-cache.created': new Date().toISOString() };
        await this.registry.putManifest(ref, { body: Buffer.from(JSON.stringify(body)), mediaType: manifest.mediaType, digest: '' });
        return { ok: true, message: '' };
      } catch (error) {
        return { ok: false, message: (error as Error).message };
      }
    });
    if (!result.ok) this.log.debug(`could not record step times in ${formatRef(ref)}: ${result.message}`);
    return result.ok;
  }

  /**
   * Compressed sizes of the blobs of registry images (config and layers, through an
   * index's images too: a buildx push is an index with an attestation) and of BuildKit
   * registry caches (an index whose entries are the layer blobs), by digest: what
   * pulling or pushing them moves.
   */
  async blobSizes(refs: readonly ImageRef[]): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    const visit = async (ref: ImageRef, depth: number): Promise<void> => {
      const manifest = await this.manifest(ref);
      if (!manifest) return;
      const body = JSON.parse(manifest.body.toString('utf8')) as { config?: Blob; layers?: Blob[]; manifests?: Blob[] };
      for (const blob of [...(body.config ? [body.config] : []), ...(body.layers ?? [])]) sizes.set(blob.digest, blob.size);
      await Promise.all(
        (body.manifests ?? []).map(async (child) => {
          if (/manifest|index/.test(child.mediaType ?? '') && depth < 2) await visit({ ...ref, tag: child.digest }, depth + 1);
          else sizes.set(child.digest, child.size);
        }),
      );
    };
    await Promise.all(refs.filter((r) => !this.isDown(r)).map((r) => visit(r, 0)));
    return sizes;
  }

  /** Compressed bytes of the layers of the registry image `ref` whose diff_id starts with one of `shortDiffIds` (docker push's "Pushed" lines). */
  async layerBytesByDiffId(ref: ImageRef, shortDiffIds: ReadonlySet<string>): Promise<number | undefined> {
    if (shortDiffIds.size === 0) return 0;
    const image = await this.image(ref);
    if (!image) return undefined;
    // docker push names a layer by its diff_id on the classic store, by its compressed digest on the containerd store.
    const byEither = new Map<string, number>();
    for (const [diffId, blob] of layersByDiffId(image)) byEither.set(diffId, blob.size).set(blob.digest, blob.size);
    return bytesOfShortIds(shortDiffIds, byEither);
  }

  /** The uncompressed layer digests of a remote image (rootfs.diff_ids). */
  async remoteDiffIds(ref: ImageRef): Promise<string[] | undefined> {
    const image = await this.image(ref);
    return (image?.config.rootfs as { diff_ids?: string[] } | undefined)?.diff_ids;
  }

  /** A remote image's manifest and config, read once per run and reference. */
  private image(ref: ImageRef): Promise<RemoteImage | undefined> {
    if (this.isDown(ref)) return Promise.resolve(undefined);
    const key = formatRef(ref);
    let pending = this.images.get(key);
    if (!pending) {
      pending = this.registry.image(ref).catch((error: unknown) => {
        this.log.debug(`reading ${key} from the registry failed: ${(error as Error).message}`);
        if (error instanceof RegistryError && classifyFailure(error.message) === 'unreachable') this.markDown(ref, error.message);
        return undefined;
      });
      this.images.set(key, pending);
    }
    return pending;
  }

  /** A manifest, read once per run and reference (undefined when it cannot be read). */
  private manifest(ref: ImageRef): Promise<Manifest | undefined> {
    const key = formatRef(ref);
    let pending = this.manifests.get(key);
    if (!pending) {
      pending = this.registry.getManifest(ref).catch(() => undefined);
      this.manifests.set(key, pending);
    }
    return pending;
  }

  /** After this run wrote `ref` (a push, a copy, a cache export): what was read of it is stale. */
  forget(ref: ImageRef): void {
    this.images.delete(formatRef(ref));
    this.manifests.delete(formatRef(ref));
  }
}

/** A registry image's layer blobs by diff_id (manifest layer i is config diff_id i); empty when the two lists disagree. */
function layersByDiffId(image: RemoteImage | undefined): Map<string, KnownBlob> {
  const byDiffId = new Map<string, KnownBlob>();
  if (!image) return byDiffId;
  const layers = (JSON.parse(image.manifest.body.toString('utf8')) as { layers?: KnownBlob[] }).layers ?? [];
  const diffIds = (image.config.rootfs as { diff_ids?: string[] } | undefined)?.diff_ids ?? [];
  if (layers.length !== diffIds.length) return byDiffId;
  diffIds.forEach((diffId, i) => {
    const layer = layers[i];
    if (layer) byDiffId.set(diffId, { digest: layer.digest, size: layer.size, mediaType: layer.mediaType });
  });
  return byDiffId;
}

function repoKey(ref: ImageRef): string {
  return `${ref.domain ?? 'docker.io'}/${ref.path}`;
}
