import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BASE_IMAGE, BUILDKIT_CLI, CLASSIC_CLI, cleanup, ensureTestEnv, explain, type HelperRun, registryTags, reportedStage, runHelper, uniqueRepo, wipeEngine, STRATEGY } from '../support/env.ts';

/**
 * The multi-stage form of Docker's own documentation: the first stage has no name
 * and the final stage copies from it by index. Its Dockerfile.dockerignore keeps
 * a file out of the context (BuildKit reads it beside the Dockerfile).
 */
function app(): string {
  const dir = mkdtempSync(join(tmpdir(), 'drc-unnamed-'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'deps.txt'), 'lib 1\n');
  writeFileSync(join(dir, 'src', 'main.txt'), 'v1\n');
  writeFileSync(join(dir, 'src', 'local-secret.txt'), 'not for the image\n');
  writeFileSync(join(dir, 'Dockerfile.dockerignore'), 'src/local-secret.txt\n');
  writeFileSync(
    join(dir, 'Dockerfile'),
    [
      `FROM ${BASE_IMAGE}`,
      'WORKDIR /build',
      'COPY deps.txt ./',
      'RUN sleep 1 && cat deps.txt > installed.txt',
      'COPY src/ ./src/',
      'RUN mkdir -p /out && cat installed.txt src/*.txt > /out/app.txt && ls src > /out/sources.txt',
      `FROM ${BASE_IMAGE}`,
      'COPY --from=0 /out /app',
      'CMD ["cat", "/app/app.txt"]',
      '',
    ].join('\n'),
  );
  return dir;
}



/** The temporary Dockerfile copies the run built with (from --verbose command lines). */
function copiesUsed(run: HelperRun): string[] {
  return [...new Set([...run.stderr.matchAll(/--file (\S*drc-dockerfile-[^/\s]+\/Dockerfile)/g)].map((m) => m[1] ?? ''))];
}

function fileIn(cli: string, image: string, path: string): string {
  return execFileSync(cli, ['run', '--rm', image, 'cat', path], { encoding: 'utf8', timeout: 60_000 });
}

for (const [builder, cli, env] of [
  ['BuildKit', BUILDKIT_CLI, { DOCKER_BUILDKIT: '1' }],
  ['classic', CLASSIC_CLI, { DOCKER_BUILDKIT: '0' }],
] as const) {
  describe(`an unnamed stage used by index (COPY --from=0) is built and cached on its own, ${builder} builder`, { timeout: 600_000 }, () => {
    // The registry cache has no image per stage: the target's cache holds stage 0 too.
    const registryCache = builder === 'BuildKit' && STRATEGY === 'registry-cache';
    const repo = uniqueRepo(`unnamed-${builder.toLowerCase()}`);
    const dir = app();
    before(() => ensureTestEnv());
    after(() => cleanup(dir));

    it('cold: stage 0 gets its own cache tags, through a copy of the Dockerfile that is removed afterwards', async () => {
      wipeEngine();
      const run = await runHelper([`${repo}:v1`, '--docker', cli, '--branch', 'main', '--verbose'], { cwd: dir, env });
      assert.equal(run.code, 0, explain(run));
      assert.match(run.stderr, /stage 0 has no name: the builds use a temporary copy of the Dockerfile that names it stage-0/);
      assert.match(run.stderr, registryCache ? /docker buildx build .*--file \S*drc-dockerfile-/ : /--target stage-0/);
      assert.deepEqual(reportedStage(run, '0').steps, { cached: 0, total: 5 });
      assert.deepEqual((await registryTags(repo)).sort(), registryCache ? ['___0', '_latest', '_main', '_main__0', 'v1'] : ['__0', 'latest', 'main', 'main__0', 'v1']);
      if (registryCache) {
        // Stage 0's dependency part went early, built from a cut of the named copy; that cut is removed too.
        const cuts = [...new Set([...run.stderr.matchAll(/--file (\S*drc-checkpoint-[^/\s]+\/Dockerfile)/g)].map((m) => m[1] ?? ''))];
        assert.equal(cuts.length, 1, run.stderr.slice(-3000));
        assert.ok(!existsSync(cuts[0] ?? ''), `the cut ${cuts[0]} is removed`);
      }
      const copies = copiesUsed(run);
      assert.equal(copies.length, 1, `one copy used: ${copies.join(', ')}`);
      assert.ok(!existsSync(copies[0] ?? ''), `the copy ${copies[0]} is removed at the end`);
      // The copy sends the context docker sends for the user's Dockerfile: BuildKit reads Dockerfile.dockerignore, the classic builder does not.
      execFileSync(cli, ['build', '-q', '--no-cache', '-t', `${repo}:plain`, dir], { env: { ...process.env, ...env }, timeout: 120_000 });
      assert.equal(fileIn(cli, `${repo}:v1`, '/app/sources.txt'), fileIn(cli, `${repo}:plain`, '/app/sources.txt'));
      if (builder === 'BuildKit') assert.equal(fileIn(cli, `${repo}:v1`, '/app/sources.txt'), 'main.txt\n', 'Dockerfile.dockerignore applies to the copy');
    });

    it('a source change on a new branch on a fresh engine reuses the dependency steps of stage 0', async () => {
      appendFileSync(join(dir, 'src', 'main.txt'), 'change 1\n');
      wipeEngine();
      const run = await runHelper([`${repo}:v2`, '--docker', cli, '--branch', 'topic', '--default-branch', 'main'], { cwd: dir, env });
      assert.equal(run.code, 0, explain(run));
      const zero = reportedStage(run, '0');
      assert.deepEqual(zero.steps, { cached: 3, total: 5 }, 'WORKDIR, COPY deps, RUN deps from the cache; the source steps ran');
      // Registry cache: stage 0's own early export, in the same scope as the target's cache.
      assert.equal(zero.cacheUsed?.ref, `${repo}:${registryCache ? '_main__0' : 'main__0'}`);
      execFileSync(cli, ['build', '-q', '--no-cache', '-t', `${repo}:plain`, dir], { env: { ...process.env, ...env }, timeout: 120_000 });
      assert.equal(fileIn(cli, `${repo}:v2`, '/app/app.txt'), fileIn(cli, `${repo}:plain`, '/app/app.txt'), 'the deploy image equals a no-cache build');
      assert.match(fileIn(cli, `${repo}:v2`, '/app/app.txt'), /^lib 1\n(not for the image\n)?v1\nchange 1\n$/);
      assert.ok((await registryTags(repo)).includes(registryCache ? '_topic' : 'topic__0'), 'the branch has its own cache of stage 0');
    });
  });
}
