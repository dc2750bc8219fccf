import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUILDKIT_CLI, ENGINE, STRATEGY, buildNoCache, CLASSIC_CLI, cleanup, ensureTestEnv, explain, imageFiles, registryDigest, registryTags, runHelper, smallApp, uniqueRepo, wipeEngine } from '../support/env.ts';

const BUILDERS = [
  { name: 'buildkit', cli: BUILDKIT_CLI, env: { DOCKER_BUILDKIT: '1' } },
  { name: 'classic', cli: CLASSIC_CLI, env: { DOCKER_BUILDKIT: '0' } },
];


for (const builder of BUILDERS) {
  describe(`remote layer cache on a fresh engine, ${builder.name} builder`, { timeout: 600_000 }, () => {
    const repo = uniqueRepo(builder.name);
    const app = smallApp();
    const helper = (image: string, extra: string[]) =>
      runHelper([`${repo}:${image}`, '--docker', builder.cli, ...extra], { cwd: app, env: builder.env });
    const sharedDigests = new Map<string, string | undefined>();
    const registryCache = builder.name === 'buildkit' && STRATEGY === 'registry-cache';
    // Inline: a cache image per stage and scope. Registry cache: one cache of the target per scope, every stage in
    // it, and, from a run whose dependency steps ran (`early`), each stage's early export to its own tag.
    const cacheTags = (token: string, shared: boolean, early = true): string[] =>
      registryCache
        ? [`_${token}`, ...(early ? [`_${token}__builder`, `_${token}__deps`] : []), ...(shared ? ['_latest', ...(early ? ['___builder', '___deps'] : [])] : [])]
        : [token, `${token}__builder`, `${token}__deps`, ...(shared ? ['latest', '__builder', '__deps'] : [])];

    before(() => ensureTestEnv());
    after(() => cleanup(app));

    it('a cold build on main builds every step and pushes exactly the expected tags', async () => {
      wipeEngine();
      const run = await helper('cold', ['--branch', 'main']);
      assert.equal(run.code, 0, explain(run));
      assert.equal(run.report?.builder, builder.name);
      assert.equal(run.report?.strategy, builder.name === 'classic' ? 'classic' : STRATEGY);
      assert.deepEqual(await registryTags(repo), ['cold', ...cacheTags('main', true)].sort());
      for (const stage of run.report?.stages ?? []) {
        assert.equal(stage.cacheUsed, null, `${stage.stage} found no cache`);
        assert.equal(stage.steps?.cached, 0, `${stage.stage} had no cached step`);
        assert.ok((stage.steps?.total ?? 0) > 0, `${stage.stage} counted its steps`);
      }
      for (const tag of cacheTags('main', true)) sharedDigests.set(tag, await registryDigest(repo, tag));
      if (registryCache) {
        const target = run.report?.stages.find((s) => s.stage === 'final');
        assert.deepEqual(target?.cachePush.map((p) => p.action), ['pushed', 'copied'], 'exported once, copied to the unprefixed scope');
        // The 4.2 MB dependency layer went up once, with the deps stage's early export; the target's export did not send it again.
        const deps = run.report?.stages.find((s) => s.stage === 'deps');
        assert.ok((deps?.mbPushed ?? 0) > 4.1, `the early export of deps sent the 4.2 MB layer: ${deps?.mbPushed} MB`);
        const total = (run.report?.stages ?? []).reduce((sum, s) => sum + (s.mbPushed ?? 0), 0);
        assert.ok(total > 4.1 && total < 7, `the cache exports uploaded ${total} MB for a 4.2 MB layer and the rest`);
        return;
      }
      // Each stage's image stays on the engine under its stable local tag only (the run's own tags are gone).
      const localTags = execFileSync(builder.cli, ['images', '--format', '{{.Tag}}', `drc.local/${repo.slice(repo.indexOf('/') + 1)}`], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
      assert.deepEqual(localTags, (run.report?.stages ?? []).map((s) => `last__${s.stage}`).sort());
      // The 4 MiB incompressible dependency layer is new: the helper uploads it itself (stored, not gzipped),
      // with the base layers (~1 MB), and the later tests in this suite build from that upload.
      const deps = run.report?.stages.find((s) => s.stage === 'deps');
      // The direct upload reads docker save's uncompressed layers: not on the containerd store, which gives them compressed.
      if (ENGINE === 'legacy') assert.ok(deps?.cachePush.some((p) => p.action === 'pushed' && p.message === 'direct upload'), JSON.stringify(deps?.cachePush));
      assert.ok((deps?.mbPushed ?? 0) > (ENGINE === 'legacy' ? 4.2 : 4.1) && (deps?.mbPushed ?? 0) < 6.5, `deps uploaded ${deps?.mbPushed} MB for a 4.2 MB layer and the base`);
    });

    it('a second main build on a fresh engine has every step cached, and re-pushes nothing', async () => {
      wipeEngine();
      const run = await helper('second', ['--branch', 'main']);
      assert.equal(run.code, 0, explain(run));
      for (const stage of run.report?.stages ?? []) {
        assert.equal(stage.cacheUsed?.scope, 'branch', `${stage.stage} used the main cache`);
        assert.ok(stage.steps && stage.steps.total > 0 && stage.steps.cached === stage.steps.total, `${stage.stage}: ${JSON.stringify(stage.steps)}`);
        assert.ok(stage.cachePush.every((p) => p.action === 'unchanged'), `${stage.stage}: ${JSON.stringify(stage.cachePush)}`);
      }
      for (const [tag, digest] of sharedDigests) assert.equal(await registryDigest(repo, tag), digest, `${tag} kept its digest`);
      // Every step of every stage counted (BuildKit prints only some of a cached stage's steps): COPY+RUN, RUN+COPY+RUN,
      // COPY+RUN (and CMD, which the classic builder counts as a step).
      const counts = Object.fromEntries((run.report?.stages ?? []).map((s) => [s.stage, s.steps?.total]));
      assert.deepEqual(counts, { deps: 2, builder: 3, final: builder.name === 'classic' ? 3 : 2 });
    });

    it('a new branch with a source change falls back to main per stage, rebuilds only what changed, and pushes only its own tags', async () => {
      appendFileSync(join(app, 'src', 'main.txt'), 'a change on the branch\n');
      wipeEngine();
      const run = await helper('feature', ['--branch', 'feature/x']);
      assert.equal(run.code, 0, explain(run));
      const stages = new Map((run.report?.stages ?? []).map((s) => [s.stage, s]));
      for (const stage of stages.values()) {
        assert.equal(stage.cacheUsed?.scope, 'default', `${stage.stage} fell back to main`);
        assert.equal(stage.cacheUsed?.branch, 'main');
      }
      const deps = stages.get('deps');
      assert.ok(deps?.steps && deps.steps.cached === deps.steps.total, `deps fully cached: ${JSON.stringify(deps?.steps)}`);
      const build = stages.get('builder');
      assert.ok(build?.steps && build.steps.cached < build.steps.total, `builder rebuilt its changed steps: ${JSON.stringify(build?.steps)}`);
      assert.deepEqual(await registryTags(repo), ['cold', 'feature', 'second', ...cacheTags('main', true), ...cacheTags('feature.x', false, false)].sort());
      for (const [tag, digest] of sharedDigests) assert.equal(await registryDigest(repo, tag), digest, `${tag} kept its digest after a branch build`);
    });

    it('the branch built again prefers its own branch cache and has every step cached', async () => {
      wipeEngine();
      const run = await helper('feature-2', ['--branch', 'feature/x']);
      assert.equal(run.code, 0, explain(run));
      for (const stage of run.report?.stages ?? []) {
        assert.equal(stage.cacheUsed?.scope, 'branch', `${stage.stage} used the branch cache`);
        assert.ok(stage.steps && stage.steps.cached === stage.steps.total, `${stage.stage}: ${JSON.stringify(stage.steps)}`);
      }
    });

    it('the branch with another source change still reuses the unchanged dependency stage (no cache loss from re-pushes)', async () => {
      appendFileSync(join(app, 'src', 'main.txt'), 'another change\n');
      wipeEngine();
      const run = await helper('feature-3', ['--branch', 'feature/x']);
      assert.equal(run.code, 0, explain(run));
      const stages = new Map((run.report?.stages ?? []).map((s) => [s.stage, s]));
      const deps = stages.get('deps')?.steps;
      assert.ok(deps && deps.cached === deps.total, `deps fully cached: ${JSON.stringify(deps)}`);
      const build = stages.get('builder')?.steps;
      assert.ok(build && build.cached < build.total, `builder rebuilt its changed steps: ${JSON.stringify(build)}`);
      // The builder's toolchain step comes before COPY src. The classic builder always reuses it; the
      // 20.10 engine's BuildKit did in 4 of 7 runs (inline-cache links it drops; README "Known limitations").
      if (builder.name === 'classic') assert.ok(build.cached >= 1, `builder reused its prefix: ${JSON.stringify(build)}`);
    });

    it('the cached image has the same files as a no-cache build', () => {
      const noCache = `drc-test/nocache-${builder.name}:latest`;
      buildNoCache(app, noCache);
      const cached = imageFiles(`${repo}:feature-3`);
      const reference = imageFiles(noCache);
      assert.ok(reference.size > 10, 'the image has files');
      assert.deepEqual([...cached.entries()].sort(), [...reference.entries()].sort());
    });
  });
}
