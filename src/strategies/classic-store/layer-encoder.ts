import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';

/**
 * Turns an uncompressed layer tar into a registry blob (gzip, as every client
 * reads), as a stream. docker push compresses at ~26 MB/s on this project's
 * machines whatever the data; random-looking bytes (compiled artifacts, archives,
 * models) do not shrink anyway, so they are stored (deflate's uncompressed blocks,
 * a copy), and data that does shrink gets the fastest level. The first MiB decides.
 * Stored output depends only on the input, so the same layer gives the same blob.
 */

export interface EncodedLayer {
  /** sha256 of the uncompressed tar: the image config's diff_id. */
  readonly diffId: string;
  /** sha256 of the blob. */
  readonly digest: string;
  readonly size: number;
  readonly rawSize: number;
  readonly level: 0 | 1;
}

const SAMPLE_BYTES = 1 << 20;
/** Below this ratio compressing pays for itself. */
const WORTH_COMPRESSING = 0.9;
const STORED_BLOCK = 65535;
const OUTPUT_BATCH = 1 << 20;
/** No file name, no time, OS "unknown": the header never varies. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff]);

export function chooseLevel(sample: Buffer): 0 | 1 {
  if (sample.length === 0) return 1;
  return zlib.deflateRawSync(sample, { level: 1 }).length / sample.length < WORTH_COMPRESSING ? 1 : 0;
}

/** gzip or zstd magic; a tar starts with a file name instead. */
export function isCompressed(sample: Buffer): boolean {
  return (sample[0] === 0x1f && sample[1] === 0x8b) || (sample[0] === 0x28 && sample[1] === 0xb5 && sample[2] === 0x2f && sample[3] === 0xfd);
}

let crcTable: Uint32Array | undefined;
function crc32Js(data: Uint8Array, previous: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) crc = (crcTable[(crc ^ (data[i] ?? 0)) & 0xff] ?? 0) ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** zlib.crc32 arrived in Node 20.15; older Node (>= 18.19 is supported) computes it here. */
const crc32: (data: Uint8Array, previous: number) => number = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32 ?? crc32Js;
export { crc32Js as crc32ForTests };

/** The 5-byte header of a deflate stored block (at most 65,535 bytes); the last one carries BFINAL. */
function storedHeader(length: number, final: boolean): Buffer {
  const header = Buffer.alloc(5);
  header[0] = final ? 1 : 0;
  header.writeUInt16LE(length, 1);
  header.writeUInt16LE(~length & 0xffff, 3);
  return header;
}

/** Re-cuts a stream into pieces of exactly `size` bytes (the last may be shorter). */
async function* fixedPieces(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of source) {
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes < size) continue;
    let all = Buffer.concat(pending);
    while (all.length >= size) {
      yield all.subarray(0, size);
      all = all.subarray(size);
    }
    pending = all.length > 0 ? [all] : [];
    pendingBytes = all.length;
  }
  if (pendingBytes > 0) yield Buffer.concat(pending);
}

async function* deflateFast(pieces: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const deflate = zlib.createDeflateRaw({ level: 1 });
  const output: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => output.push(chunk));
  const write = (piece: Buffer): Promise<void> => new Promise((resolve, reject) => deflate.write(piece, (error) => (error ? reject(error) : resolve())));
  for await (const piece of pieces) {
    await write(piece);
    yield* output.splice(0);
  }
  await new Promise<void>((resolve, reject) => {
    deflate.once('end', resolve);
    deflate.once('error', reject);
    deflate.end();
  });
  yield* output.splice(0);
}

/**
 * Encodes `body`; iterate `blob` for the bytes, then read `result()`.
 * Throws if the layer is already compressed (the caller falls back to docker push).
 */
export function encodeLayer(body: AsyncIterable<Buffer>): { blob: AsyncGenerator<Buffer>; result: () => EncodedLayer } {
  const raw = createHash('sha256');
  const blobHash = createHash('sha256');
  let rawSize = 0;
  let size = 0;
  let crc = 0;
  let level: 0 | 1 = 0;
  let finished: EncodedLayer | undefined;

  async function* encode(): AsyncGenerator<Buffer> {
    const iterator = fixedPieces(body, STORED_BLOCK)[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let headBytes = 0;
    let ended = false;
    while (headBytes < SAMPLE_BYTES) {
      const next = await iterator.next();
      if (next.done) {
        ended = true;
        break;
      }
      head.push(next.value);
      headBytes += next.value.length;
    }
    const sample = Buffer.concat(head);
    // Engines with the containerd image store save layers as they were pulled: compressed.
    if (isCompressed(sample)) throw new Error('the saved layer is already compressed');
    level = chooseLevel(sample);
    async function* pieces(): AsyncGenerator<Buffer> {
      for (const piece of head) yield piece;
      if (ended) return;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    }
    async function* counted(): AsyncGenerator<Buffer> {
      for await (const piece of pieces()) {
        raw.update(piece);
        crc = crc32(piece, crc);
        rawSize += piece.length;
        yield piece;
      }
    }
    yield GZIP_HEADER;
    if (level === 1) {
      yield* deflateFast(counted());
    } else {
      // One piece behind, so that the last block can be marked final.
      let previous: Buffer | undefined;
      for await (const piece of counted()) {
        if (previous) yield* [storedHeader(previous.length, false), previous];
        previous = piece;
      }
      const last = previous ?? Buffer.alloc(0);
      yield* [storedHeader(last.length, true), last];
    }
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc >>> 0, 0);
    trailer.writeUInt32LE(rawSize % 2 ** 32, 4);
    yield trailer;
  }

  // Handed on in pieces of about 1 MiB: a stream of small chunks costs more per byte than the copy.
  async function* hashed(): AsyncGenerator<Buffer> {
    let batch: Buffer[] = [];
    let batchBytes = 0;
    for await (const chunk of encode()) {
      blobHash.update(chunk);
      size += chunk.length;
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= OUTPUT_BATCH) {
        yield Buffer.concat(batch);
        batch = [];
        batchBytes = 0;
      }
    }
    if (batchBytes > 0) yield Buffer.concat(batch);
    finished = { diffId: `sha256:${raw.digest('hex')}`, digest: `sha256:${blobHash.digest('hex')}`, size, rawSize, level };
  }

  return {
    blob: hashed(),
    result: () => {
      if (!finished) throw new Error('the layer has not been read to its end');
      return finished;
    },
  };
}
