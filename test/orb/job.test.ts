import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { BUILDKIT_CLI, ROOT, STRATEGY, appCopy, cleanup, ensureTestEnv, registryDigest, registryTags, uniqueRepo } from '../support/env.ts';
import { runOrbJob, type JobResult } from './harness.ts';

const PASSWORD = `pw-${Math.random().toString(36).slice(2)}-not-for-logs`;

interface Report {
  stages: { stage: string; cacheUsed: { scope: string } | null; steps: { cached: number; total: number } | null }[];
  deploy: { ref: string; action: string }[];
}

function report(job: JobResult): Report {
  return JSON.parse(readFileSync(join(job.artifacts, 'docker-build-remote-cache', 'docker-build-report.json'), 'utf8')) as Report;
}

function explain(job: JobResult): string {
  return job.output.slice(-4000);
}

describe('the packed orb\'s build-with-cache job, run as CircleCI would', { timeout: 900_000 }, () => {
  let orbText = '';
  const repo = uniqueRepo('orb');
  const app = appCopy();
  before(() => {
    ensureTestEnv();
    // The first run must unpack the helper from the orb, not find an old copy.
    rmSync('/tmp/docker-build-remote-cache', { recursive: true, force: true });
    orbText = readFileSync(join(ROOT, 'dist', 'orb.yml'), 'utf8');
  });

  const job = (env: Record<string, string>, params: Record<string, string | boolean> = {}) =>
    runOrbJob({
      orbText,
      job: 'build-with-cache',
      params: { image: repo, registry: '127.0.0.1:5000', buildkit: 'true', ...params },
      checkout: app,
      dockerCli: BUILDKIT_CLI,
      env: { DOCKER_LOGIN: 'ci-bot', DOCKER_PASSWORD: PASSWORD, CIRCLE_SHA1: 'aaaa1111', ...env },
    });

  it('first run on main: logs in, builds cold, pushes the caches and the deploy tag', () => {
    const first = job({ CIRCLE_BRANCH: 'main', CIRCLE_SHA1: 'aaaa1111' });
    assert.ok(first.ok, explain(first));
    assert.match(first.output, /installed docker-build-remote-cache 1\.\d+\.\d+ at \/tmp\/docker-build-remote-cache\/docker-build-remote-cache\.mjs/);
    assert.match(first.output, /logged in to 127\.0\.0\.1:5000 as ci-bot/);
    assert.ok(!first.output.includes(PASSWORD), 'the password never appears in the output');
    assert.ok(report(first).stages.every((s) => s.steps?.cached === 0));
  });

  it('second run on another branch with a change: served from main\'s cache, pushes its own tags and the deploy tag', async () => {
    const mainCache = STRATEGY === 'inline' ? 'main' : '_main';
    const mainDigest = await registryDigest(repo, mainCache);
    appendFileSync(join(app, 'src', 'main.txt'), 'a change on the branch\n');
    const second = job({ CIRCLE_BRANCH: 'feature/orb', CIRCLE_SHA1: 'bbbb2222' });
    assert.ok(second.ok, explain(second));
    assert.ok(!second.output.includes(PASSWORD), 'the password never appears in the output');
    const stages = new Map(report(second).stages.map((s) => [s.stage, s]));
    assert.equal(stages.get('deps')?.cacheUsed?.scope, 'default');
    const deps = stages.get('deps')?.steps;
    assert.ok(deps && deps.total > 0 && deps.cached === deps.total, `deps cached: ${JSON.stringify(deps)}`);
    assert.match(readFileSync(join(second.artifacts, 'docker-build-remote-cache', 'docker-build-report.md'), 'utf8'), /\| deps \| default main \| (\d+)\/\1 \| - \| ~\d+\.\ds \|/);
    const tags = await registryTags(repo);
    const caches = STRATEGY === 'inline' ? ['main', 'main__deps', 'main__builder', 'feature.orb', 'feature.orb__deps', 'feature.orb__builder', 'latest'] : ['_main', '_feature.orb', '_latest'];
    for (const tag of ['aaaa1111', 'bbbb2222', ...caches]) {
      assert.ok(tags.includes(tag), `${tag} in ${tags.join(', ')}`);
    }
    assert.equal(await registryDigest(repo, mainCache), mainDigest, 'the branch left main\'s cache alone');
  });

  it('a forked pull request without credentials builds read-only and passes', async () => {
    const before = await registryTags(repo);
    const fork = job({ CIRCLE_BRANCH: 'pull/7', CIRCLE_PR_NUMBER: '7', CIRCLE_SHA1: 'cccc3333', DOCKER_LOGIN: '', DOCKER_PASSWORD: '' });
    assert.ok(fork.ok, explain(fork));
    assert.match(fork.output, /forked pull request \(#7\)/);
    assert.deepEqual(await registryTags(repo), before, 'nothing was pushed');
  });

  it('with the registry down, the job still builds read-only', () => {
    const down = runOrbJob({
      orbText,
      job: 'build-with-cache',
      params: { image: '127.0.0.1:5999/down/app', registry: '127.0.0.1:5999', buildkit: 'true' },
      checkout: app,
      dockerCli: BUILDKIT_CLI,
      env: { CIRCLE_BRANCH: 'pull/8', CIRCLE_PR_NUMBER: '8', CIRCLE_SHA1: 'dddd4444' },
    });
    assert.ok(down.ok, explain(down));
    assert.match(down.output, /registry 127\.0\.0\.1:5999 is unreachable/);
    assert.match(down.output, /tagged 127\.0\.0\.1:5999\/down\/app:dddd4444 \(not pushed/);
    cleanup(app);
  });
});
