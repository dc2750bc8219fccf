import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Docker } from '../../src/engine/docker.ts';
import { pushImageDirect, type UploadedLayer } from '../../src/strategies/classic-store/direct-push.ts';
import type { RegistryApi } from '../../src/registry/registry.ts';
import { tarOf } from '../support/tar.ts';

const sha = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const target = { domain: '127.0.0.1:5000', path: 'app', tag: 'master__builder' };

/** docker save's legacy layout: one folder per layer (named by an ID unrelated to the content), config, manifest.json. */
function savedImage(layers: readonly Buffer[]): Buffer {
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: layers.map(sha) } }));
  const paths = layers.map((_, i) => `${String(i).repeat(4)}/layer.tar`);
  const configName = `${sha(config).slice(7)}.json`;
  return tarOf([
    ...layers.map((layer, i): [string, Buffer] => [paths[i] ?? '', layer]),
    [configName, config],
    ['manifest.json', Buffer.from(JSON.stringify([{ Config: configName, Layers: paths }]))],
  ]);
}

function fakeDocker(saved: Buffer): Docker {
  return {
    save: () => ({
      stdout: (async function* () {
        for (let at = 0; at < saved.length; at += 65536) yield saved.subarray(at, at + 65536);
      })(),
      done: Promise.resolve({ exitCode: 0, stdout: '', stderr: '', all: '', durationMs: 1, canceled: false, notFound: false }),
      kill: () => undefined,
    }),
  } as unknown as Docker;
}

/** Records what reaches the registry: the blobs whose upload was committed, and the manifest. */
function recordingRegistry(): { api: RegistryApi; uploaded: string[]; manifests: { layers: { digest: string }[] }[] } {
  const uploaded: string[] = [];
  const manifests: { layers: { digest: string }[] }[] = [];
  const api = {
    async pushBlobStream(_ref: unknown, body: AsyncIterable<Buffer>, commit: () => Promise<string | undefined>) {
      for await (const _ of body);
      const digest = await commit();
      if (digest !== undefined) uploaded.push(digest);
      return digest !== undefined;
    },
    async hasBlob() {
      return false;
    },
    async pushBlob(_ref: unknown, bytes: Buffer) {
      uploaded.push(sha(bytes));
      return sha(bytes);
    },
    async putManifest(_ref: unknown, manifest: { body: Buffer }) {
      manifests.push(JSON.parse(manifest.body.toString('utf8')) as { layers: { digest: string }[] });
    },
  } as unknown as RegistryApi;
  return { api, uploaded, manifests };
}

function earlierLayer(content: Buffer): UploadedLayer {
  return { diffId: sha(content), tarSize: content.length, blob: { digest: 'sha256:' + 'e'.repeat(64), size: 123, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' } };
}

describe('pushImageDirect with layers uploaded earlier', () => {
  const heavy = randomBytes(2 << 20);
  const source = Buffer.from('source layer');

  it('takes a layer of the size of an earlier upload from it (not uploaded again) when the config gives it that diff_id', async () => {
    const registry = recordingRegistry();
    const early = earlierLayer(heavy);
    const result = await pushImageDirect({ docker: fakeDocker(savedImage([heavy, source])), registry: registry.api }, 'local', target, new Map(), 60_000, {
      earlier: new Map([[early.tarSize, early]]),
    });
    assert.deepEqual(registry.manifests[0]?.layers[0]?.digest, early.blob.digest);
    assert.equal(registry.manifests[0]?.layers.length, 2);
    // Uploaded: the source layer and the config; the heavy layer's bytes never went.
    assert.equal(registry.uploaded.length, 2);
    assert.ok(result.uploadedBytes < 1000, `uploaded ${result.uploadedBytes} bytes`);
    assert.deepEqual(result.encoded.map((l) => l.diffId), [sha(source)]);
  });

  it('fails (so the caller falls back to docker push) when a layer has that size but the config says other content', async () => {
    const registry = recordingRegistry();
    const sameSizeOther = randomBytes(heavy.length);
    const early = earlierLayer(heavy);
    await assert.rejects(
      pushImageDirect({ docker: fakeDocker(savedImage([sameSizeOther, source])), registry: registry.api }, 'local', target, new Map(), 60_000, {
        earlier: new Map([[early.tarSize, early]]),
      }),
      /has the size of a layer uploaded earlier but other content/,
    );
    assert.equal(registry.manifests.length, 0);
  });

  it('uploads the rewritten config (the inline-cache repair) in place of the saved one, and says how many links it restored', async () => {
    const registry = recordingRegistry();
    let seen = '';
    const result = await pushImageDirect({ docker: fakeDocker(savedImage([source])), registry: registry.api }, 'local', target, new Map(), 60_000, {
      rewriteConfig: async (config) => {
        seen = config.toString('utf8');
        return { bytes: Buffer.from(config.toString('utf8').replace('"layers"', '"layers","repaired":true')), repaired: 2 };
      },
    });
    assert.match(seen, /diff_ids/);
    assert.equal(result.repaired, 2);
    const manifest = registry.manifests[0] as unknown as { config: { digest: string } };
    const rewritten = Buffer.from(seen.replace('"layers"', '"layers","repaired":true'));
    assert.equal(manifest.config.digest, sha(rewritten));
    assert.ok(registry.uploaded.includes(sha(rewritten)) && !registry.uploaded.includes(sha(Buffer.from(seen))), 'only the rewritten config went up');
  });

  it('uploads every layer when nothing was uploaded earlier, and the manifest lists them in the config order', async () => {
    const registry = recordingRegistry();
    const result = await pushImageDirect({ docker: fakeDocker(savedImage([heavy, source])), registry: registry.api }, 'local', target, new Map(), 60_000);
    assert.equal(registry.manifests[0]?.layers.length, 2);
    assert.deepEqual(result.encoded.map((l) => l.diffId), [sha(heavy), sha(source)]);
    assert.ok(result.uploadedBytes > heavy.length, `uploaded ${result.uploadedBytes} bytes`);
  });
});
