import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { BUILDKIT_CLI, STRATEGY, cleanup, ensureTestEnv, explain, type HelperRun, registryTags, runHelper, smallApp, uniqueRepo, wipeEngine } from '../support/env.ts';

const BUILDKIT = { DOCKER_BUILDKIT: '1' };


/** Builds `app` on main (cold), then applies `change` and builds a topic branch on a fresh engine. */
async function cachedThenChanged(repo: string, app: string, change: (dockerfile: string) => string, source?: string): Promise<HelperRun> {
  wipeEngine();
  const seed = await runHelper([`${repo}:seed`, '--docker', BUILDKIT_CLI, '--branch', 'main'], { cwd: app, env: BUILDKIT });
  assert.equal(seed.code, 0, explain(seed));
  const dockerfile = join(app, 'Dockerfile');
  writeFileSync(dockerfile, change(readFileSync(dockerfile, 'utf8')));
  if (source !== undefined) writeFileSync(join(app, 'src', 'main.txt'), source);
  wipeEngine();
  return runHelper([`${repo}:topic`, '--docker', BUILDKIT_CLI, '--branch', 'topic', '--default-branch', 'main'], { cwd: app, env: BUILDKIT });
}

describe('fallbacks and failures on the real engine and registry', { timeout: 600_000 }, () => {
  before(() => ensureTestEnv());

  it('uses the unprefixed cache when neither the branch nor a default branch has one', async () => {
    const repo = uniqueRepo('unprefixed');
    const app = smallApp();
    try {
      wipeEngine();
      const seed = await runHelper([`${repo}:seed`, '--docker', BUILDKIT_CLI, '--branch', 'main'], { cwd: app, env: BUILDKIT });
      assert.equal(seed.code, 0, explain(seed));
      wipeEngine();
      const run = await runHelper([`${repo}:other`, '--docker', BUILDKIT_CLI, '--branch', 'topic', '--default-branch', 'develop,trunk'], { cwd: app, env: BUILDKIT });
      assert.equal(run.code, 0, explain(run));
      for (const stage of run.report?.stages ?? []) {
        assert.equal(stage.cacheUsed?.scope, 'unprefixed', `${stage.stage} used the unprefixed cache`);
        assert.ok(stage.steps && stage.steps.cached === stage.steps.total, `${stage.stage}: ${JSON.stringify(stage.steps)}`);
      }
      assert.ok((await registryTags(repo)).includes(STRATEGY === 'inline' ? 'topic' : '_topic'), 'the branch wrote its own tag');
    } finally {
      cleanup(app);
    }
  });

  it('when the final stage fails, the earlier stages\' caches are pushed and the exit code says the build failed', async () => {
    const repo = uniqueRepo('failfinal');
    const app = smallApp({ failFinal: true });
    try {
      wipeEngine();
      const run = await runHelper([`${repo}:broken`, '--docker', BUILDKIT_CLI, '--branch', 'main'], { cwd: app, env: BUILDKIT });
      assert.equal(run.code, 6, explain(run));
      assert.match(run.stderr, /deliberate failure in the final stage/, 'the build\'s own error is shown');
      assert.match(run.stderr, /error: the build of stage "final" failed/);
      assert.equal(run.report?.outcome, 'build-failed');
      // Registry cache: deps went early (it finished while builder built); the builder's cache, exported after the failure, holds deps too (mode=max).
      assert.deepEqual(await registryTags(repo), STRATEGY === 'inline' ? ['__builder', '__deps', 'main__builder', 'main__deps'] : ['___builder', '___deps', '_main__builder', '_main__deps']);
    } finally {
      cleanup(app);
    }
  });

  it('with caches, when the final stage fails after a source change, the changed stage is exported from the one target build and its cache pushed', async () => {
    const repo = uniqueRepo('failcached');
    const app = smallApp();
    try {
      const run = await cachedThenChanged(repo, app, (text) => text.replace('RUN cat /app/app.txt > /app/copy.txt', 'RUN echo "deliberate failure in the final stage" && exit 3'), 'v2\n');
      assert.equal(run.code, 6, explain(run));
      assert.match(run.stderr, /deliberate failure in the final stage/);
      assert.match(run.stderr, /error: the build of stage "final" failed/);
      assert.equal(run.report?.strategy, STRATEGY);
      const byStage = new Map((run.report?.stages ?? []).map((s) => [s.stage, s]));
      assert.equal(byStage.get('deps')?.status, 'cached', 'the unchanged stage is left alone');
      assert.equal(byStage.get('builder')?.status, 'built');
      assert.deepEqual(byStage.get('builder')?.steps, { cached: 1, total: 3 }, 'counted as the target build ran them (toolchain step cached)');
      assert.equal(byStage.get('final')?.status, 'failed');
      const tags = await registryTags(repo);
      const [stageTag, targetTag] = STRATEGY === 'inline' ? ['topic__builder', 'topic'] : ['_topic__builder', '_topic'];
      assert.ok(tags.includes(stageTag), `the changed stage's cache was pushed: ${tags.join(', ')}`);
      assert.ok(!tags.includes(targetTag), 'the failed final stage wrote no cache');
    } finally {
      cleanup(app);
    }
  });

  it('with caches, when a non-target stage fails, the error names that stage and nothing after it is pushed', async () => {
    const repo = uniqueRepo('failmiddle');
    const app = smallApp();
    try {
      const run = await cachedThenChanged(repo, app, (text) => text.replace('RUN mkdir -p /out && cat /src/*.txt', 'RUN echo "deliberate failure in the builder stage" && exit 4 && cat /src/*.txt'));
      assert.equal(run.code, 6, explain(run));
      assert.match(run.stderr, /deliberate failure in the builder stage/);
      assert.match(run.stderr, /error: the build of stage "builder" failed/);
      const byStage = new Map((run.report?.stages ?? []).map((s) => [s.stage, s]));
      assert.equal(byStage.get('deps')?.status, 'cached');
      assert.equal(byStage.get('builder')?.status, 'failed');
      assert.equal(byStage.get('final')?.status, 'not-built');
      const tags = await registryTags(repo);
      const p = STRATEGY === 'inline' ? '' : '_';
      assert.ok(!tags.includes(`${p}topic__builder`) && !tags.includes(`${p}topic`), `no cache of the failed or later stages: ${tags.join(', ')}`);
      assert.ok(tags.includes(`${p}topic__deps`), 'the unchanged stage before it still got its branch tag');
    } finally {
      cleanup(app);
    }
  });

  it('with the registry unreachable, the build still succeeds uncached (--no-push) and a warning names the registry', async () => {
    const app = smallApp();
    try {
      wipeEngine();
      const started = Date.now();
      const run = await runHelper(['127.0.0.1:5999/nowhere/app:x', '--docker', BUILDKIT_CLI, '--branch', 'main', '--no-push'], { cwd: app, env: BUILDKIT });
      assert.equal(run.code, 0, explain(run));
      assert.match(run.stderr, /WARNING: registry 127\.0\.0\.1:5999 is unreachable/);
      for (const stage of run.report?.stages ?? []) {
        assert.equal(stage.cacheUsed, null);
        assert.equal(stage.status, 'built');
      }
      assert.equal(run.report?.deploy[0]?.action, 'tagged');
      assert.ok(Date.now() - started < 90_000, 'a dead registry does not stall the run');
    } finally {
      cleanup(app);
    }
  });
});
