import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUILDKIT_CLI, cleanup, dependencyStageApp, ensureTestEnv, explain, imageFiles, incompressibleFile, REGISTRY, registryDigest, registryTags, reportedStage, runHelper, STRATEGY, uniqueRepo, wipeEngine } from '../support/env.ts';

/** The inputs the helper recorded in a registry cache's index (export-timing.ts). */
async function recordedInputs(repo: string, tag: string): Promise<Record<string, string> | undefined> {
  const response = await fetch(`http://${REGISTRY}/v2/${repo.slice(REGISTRY.length + 1)}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json' } });
  if (!response.ok) return undefined;
  const body = (await response.json()) as { annotations?: Record<string, string> };
  const text = body.annotations?.['org.docker-build-remote-cache.inputs'];
  return text === undefined ? undefined : (JSON.parse(text) as Record<string, string>);
}

const IN_BUILD = /cache export: in the build, after the deploy image/;
const EARLY_NOTE = /dependency part, steps up to 4\/6, exported while the build went on/;

describe('registry cache: when the target\'s cache is exported', { timeout: 600_000, skip: STRATEGY === 'registry-cache' ? false : 'registry-cache strategy only (containerd store)' }, () => {
  const repo = uniqueRepo('export-timing');
  const dir = dependencyStageApp('drc-export-timing-', incompressibleFile('vendor.bin', 4 * 16, 9));
  const helper = (tag: string, branch: string) => runHelper([`${repo}:${tag}`, '--docker', BUILDKIT_CLI, '--branch', branch, '--default-branch', 'main'], { cwd: dir });
  before(() => ensureTestEnv());
  after(() => cleanup(dir));

  it('cold: in the build (nothing recorded yet), the dependency part early beside it; the export records what the build read', async () => {
    wipeEngine();
    const run = await helper('v1', 'main');
    assert.equal(run.code, 0, explain(run));
    assert.match(run.stderr + run.stdout, /cache export: in the build, after the deploy image \(no record of the inputs of the cache found: steps should run\)/);
    assert.equal((run.stdout + run.stderr).match(/^#0 building with/gm)?.length, 2, 'the target build and the early export, no export after');
    assert.match(reportedStage(run, 'builder').cachePush.find((p) => p.ref === `${repo}:_main__builder`)?.message ?? '', EARLY_NOTE);
    assert.equal(reportedStage(run, 'final').cachePush.find((p) => p.ref === `${repo}:_main`)?.message, 'exported in the build, after the deploy image');
    const inputs = await recordedInputs(repo, '_main');
    assert.ok(inputs, 'the cache index carries the inputs');
    for (const key of ['build', 'builder:cut', 'builder:whole', 'final:whole']) assert.match(inputs[key] ?? '', /^sha256:[0-9a-f]{64}$/, `${key} in ${JSON.stringify(inputs)}`);
  });

  it('a source change: the deploy build exports the cache itself, and the dependency part is not sent again', async () => {
    appendFileSync(join(dir, 'src', 'main.txt'), 'change 1\n');
    wipeEngine();
    const before = await recordedInputs(repo, '_main');
    const run = await helper('v2', 'topic');
    assert.equal(run.code, 0, explain(run));
    assert.match(run.stderr + run.stdout, IN_BUILD);
    // One buildx session: the target's, with --cache-to in it.
    assert.equal((run.stdout + run.stderr).match(/^#0 building with/gm)?.length, 1, explain(run));
    // The default branch's caches and their unprefixed copies are the same manifests: each is imported once.
    const mainDigest = await registryDigest(repo, '_main');
    assert.match(mainDigest ?? '', /^sha256:/, 'the default branch has its cache');
    assert.equal(await registryDigest(repo, '_latest'), mainDigest);
    const imported = [...(run.stdout + run.stderr).matchAll(/^#\d+ importing cache manifest from \S+:(\S+)$/gm)].map((m) => m[1] ?? '');
    assert.ok(imported.includes('_main') && !imported.includes('_latest'), `imported: ${imported.join(', ')}`);
    const importedDigests = await Promise.all(imported.map((tag) => registryDigest(repo, tag)));
    assert.equal(new Set(importedDigests).size, imported.length, `no manifest twice: ${imported.join(', ')}`);
    const final = reportedStage(run, 'final');
    assert.deepEqual(final.cachePush.find((p) => p.ref === `${repo}:_topic`), { ref: `${repo}:_topic`, action: 'pushed', message: 'exported in the build, after the deploy image' });
    assert.deepEqual(reportedStage(run, 'builder').steps, { cached: 3, total: 5 });
    assert.ok((final.mbPushed ?? 0) < 1, `only the source layers went up: ${final.mbPushed} MB`);
    const tags = await registryTags(repo);
    for (const tag of ['v2', '_topic']) assert.ok(tags.includes(tag), `${tag} in ${tags.join(', ')}`);
    const inputs = await recordedInputs(repo, '_topic');
    assert.equal(inputs?.['builder:cut'], before?.['builder:cut'], 'same dependency part');
    assert.notEqual(inputs?.build, before?.build, 'another build');
    assert.match(imageFiles(`${repo}:v2`).get('app/app.txt') ?? '', /./, 'the deploy image is whole');
  });

  it('the cache the build exported serves the next source change', async () => {
    appendFileSync(join(dir, 'src', 'main.txt'), 'change 2\n');
    wipeEngine();
    const run = await helper('v3', 'topic');
    assert.equal(run.code, 0, explain(run));
    assert.match(run.stderr + run.stdout, IN_BUILD);
    assert.equal(reportedStage(run, 'builder').cacheUsed?.ref, `${repo}:_topic`);
    assert.deepEqual(reportedStage(run, 'builder').steps, { cached: 3, total: 5 });
  });

  it('no change: no export at all, the branch cache stays as it was', async () => {
    const digest = await registryDigest(repo, '_topic');
    wipeEngine();
    const run = await helper('v4', 'topic');
    assert.equal(run.code, 0, explain(run));
    assert.match(run.stderr + run.stdout, /cache export: after the build \(the inputs are those recorded with the cache: no step should run\)/);
    assert.equal((run.stdout + run.stderr).match(/^#0 building with/gm)?.length, 1);
    assert.equal(reportedStage(run, 'final').cachePush.find((p) => p.ref === `${repo}:_topic`)?.action, 'unchanged');
    assert.equal(await registryDigest(repo, '_topic'), digest);
  });

  it('a dependency change: the part goes up early and the target is exported in the build', async () => {
    appendFileSync(join(dir, 'deps.txt'), 'lib 2\n');
    wipeEngine();
    const run = await helper('v5', 'topic');
    assert.equal(run.code, 0, explain(run));
    assert.match(run.stderr + run.stdout, /cache export: in the build, after the deploy image \(the dependency part of builder may have changed: it goes up early, the rest in the build\)/);
    assert.match(reportedStage(run, 'builder').cachePush.find((p) => p.ref === `${repo}:_topic__builder`)?.message ?? '', EARLY_NOTE);
    assert.deepEqual(reportedStage(run, 'final').cachePush.find((p) => p.ref === `${repo}:_topic`), { ref: `${repo}:_topic`, action: 'pushed', message: 'exported in the build, after the deploy image' });
    const inputs = await recordedInputs(repo, '_topic');
    assert.match(inputs?.['builder:cut'] ?? '', /^sha256:/, 'the new dependency part is recorded');
  });
});
