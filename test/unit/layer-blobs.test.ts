import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { crc32ForTests, encodeLayer, isCompressed } from '../../src/strategies/classic-store/layer-encoder.ts';
import { readTar } from '../../src/strategies/classic-store/tar-reader.ts';
import { tarOf } from '../support/tar.ts';
import { chooseUploader, estimateNewBytes } from '../../src/strategies/classic-store/upload-choice.ts';

async function* pieces(bytes: Buffer, sizes: readonly number[]): AsyncGenerator<Buffer> {
  let offset = 0;
  for (let i = 0; offset < bytes.length; i++) {
    const size = sizes[i % sizes.length] ?? 1;
    yield bytes.subarray(offset, offset + size);
    offset += size;
  }
}

async function encodeAll(bytes: Buffer, sizes: readonly number[]): Promise<{ blob: Buffer; result: ReturnType<ReturnType<typeof encodeLayer>['result']> }> {
  const encoding = encodeLayer(pieces(bytes, sizes));
  const chunks: Buffer[] = [];
  for await (const chunk of encoding.blob) chunks.push(chunk);
  return { blob: Buffer.concat(chunks), result: encoding.result() };
}

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('encodeLayer', () => {
  it('stores random bytes: gunzip gives them back, digests and sizes are those of the bytes', async () => {
    const data = randomBytes(3 * 65535 + 17 + (1 << 20));
    const { blob, result } = await encodeAll(data, [65536]);
    assert.equal(result.level, 0);
    assert.deepEqual(gunzipSync(blob), data);
    assert.equal(result.diffId, sha(data));
    assert.equal(result.digest, sha(blob));
    assert.equal(result.size, blob.length);
    assert.equal(result.rawSize, data.length);
    // Stored: 10-byte header, 5 bytes per block, 8-byte trailer.
    assert.equal(blob.length, data.length + 18 + 5 * Math.ceil(data.length / 65535));
  });

  it('gives the same blob however the input is cut (the registry then already has it)', async () => {
    const data = randomBytes(300_000);
    const a = await encodeAll(data, [65536]);
    const b = await encodeAll(data, [1, 70_000, 4096, 333]);
    assert.equal(a.result.digest, b.result.digest);
    const text = Buffer.from('hello layer\n'.repeat(200_000));
    const c = await encodeAll(text, [65536]);
    const d = await encodeAll(text, [7, 100_000, 12_345]);
    assert.equal(c.result.level, 1);
    assert.equal(c.result.digest, d.result.digest);
  });

  it('compresses data that shrinks, and the blob still unpacks to the same bytes', async () => {
    const text = Buffer.from('node_modules/some-package/index.js\n'.repeat(100_000));
    const { blob, result } = await encodeAll(text, [65536]);
    assert.equal(result.level, 1);
    assert.ok(blob.length < text.length / 5, `${blob.length} bytes from ${text.length}`);
    assert.deepEqual(gunzipSync(blob), text);
    assert.equal(result.diffId, sha(text));
  });

  it('encodes an empty layer as a valid gzip', async () => {
    const { blob, result } = await encodeAll(Buffer.alloc(0), [1]);
    assert.equal(gunzipSync(blob).length, 0);
    assert.equal(result.rawSize, 0);
  });

  it('refuses a layer that is already compressed (the caller falls back to docker push)', async () => {
    const gz = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]);
    assert.equal(isCompressed(gz), true);
    assert.equal(isCompressed(Buffer.from('etc/passwd\0')), false);
    await assert.rejects(encodeAll(gz, [64]), /already compressed/);
  });

  it('computes CRC-32 like zlib (the fallback for Node before 20.15)', () => {
    assert.equal(crc32ForTests(Buffer.from('123456789'), 0), 0xcbf43926);
    const data = randomBytes(10_000);
    assert.equal(crc32ForTests(data.subarray(5000), crc32ForTests(data.subarray(0, 5000), 0)), crc32ForTests(data, 0));
  });
});

