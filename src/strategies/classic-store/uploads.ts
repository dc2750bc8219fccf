import { firstLine } from '../../errors.js';
import type { Docker } from '../../engine/docker.js';
import type { Logger } from '../../log.js';
import { formatRef, type ImageRef } from '../../plan/image-ref.js';
import type { CacheUpload, CacheUploader, RepairSources } from '../../publish/cache-uploader.js';
import { type CacheOps, type KnownBlob, layersByDiffId } from '../../registry/cache-ops.js';
import type { RegistryApi } from '../../registry/registry.js';
import { pushImageDirect, type UploadedLayer } from './direct-push.js';
import { inferChainLinks, repairInlineCache } from './inline-cache.js';
import { chooseUploader, type UploadChoice } from './upload-choice.js';

interface EarlyUploads {
  /** Early uploads into the repository (each waits for those before it, so no layer goes twice). */
  readonly pending: Promise<unknown>[];
  /** The same, by the cache tag they prepare: its push waits for them. */
  readonly pendingByTag: Map<string, Promise<unknown>[]>;
  readonly layers: Map<number, UploadedLayer>;
}

/**
 * Cache uploads on the classic image store (Docker 20.10, and Docker 26-28 hosts with
 * overlay2), whose docker push gzips at ~26 MB/s and whose BuildKit drops inline-cache
 * links that cost hits: the direct upload of `docker save` output (direct-push.ts),
 * early uploads of a stage's dependency layers (checkpoint.ts), and the inline-cache
 * repair (inline-cache.ts). Measured on Docker 26 in docs/engines.md. The containerd store (docker save gives compressed layers) gets
 * EngineUploader (publish/cache-uploader.ts) instead.
 */
export class ClassicStoreUploads implements CacheUploader {
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
    private readonly ops: CacheOps,
    private readonly log: Logger,
    private readonly timeoutMs: number,
    /** --cache-upload: docker push, the direct upload, or whichever is faster. */
    readonly choice: UploadChoice,
  ) {}

  /**
   * Pushes a local image as the cache `ref`: by the direct upload when that is
   * faster (upload-choice.ts), else (or if it fails) tag + docker push.
   * `sources` are registry images whose layers the registry already has.
   */
  /** The repair is applied to the config before the direct upload sends it, or rewritten in the registry after a docker push. */
  async push(local: string, ref: ImageRef, sources: readonly ImageRef[], localDiffIds: readonly string[] | undefined, repair: RepairSources | undefined): Promise<CacheUpload> {
    const choice = this.choice;
    const early = this.early.get(repoKey(ref));
    const earlyForTag = early?.pendingByTag.get(formatRef(ref)) ?? [];
    await Promise.all(earlyForTag);
    if (choice !== 'engine' && !this.ops.isDown(ref) && !this.ops.cannotPush(ref)) {
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
        this.ops.forget(ref);
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
    // Layers first (pushByEngine reads them): the repair rewrites only the config, and reading before it reuses one fetch.
    const pushed = await this.ops.pushByEngine(local, ref);
    if (!pushed.ok) return { ...pushed, uploader: 'engine', repaired: 0 };
    const repaired = repair ? await this.repairInlineCache(ref, await repair.sources(), repair.base) : 0;
    return { ...pushed, uploader: 'engine', repaired };
  }

  /**
   * Writes the cache `ref` as a manifest copy of `from`, a registry image of the same
   * local image (the deploy push's tag), then reports and repairs it as after a push.
   */
  async copy(from: ImageRef, ref: ImageRef, repair: RepairSources | undefined): Promise<CacheUpload> {
    const copied = await this.ops.copyManifest(from, ref);
    if (!copied.ok) return { ...copied, uploader: 'engine', repaired: 0 };
    const repaired = repair ? await this.repairInlineCache(ref, await repair.sources(), repair.base) : 0;
    // A manifest copy moves no layer: the deploy push's bytes are the deploy's.
    return { ok: true, message: '', uploader: 'engine', repaired, uploadedBytes: 0 };
  }

  /**
   * Uploads the layers of a local image (no manifest, no tag) into the repository
   * of `ref`, so that the image holding them is pushed later without them. Best-effort:
   * on failure the later push simply uploads them. Returns the bytes uploaded.
   */
  async uploadLayersEarly(local: string, ref: ImageRef, sources: readonly ImageRef[]): Promise<number | undefined> {
    if (this.ops.isDown(ref) || this.ops.cannotPush(ref)) return undefined;
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
    for (const image of await Promise.all(sameRepo.map((s) => this.ops.image(s)))) {
      for (const [diffId, blob] of layersByDiffId(image)) known.set(diffId, blob);
    }
    return known;
  }

  /**
   * Writes back the inline-cache layer links that the engine dropped for cached
   * steps (see inline-cache.ts), taking them from the images the build's hits came
   * from. Best effort: returns how many records were repaired (0 on any failure).
   */
  async repairInlineCache(pushed: ImageRef, sources: readonly ImageRef[], base?: ImageRef): Promise<number> {
    if (this.ops.isDown(pushed)) return 0;
    try {
      const image = await this.ops.image(pushed);
      if (!image) return 0;
      const repaired = await this.repairedConfig(image.config, sources, base);
      if (!repaired) return 0;
      const bytes = Buffer.from(JSON.stringify(repaired.config));
      const digest = await this.registry.pushBlob(pushed, bytes);
      const body = JSON.parse(image.manifest.body.toString('utf8')) as { config: { digest: string; size: number } };
      body.config.digest = digest;
      body.config.size = bytes.length;
      this.ops.forget(pushed);
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
    const sourceImages = await Promise.all(sources.map((s) => this.ops.image(s)));
    const fromSources = repairInlineCache(config, sourceImages.flatMap((i) => (i ? [i.config] : [])));
    const fromChain = inferChainLinks(fromSources?.config ?? config, await this.baseLayerCount(config, base));
    return fromChain ? { config: fromChain.config, repaired: fromChain.repaired + (fromSources?.repaired ?? 0) } : fromSources;
  }

  /** How many layers the base image has, if this image's first layers are exactly the base's. */
  private async baseLayerCount(config: Record<string, unknown>, base: ImageRef | undefined): Promise<number | undefined> {
    if (!base) return undefined;
    const ours = (config.rootfs as { diff_ids?: string[] } | undefined)?.diff_ids ?? [];
    const theirs = (await this.ops.image(base))?.config.rootfs as { diff_ids?: string[] } | undefined;
    const baseIds = theirs?.diff_ids ?? [];
    return baseIds.length > 0 && baseIds.length <= ours.length && baseIds.every((d, i) => d === ours[i]) ? baseIds.length : undefined;
  }
}

function repoKey(ref: ImageRef): string {
  return `${ref.domain ?? 'docker.io'}/${ref.path}`;
}
