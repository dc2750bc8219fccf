import assert from 'node:assert/strict';
import { appendFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUILDKIT_CLI, cleanup, dependencyStageApp, ensureTestEnv, explain, incompressibleFile, REGISTRY, REGISTRY_LOG, registryDigest, registryTags, registryTraffic, reportedStage, runHelper, STRATEGY, uniqueRepo, wipeEngine } from '../support/env.ts';

const HEAVY_MB = 8;

/** Two stages: the builder installs 8 MiB of incompressible dependencies, then copies and builds the sources (3 s). */
const app = (): string => dependencyStageApp('drc-early-export-', incompressibleFile('vendor.bin', HEAVY_MB * 16, 5));

const EARLY_NOTE = /dependency part, steps up to 4\/6, exported while the build went on/;

describe('registry cache: a stage\'s dependency part exported while its source steps build', { timeout: 600_000, skip: STRATEGY === 'registry-cache' ? false : 'registry-cache strategy only (containerd store)' }, () => {
  const repo = uniqueRepo('early-export');
  const dir = app();
  before(() => ensureTestEnv());
  after(() => cleanup(dir));

  it('cold: the dependency part goes to the builder\'s tag during the build, and the target\'s export does not send it again', async () => {
    wipeEngine();
    const offset = statSync(REGISTRY_LOG).size;
    const run = await runHelper([`${repo}:v1`, '--docker', BUILDKIT_CLI, '--branch', 'main', '--cache-compression', 'zstd'], { cwd: dir });
    assert.equal(run.code, 0, explain(run));
    assert.equal(run.report?.strategy, 'registry-cache');
    const builder = reportedStage(run, 'builder');
    const early = builder.cachePush.find((p) => p.ref === `${repo}:_main__builder`);
    assert.equal(early?.action, 'pushed', JSON.stringify(builder.cachePush));
    assert.match(early?.message ?? '', EARLY_NOTE);
    assert.ok(builder.mbPushed !== null && builder.mbPushed >= HEAVY_MB, `the early export carried the dependency layer: ${builder.mbPushed} MB`);
    // The export happened during the build phase, not after it.
    const phases = (run.report as unknown as { phases: { name: string; mbPushed: number | null }[] }).phases;
    const buildPhase = phases.find((p) => p.name.startsWith('build final (target)'));
    assert.ok(buildPhase?.mbPushed !== null && (buildPhase?.mbPushed ?? 0) >= HEAVY_MB, JSON.stringify(phases));
    const tags = await registryTags(repo);
    for (const tag of ['_main', '_main__builder', '_latest', '___builder', 'v1']) assert.ok(tags.includes(tag), `${tag} in ${tags.join(', ')}`);
    // The heavy layer went up once: the registry received about one copy of it, not two.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const traffic = registryTraffic(offset, undefined, new RegExp(`^/v2/${repo.slice(REGISTRY.length + 1)}/`));
    const heavyBytes = HEAVY_MB * 1024 * 1024;
    assert.ok(traffic.pushed >= heavyBytes && traffic.pushed < 1.5 * heavyBytes, `registry received ${(traffic.pushed / 1e6).toFixed(1)} MB for one ${HEAVY_MB} MiB layer`);
    const reported = phases.reduce((sum, p) => sum + (p.mbPushed ?? 0), 0);
    assert.ok(Math.abs(reported - traffic.pushed / 1e6) <= 0.02 * (traffic.pushed / 1e6) + 0.05, `report ${reported.toFixed(2)} MB pushed, registry ${(traffic.pushed / 1e6).toFixed(2)} MB`);
  });

  it('a source change on a new branch: the dependency steps are cached, nothing goes early (they did not run)', async () => {
    appendFileSync(join(dir, 'src', 'main.txt'), 'change 1\n');
    wipeEngine();
    const run = await runHelper([`${repo}:v2`, '--docker', BUILDKIT_CLI, '--branch', 'topic', '--default-branch', 'main', '--cache-compression', 'zstd'], { cwd: dir });
    assert.equal(run.code, 0, explain(run));
    const builder = reportedStage(run, 'builder');
    assert.deepEqual(builder.steps, { cached: 3, total: 5 }, 'WORKDIR, COPY deps, RUN deps cached; the source steps ran');
    assert.ok(!builder.cachePush.some((p) => EARLY_NOTE.test(p.message ?? '')), JSON.stringify(builder.cachePush));
    assert.ok(builder.mbPushed === null || builder.mbPushed < 1, `no dependency layer sent again: ${builder.mbPushed} MB`);
  });

  it('a dependency change: the new layer goes early to the branch\'s builder tag, and the next source change reuses it', async () => {
    appendFileSync(join(dir, 'deps.txt'), 'lib 2\n');
    const mainBuilder = await registryDigest(repo, '_main__builder');
    wipeEngine();
    const run = await runHelper([`${repo}:v3`, '--docker', BUILDKIT_CLI, '--branch', 'topic', '--default-branch', 'main', '--cache-compression', 'zstd'], { cwd: dir });
    assert.equal(run.code, 0, explain(run));
    const early = reportedStage(run, 'builder').cachePush.find((p) => p.ref === `${repo}:_topic__builder`);
    assert.match(early?.message ?? '', EARLY_NOTE);
    assert.ok(mainBuilder !== undefined);
    assert.equal(await registryDigest(repo, '_main__builder'), mainBuilder, 'a feature branch writes only its own scope, early exports too');
    appendFileSync(join(dir, 'src', 'main.txt'), 'change 2\n');
    wipeEngine();
    const next = await runHelper([`${repo}:v4`, '--docker', BUILDKIT_CLI, '--branch', 'topic', '--default-branch', 'main', '--cache-compression', 'zstd'], { cwd: dir });
    assert.equal(next.code, 0, explain(next));
    assert.deepEqual(reportedStage(next, 'builder').steps, { cached: 3, total: 5 });
  });
});
