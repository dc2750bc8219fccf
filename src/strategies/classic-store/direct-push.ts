import { createHash } from 'node:crypto';
import type { Docker } from '../../engine/docker.js';
import type { StreamingProcess } from '../../engine/exec.js';
import { tail } from '../../errors.js';
import type { ImageRef } from '../../plan/image-ref.js';
import { encodeLayer } from './layer-encoder.js';
import type { RegistryApi } from '../../registry/registry.js';
import { readTar } from './tar-reader.js';

/**
 * Pushes a local image to the registry without `docker push`: `docker save`
 * streams the image, each layer is encoded (layer-encoder.ts) and uploaded as it
 * streams (no temporary files), layers the repository already has (by diff_id) are not
 * uploaded, and the config is pushed byte for byte, so the image ID and the
 * inline-cache metadata (which names layers by index) stay as the engine made them.
 */

import type { KnownBlob } from '../../registry/cache-ops.js';

export type { KnownBlob };

/** A layer this run uploaded itself, with the size of its uncompressed tar (how docker save lists it). */
export interface UploadedLayer {
  readonly diffId: string;
  readonly tarSize: number;
  readonly blob: KnownBlob;
}

export interface DirectPushResult {
  readonly uploadedBytes: number;
  /** Inline-cache links restored by `rewriteConfig` (0 without one). */
  readonly repaired: number;
  /** Layers this upload encoded itself (blobs docker push does not know). */
  readonly encoded: readonly UploadedLayer[];
}

export interface DirectPushOptions {
  /** Upload the layers only: no config, no manifest, no tag (an early upload of part of an image). */
  readonly layersOnly?: boolean;
  /**
   * Layers uploaded earlier in this run, by tar size. docker save names layers by an
   * ID that says nothing about their content, so a layer of that exact size is skipped
   * (neither encoded nor uploaded), and used only if the image config, which comes
   * with the manifest at the end of the stream, gives that layer the same diff_id.
   */
  readonly earlier?: ReadonlyMap<number, UploadedLayer>;
  /** A `docker save` of the image started already (while the caller was still deciding). */
  readonly saving?: StreamingProcess;
  /**
   * Rewrites the image config before it is uploaded (the inline-cache repair), so the
   * registry gets the final config at once, not a second config and manifest after.
   */
  readonly rewriteConfig?: (config: Buffer) => Promise<{ readonly bytes: Buffer; readonly repaired: number } | undefined>;
}

/** Layers smaller than this are encoded as usual: cheap, and their sizes collide more often. */
const MATCH_BY_SIZE_MIN = 1 << 20;

const GZIP_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
/** docker save's metadata files, and OCI-layout blobs small enough to be configs, stay in memory. */
const IN_MEMORY_BYTES = 1 << 20;

function isMetadata(name: string, size: number): boolean {
  return name.endsWith('.json') || name.endsWith('/json') || name.endsWith('VERSION') || name === 'repositories' || name === 'oci-layout' || (!name.endsWith('layer.tar') && size < IN_MEMORY_BYTES);
}

