import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseBuildOutput } from '../../src/engine/build-output.ts';
import { CacheOps } from '../../src/registry/cache-ops.ts';
import { ClassicStoreUploads } from '../../src/strategies/classic-store/uploads.ts';
import { Docker } from '../../src/engine/docker.ts';
import { execaRunner } from '../../src/engine/exec.ts';
import { parseImageRef } from '../../src/plan/image-ref.ts';
import { INLINE_CACHE_KEY } from '../../src/strategies/classic-store/inline-cache.ts';
import { consoleLogger } from '../../src/log.ts';
import { httpRegistry } from '../../src/registry/registry.ts';
import { BASE_IMAGE, BUILDKIT_CLI, cleanup, ensureTestEnv, runHelper, smallApp, uniqueRepo, wipeEngine, INLINE_ONLY } from '../support/env.ts';

interface CacheRecord {
  digest: string;
  layers?: { layer: number }[];
}

const registry = httpRegistry({ timeoutMs: 30_000, credentials: async () => undefined });

/** Steps of the builder and deps stages that a fresh engine serves from `cacheRef`. */
function cachedSteps(app: string, cacheRef: string): number {
  wipeEngine();
  const built = spawnSync(BUILDKIT_CLI, ['build', '--target', 'builder', '--cache-from', cacheRef, '-t', 'drc-test/repair:probe', '.'], {
    cwd: app, encoding: 'utf8', env: { ...process.env, DOCKER_BUILDKIT: '1', BUILDKIT_PROGRESS: 'plain' }, timeout: 300_000,
  });
  assert.equal(built.status, 0, built.stderr.slice(-2000));
  return parseBuildOutput(`${built.stdout}${built.stderr}`, 'buildkit').filter((s) => s.cached && !/^FROM\b/i.test(s.instruction)).length;
}

/** Copies `from` to `to` with the layer links of `strip` removed (what the 20.10 engine sometimes writes). */
async function copyWithoutLinks(from: string, to: string, strip: (records: CacheRecord[]) => CacheRecord[]): Promise<number> {
  const image = await registry.image(parseImageRef(from));
  const records = JSON.parse(Buffer.from(String(image.config[INLINE_CACHE_KEY]), 'base64').toString('utf8')) as CacheRecord[];
  const stripped = strip(records);
  for (const record of stripped) delete record.layers;
  const config = Buffer.from(JSON.stringify({ ...image.config, [INLINE_CACHE_KEY]: Buffer.from(JSON.stringify(records)).toString('base64') }));
  const target = parseImageRef(to);
  const digest = await registry.pushBlob(target, config);
  const manifest = JSON.parse(image.manifest.body.toString('utf8')) as { config: { digest: string; size: number } };
  manifest.config = { ...manifest.config, digest, size: config.length };
  await registry.putManifest(target, { body: Buffer.from(JSON.stringify(manifest)), mediaType: image.manifest.mediaType, digest: '' });
  return stripped.length;
}

/** The 20.10 machinery that holds the repair, on the engine under test. */
function legacyUploads(): ClassicStoreUploads {
  const docker = new Docker(BUILDKIT_CLI, execaRunner);
  const log = consoleLogger({ verbose: false, write: () => undefined });
  const ops = new CacheOps(docker, registry, log, { attempts: 1, baseDelayMs: 100, maxDelayMs: 100 }, 30_000);
  return new ClassicStoreUploads(docker, registry, ops, log, 30_000, 'auto');
}

describe('filling inline-cache links the engine dropped, on the real engine', { timeout: 600_000, skip: INLINE_ONLY }, () => {
  const repo = uniqueRepo('holes');
  const app = smallApp({ depsSleep: 2 });
  before(() => ensureTestEnv());
  after(() => cleanup(app));

  it('an image with two links missing in the middle of its chain serves as well as the intact one once filled', async () => {
    wipeEngine();
    const cold = await runHelper([`${repo}:v1`, '--docker', BUILDKIT_CLI, '--branch', 'main', '--no-push'], { cwd: app, env: { DOCKER_BUILDKIT: '1' } });
    assert.equal(cold.code, 0, cold.stderr.slice(-2000));
    // Two adjacent linked steps with linked steps right below and above them: their links are forced.
    const stripped = await copyWithoutLinks(`${repo}:main__builder`, `${repo}:holes`, (records) => {
      const byLayer = new Map(records.flatMap((r) => (r.layers?.[0] ? [[r.layers[0].layer, r] as const] : [])));
      const k = [...byLayer.keys()].sort((a, b) => b - a).find((l) => [1, 2, 3].every((d) => byLayer.has(l + d)));
      assert.ok(k !== undefined, `four linked layers in a row: ${[...byLayer.keys()].join(',')}`);
      return [byLayer.get(k + 1), byLayer.get(k + 2)].filter((r): r is CacheRecord => r !== undefined);
    });
    assert.equal(stripped, 2);

    appendFileSync(join(app, 'src', 'main.txt'), 'a source change\n');
    const intact = cachedSteps(app, `${repo}:main__builder`);
    const holed = cachedSteps(app, `${repo}:holes`);
    assert.ok(holed < intact, `the holes cost cache hits: ${holed} vs ${intact} steps cached`);

    const ops = legacyUploads();
    assert.equal(await ops.repairInlineCache(parseImageRef(`${repo}:holes`), []), 2, 'both links filled, from the image alone');
    assert.equal(cachedSteps(app, `${repo}:holes`), intact, 'the filled image serves the same steps as the intact one');
  });

  it('links missing right above the base image are filled when the base layer count anchors them', async () => {
    const base = await registry.image(parseImageRef(BASE_IMAGE));
    const baseLayers = ((base.config.rootfs as { diff_ids?: string[] }).diff_ids ?? []).length;
    // The three steps right above the base, so the last hit of a source change is unlinked (as the engine left 1 of 3 cold benchmark images).
    const stripped = await copyWithoutLinks(`${repo}:main__builder`, `${repo}:holes-at-base`, (records) =>
      records.filter((r) => r.layers?.[0] !== undefined && r.layers[0].layer >= baseLayers && r.layers[0].layer <= baseLayers + 2),
    );
    assert.equal(stripped, 3);
    const intact = cachedSteps(app, `${repo}:main__builder`);
    const holed = cachedSteps(app, `${repo}:holes-at-base`);
    assert.ok(holed < intact, `the holes cost cache hits: ${holed} vs ${intact} steps cached`);
    const ops = legacyUploads();
    assert.equal(await ops.repairInlineCache(parseImageRef(`${repo}:holes-at-base`), []), 0, 'without the base, nothing is forced');
    assert.equal(await ops.repairInlineCache(parseImageRef(`${repo}:holes-at-base`), [], parseImageRef(BASE_IMAGE)), 3);
    assert.equal(cachedSteps(app, `${repo}:holes-at-base`), intact, 'the filled image serves the same steps as the intact one');
  });
});