describe('readTar', () => {
  it('reads entries and bodies across any chunking, skipping unread bodies', async () => {
    const big = randomBytes(200_000);
    const longName = `${'d'.repeat(120)}/layer.tar`;
    const archive = tarOf([
      ['abc/', Buffer.alloc(0), '5'],
      ['abc/json', Buffer.from('{"id":"abc"}')],
      ['././@LongLink', Buffer.from(`${longName}\0`), 'L'],
      [longName, big],
      ['manifest.json', Buffer.from('[]')],
    ]);
    for (const sizes of [[archive.length], [13], [511, 513, 7000]]) {
      const seen: [string, string, number][] = [];
      let bigBack: Buffer | undefined;
      for await (const entry of readTar(pieces(archive, sizes))) {
        seen.push([entry.name, entry.type, entry.size]);
        if (entry.name === longName) {
          const chunks: Buffer[] = [];
          for await (const c of entry.body) chunks.push(c);
          bigBack = Buffer.concat(chunks);
        }
      }
      assert.deepEqual(seen, [
        ['abc/', '5', 0],
        ['abc/json', '0', 12],
        [longName, '0', 200_000],
        ['manifest.json', '0', 2],
      ]);
      assert.deepEqual(bigBack, big);
    }
  });

  it('fails on a stream cut inside an entry', async () => {
    const archive = tarOf([['x', randomBytes(5000)]]).subarray(0, 2000);
    await assert.rejects(async () => {
      for await (const entry of readTar(pieces(archive, [700]))) for await (const _ of entry.body) void _;
    }, /ended inside/);
  });

  it('fails on a stream that does not start at a header (its first bytes were lost), instead of misreading it', async () => {
    const archive = tarOf([['a', randomBytes(3000)], ['b', randomBytes(700)]]).subarray(1024);
    await assert.rejects(async () => {
      for await (const entry of readTar(pieces(archive, [512]))) for await (const _ of entry.body) void _;
    }, /not at a valid header/);
  });

  it('reads the source to its end after the end marker, so the process writing it can exit', async () => {
    let pulled = 0;
    async function* source(): AsyncGenerator<Buffer> {
      for (const chunk of [tarOf([['a', Buffer.from('x')]]), Buffer.alloc(4096), Buffer.alloc(4096)]) {
        pulled++;
        yield chunk;
      }
    }
    const names: string[] = [];
    for await (const entry of readTar(source())) names.push(entry.name);
    assert.deepEqual(names, ['a']);
    assert.equal(pulled, 3);
  });
});

describe('chooseUploader', () => {
  const MB = 1e6;
  // docker history: newest first; 0 for entries without a layer.
  const history = [120, 300, 100 * MB, 0, 80, 0, 2 * MB];
  const diffIds = ['base', 'workdir', 'deps', 'vendor', 'src', 'app'];

  it('estimates the new bytes from the newest layers', () => {
    assert.equal(estimateNewBytes(diffIds, new Set(['base', 'workdir', 'deps', 'vendor']), history), 420);
    assert.equal(estimateNewBytes(diffIds, new Set(['base', 'workdir']), history), 100 * MB + 420 + 80);
    assert.equal(estimateNewBytes(diffIds, new Set(), history), 102 * MB + 500);
  });

  it('uploads directly when the new layers are a large part of the image, else lets docker push skip the known ones', () => {
    assert.equal(chooseUploader('auto', diffIds, new Set(), history), 'direct'); // cold
    assert.equal(chooseUploader('auto', diffIds, new Set(['base', 'workdir']), history), 'direct'); // dependency change
    assert.equal(chooseUploader('auto', diffIds, new Set(['base', 'workdir', 'deps', 'vendor']), history), 'engine'); // source change
    assert.equal(chooseUploader('auto', ['a'], new Set(), [1 * MB]), 'engine'); // small image
    assert.equal(chooseUploader('auto', undefined, new Set(), history), 'engine');
    assert.equal(chooseUploader('direct', diffIds, new Set(diffIds), history), 'direct');
    assert.equal(chooseUploader('engine', diffIds, new Set(), history), 'engine');
  });
});