async function collect(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* once(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

interface Placed {
  readonly blob: KnownBlob;
}

export async function pushImageDirect(
  deps: { readonly docker: Docker; readonly registry: RegistryApi },
  local: string,
  target: ImageRef,
  known: ReadonlyMap<string, KnownBlob>,
  timeoutMs: number,
  options: DirectPushOptions = {},
): Promise<DirectPushResult> {
  const { registry } = deps;
  const saving = options.saving ?? deps.docker.save(local, timeoutMs);
  const metadata = new Map<string, Buffer>();
  const layers = new Map<string, Placed>();
  const encoded: UploadedLayer[] = [];
  /** Layers taken for ones uploaded earlier by their size alone, with the diff_id each must have. */
  const assumed = new Map<string, string>();
  let uploadedBytes = 0;

  /** Streams one layer to the registry as it is encoded; drops the upload if the registry turns out to have it. */
  const place = async (body: AsyncIterable<Buffer>, tarSize: number): Promise<Placed> => {
    const encoding = encodeLayer(body);
    let reuse: KnownBlob | undefined;
    const uploaded = await registry.pushBlobStream(target, encoding.blob, async () => {
      const { diffId, digest } = encoding.result();
      reuse = known.get(diffId);
      return reuse || (await registry.hasBlob(target, digest)) ? undefined : digest;
    });
    const encoded_ = encoding.result();
    if (uploaded) uploadedBytes += encoded_.size;
    const blob = reuse ?? { digest: encoded_.digest, size: encoded_.size, mediaType: GZIP_LAYER };
    if (!reuse) encoded.push({ diffId: encoded_.diffId, tarSize, blob });
    return { blob };
  };

  try {
    for await (const entry of readTar(saving.stdout)) {
      if (entry.type !== '0' && entry.type !== '\0') continue;
      // Newer engines save an OCI layout, whose layer files are named by diff_id: known ones are not even read.
      const ociDiffId = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(entry.name)?.[1];
      const reuse = ociDiffId ? known.get(`sha256:${ociDiffId}`) : undefined;
      if (reuse) {
        layers.set(entry.name, { blob: reuse });
        continue;
      }
      const earlier = entry.size >= MATCH_BY_SIZE_MIN ? options.earlier?.get(entry.size) : undefined;
      if (earlier && !isMetadata(entry.name, entry.size)) {
        // Skipped unread; the image config, at the end of the stream, proves which layer it is.
        for await (const _ of entry.body);
        layers.set(entry.name, { blob: earlier.blob });
        assumed.set(entry.name, earlier.diffId);
        continue;
      }
      if (isMetadata(entry.name, entry.size)) metadata.set(entry.name, await collect(entry.body));
      else layers.set(entry.name, await place(entry.body, entry.size));
    }
    const saved = await saving.done;
    if (saved.exitCode !== 0) throw new Error(`docker save ${local} exited ${saved.exitCode}: ${tail(saved.stderr, 3)}`);

    const manifestJson = metadata.get('manifest.json');
    if (!manifestJson) throw new Error('docker save wrote no manifest.json');
    const [image] = JSON.parse(manifestJson.toString('utf8')) as { Config: string; Layers: string[] }[];
    const config = image ? metadata.get(image.Config) : undefined;
    if (!image || !config) throw new Error('docker save wrote no image config');

    const diffIds = (JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
    for (const [path, diffId] of assumed) {
      if (diffIds[image.Layers.indexOf(path)] !== diffId) throw new Error(`layer ${path} has the size of a layer uploaded earlier but other content`);
    }
    // Started now: it may wait for other stages' caches (its sources) while the layers go up.
    const rewriting = options.layersOnly || !options.rewriteConfig ? undefined : options.rewriteConfig(config).catch(() => undefined);
    // Small layers were kept in memory with the metadata; they go up at once (each upload is a few round trips).
    const descriptors = await Promise.all(
      image.Layers.map(async (path): Promise<KnownBlob> => {
        const small = metadata.get(path);
        const placed = layers.get(path) ?? (small ? await place(once(small), small.length) : undefined);
        if (!placed) throw new Error(`docker save did not write the layer ${path}`);
        return placed.blob;
      }),
    );
    if (options.layersOnly) return { uploadedBytes, encoded, repaired: 0 };
    const rewritten = await rewriting;
    const finalConfig = rewritten?.bytes ?? config;
    const configDigest = await registry.pushBlob(target, finalConfig);
    if (configDigest !== `sha256:${createHash('sha256').update(finalConfig).digest('hex')}`) throw new Error('config digest mismatch');
    const manifest = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, size: finalConfig.length, digest: configDigest },
      layers: descriptors.map((d) => ({ mediaType: d.mediaType, size: d.size, digest: d.digest })),
    };
    await registry.putManifest(target, { body: Buffer.from(JSON.stringify(manifest, null, 3)), mediaType: DOCKER_MANIFEST, digest: '' });
    return { uploadedBytes, encoded, repaired: rewritten?.repaired ?? 0 };
  } catch (error) {
    saving.kill();
    await saving.done.catch(() => undefined);
    throw error;
  }
}
