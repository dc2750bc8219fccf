import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUILDKIT_CLI, cleanup, dependencyStageApp, ensureTestEnv, explain, imageFiles, registryTags, reportedStage, runHelper, uniqueRepo, wipeEngine, INLINE_ONLY } from '../support/env.ts';

const BUILDKIT = { DOCKER_BUILDKIT: '1' };
const EARLY = /stage builder: ([\d.]+) MB of dependency layers \(steps up to 4\/6\) uploaded while the source steps run/;

/** One stage that installs 6 MiB of dependencies (gzip cannot shrink them), then copies and builds the sources. */
const app = (): string =>
  dependencyStageApp('drc-early-', `awk 'BEGIN { srand(3); for (i = 0; i < 65536; i++) printf "%c", 1 + int(rand() * 255) }' > /tmp/b && for i in $(seq 1 96); do cat /tmp/b; done > vendor.bin && rm /tmp/b`);

describe('dependency layers uploaded while the source steps run, on the real engine', { timeout: 600_000, skip: INLINE_ONLY }, () => {
  const repo = uniqueRepo('early');
  const dir = app();
  before(() => ensureTestEnv());
  after(() => cleanup(dir));

  it('cold: the 6 MiB dependency layer goes up early, once; the cache image is complete and pullable', async () => {
    wipeEngine();
    const run = await runHelper([`${repo}:v1`, '--docker', BUILDKIT_CLI, '--branch', 'main'], { cwd: dir, env: BUILDKIT });
    assert.equal(run.code, 0, explain(run));
    const early = EARLY.exec(run.stderr);
    assert.ok(early, `early upload reported:\n${run.stderr.slice(-3000)}`);
    assert.ok(Number(early[1]) >= 6.2, `the early upload carried the dependency layer (${early[1]} MB)`);
    const builder = reportedStage(run, 'builder');
    // Early upload + the stage's own push, counted together: the 6.3 MB layer once plus the base and small layers, never twice (>= 12.6).
    assert.ok(builder.mbPushed !== null && builder.mbPushed >= 6.2 && builder.mbPushed < 11, `builder MB pushed: ${builder.mbPushed}`);
    assert.deepEqual((await registryTags(repo)).sort(), ['__builder', 'latest', 'main', 'main__builder', 'v1']);
    // Every layer the manifest names is in the registry: a fresh engine pulls it.
    wipeEngine();
    const pulled = spawnSync(BUILDKIT_CLI, ['pull', `${repo}:main__builder`], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(pulled.status, 0, pulled.stderr);
    assert.ok(imageFiles(`${repo}:main__builder`).has('build/vendor.bin'), 'the pulled cache image has the dependency file');
  });

  it('a source change on a new branch reuses the dependency steps of that cache', async () => {
    appendFileSync(join(dir, 'src', 'main.txt'), 'change 1\n');
    wipeEngine();
    const run = await runHelper([`${repo}:v2`, '--docker', BUILDKIT_CLI, '--branch', 'topic', '--default-branch', 'main'], { cwd: dir, env: BUILDKIT });
    assert.equal(run.code, 0, explain(run));
    assert.deepEqual(reportedStage(run, 'builder').steps, { cached: 3, total: 5 }, 'WORKDIR, COPY deps, RUN deps cached; the source steps ran');
    assert.ok(!EARLY.test(run.stderr), 'nothing to upload early: the dependency step was a cache hit');
  });

  it('a dependency change uploads the new layer early from the one target build, and the next source change reuses it', async () => {
    appendFileSync(join(dir, 'deps.txt'), 'lib 2\n');
    wipeEngine();
    const run = await runHelper([`${repo}:v3`, '--docker', BUILDKIT_CLI, '--branch', 'topic', '--default-branch', 'main'], { cwd: dir, env: BUILDKIT });
    assert.equal(run.code, 0, explain(run));
    assert.equal(run.report?.strategy, 'inline');
    assert.ok(EARLY.test(run.stderr), `early upload reported:\n${run.stderr.slice(-3000)}`);
    const builder = reportedStage(run, 'builder');
    assert.ok(builder.mbPushed !== null && builder.mbPushed >= 6.2 && builder.mbPushed < 11, `builder MB pushed: ${builder.mbPushed}`);

    appendFileSync(join(dir, 'src', 'main.txt'), 'change 2\n');
    wipeEngine();
    const next = await runHelper([`${repo}:v4`, '--docker', BUILDKIT_CLI, '--branch', 'topic', '--default-branch', 'main'], { cwd: dir, env: BUILDKIT });
    assert.equal(next.code, 0, explain(next));
    assert.equal(reportedStage(next, 'builder').cacheUsed?.scope, 'branch');
    assert.deepEqual(reportedStage(next, 'builder').steps, { cached: 3, total: 5 });
  });
});
