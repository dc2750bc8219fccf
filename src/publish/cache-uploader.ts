import type { ImageRef } from '../plan/image-ref.js';
import type { CacheOps, OpResult } from '../registry/cache-ops.js';

/** Sources and base for the classic store's inline-cache repair (strategies/classic-store/uploads.ts). */
export interface RepairSources {
  readonly sources: () => Promise<readonly ImageRef[]>;
  readonly base: ImageRef | undefined;
}

export interface CacheUpload extends OpResult {
  /** How the image went up: docker push, or the classic store's direct upload. */
  readonly uploader: 'engine' | 'direct';
  /** Compressed bytes of the layers sent, when known. */
  readonly uploadedBytes?: number;
  /** Inline-cache links written back (classic store only). */
  readonly repaired: number;
}

/**
 * How a stage's cache image reaches the registry (the inline strategy): docker push and
 * manifest copies (EngineUploader), or on the classic image store the faster machinery
 * of strategies/classic-store/uploads.ts.
 */
export interface CacheUploader {
  /** Pushes the local image as the cache `ref`; `sources`: registry images whose layers the registry already has. */
  push(local: string, ref: ImageRef, sources: readonly ImageRef[], localDiffIds: readonly string[] | undefined, repair: RepairSources | undefined): Promise<CacheUpload>;
  /** Writes the cache `ref` as a manifest copy of `from`, a registry image of the same local image. */
  copy(from: ImageRef, ref: ImageRef, repair: RepairSources | undefined): Promise<CacheUpload>;
}

/** docker push, and manifest copies that move no layer. */
export class EngineUploader implements CacheUploader {
  constructor(private readonly ops: CacheOps) {}

  async push(local: string, ref: ImageRef): Promise<CacheUpload> {
    return { ...(await this.ops.pushByEngine(local, ref)), uploader: 'engine', repaired: 0 };
  }

  async copy(from: ImageRef, ref: ImageRef): Promise<CacheUpload> {
    const copied = await this.ops.copyManifest(from, ref);
    // A manifest copy moves no layer: the deploy push's bytes are the deploy's.
    return copied.ok ? { ok: true, message: '', uploader: 'engine', uploadedBytes: 0, repaired: 0 } : { ...copied, uploader: 'engine', repaired: 0 };
  }
}
