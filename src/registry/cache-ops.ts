import type { Docker } from '../engine/docker.js';
import { firstLine, tail } from '../errors.js';
import { formatRef, type ImageRef } from '../plan/image-ref.js';
import type { Logger } from '../log.js';
import { type Manifest, RegistryError, type RegistryApi } from './registry.js';

type RemoteImage = Awaited<ReturnType<RegistryApi['image']>>;
import { classifyFailure, type RetryPolicy, withRetry } from './retry.js';
import { type HistoryEntry, stepDurations } from '../report/history.js';
import { bytesOfShortIds, pushedIds } from '../report/transfers.js';

const TIMED_OUT = 'timed out after';

export type Lookup = 'found' | 'missing' | 'unknown';

/** The index annotation that holds a registry cache's step times (seconds by stage and instruction). */
const STEP_SECONDS = 'org.docker-build-remote-cache.step-seconds';
/** The index annotation that holds the digests of what the build that wrote the cache read (context-digest.ts). */
const INPUTS = 'org.docker-build-remote-cache.inputs';

/** A layer blob the registry holds (a manifest's layer entry). */
export interface KnownBlob {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
}

interface Blob {
  readonly digest: string;
  readonly size: number;
  readonly mediaType?: string;
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

  /** The manifest digest each tag had when it was looked up (found tags only). */
  private readonly lookedUpDigests = new Map<string, string>();

  /** The digest `ref` had when `lookup` found it; undefined when not found or not told. */
  digestAtLookup(ref: ImageRef): string | undefined {
    return this.lookedUpDigests.get(formatRef(ref));
  }

  private async lookupNow(ref: ImageRef): Promise<Lookup> {
    let found: Lookup = 'unknown';
    const result = await this.retrying('lookup of', ref, async () => {
      try {
        const head = await this.registry.head(ref);
        found = head === undefined ? 'missing' : 'found';
        if (head?.digest) this.lookedUpDigests.set(formatRef(ref), head.digest);
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
   * Pushes a local image as the cache `ref` (tag + docker push), with the bytes of the
   * layers docker push sent.
   */
  async pushByEngine(local: string, ref: ImageRef): Promise<OpResult & { uploadedBytes?: number }> {
    const tagged = await this.docker.tag(local, formatRef(ref));
    if (tagged.exitCode !== 0) return { ok: false, message: tail(tagged.stderr, 3) };
    const pushed = await this.push(ref);
    if (!pushed.ok) return pushed;
    // docker push names the layers it sent ("Pushed"; not those it found or mounted from another repository).
    const uploadedBytes = await this.layerBytesByDiffId(ref, pushedIds(pushed.output ?? ''));
    return { ...pushed, ...(uploadedBytes !== undefined ? { uploadedBytes } : {}) };
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
    const record = await this.annotation(ref, STEP_SECONDS);
    return new Map(Object.entries(record ?? {}).filter((e): e is [string, number] => typeof e[1] === 'number'));
  }

  /** The input digests recorded in a registry cache's index; undefined when it has none or cannot be read. */
  async cacheInputs(ref: ImageRef): Promise<Map<string, string> | undefined> {
    const record = await this.annotation(ref, INPUTS);
    return record === undefined ? undefined : new Map(Object.entries(record).filter((e): e is [string, string] => typeof e[1] === 'string'));
  }

  /** A JSON object kept in an annotation of the manifest `ref`. */
  private async annotation(ref: ImageRef, name: string): Promise<Record<string, unknown> | undefined> {
    if (this.isDown(ref)) return undefined;
    try {
      const manifest = await this.manifest(ref);
      if (!manifest) return undefined;
      const body = JSON.parse(manifest.body.toString('utf8')) as { annotations?: Record<string, string> };
      const text = body.annotations?.[name];
      return text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      return undefined;
    }
  }

  /** Writes the step times (and the input digests, when given) into the registry cache's index (a new digest, same content). Best effort. */
  async recordCacheStepSeconds(ref: ImageRef, seconds: ReadonlyMap<string, number>, inputs?: ReadonlyMap<string, string>): Promise<boolean> {
    this.forget(ref);
    const result = await this.retrying('step times of', ref, async () => {
      try {
        const manifest = await this.registry.getManifest(ref);
        const body = JSON.parse(manifest.body.toString('utf8')) as { annotations?: Record<string, string> };
        // And when it was written: a registry cache has no image config with a `created` (prune reads this).
        body.annotations = {
          ...body.annotations,
          [STEP_SECONDS]: JSON.stringify(Object.fromEntries(seconds)),
          ...(inputs && inputs.size > 0 ? { [INPUTS]: JSON.stringify(Object.fromEntries(inputs)) } : {}),
          'org.docker-build-remote-cache.created': new Date().toISOString(),
        };
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
  image(ref: ImageRef): Promise<RemoteImage | undefined> {
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
    this.lookedUpDigests.delete(formatRef(ref));
    this.images.delete(formatRef(ref));
    this.manifests.delete(formatRef(ref));
  }
}

/** A registry image's layer blobs by diff_id (manifest layer i is config diff_id i); empty when the two lists disagree. */
export function layersByDiffId(image: RemoteImage | undefined): Map<string, KnownBlob> {
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

