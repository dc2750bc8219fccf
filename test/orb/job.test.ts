import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { BUILDKIT_CLI, REGISTRY, ROOT, STRATEGY, appCopy, cleanup, ensureTestEnv, registryDigest, registryTags, uniqueRepo } from '../support/env.ts';
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

describe('the packed orb\'s prune-caches job, run as a scheduled pipeline would', { timeout: 300_000 }, () => {
  const repo = uniqueRepo('orb-prune');
  const path = repo.slice(repo.indexOf('/') + 1);
  let checkout: string;

  before(async () => {
    ensureTestEnv();
    // The project: a clone whose origin has main and feature/live; feature/gone was deleted there.
    const root = mkdtempSync(join(tmpdir(), 'drc-orb-prune-'));
    const git = (cwd: string, ...args: string[]): void => void execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd, stdio: 'ignore' });
    git(root, 'init', '-q', '--bare', 'origin.git');
    git(root, 'clone', '-q', join(root, 'origin.git'), 'project');
    checkout = join(root, 'project');
    writeFileSync(join(checkout, 'README'), 'x\n');
    git(checkout, 'add', 'README');
    git(checkout, 'commit', '-q', '-m', 'init');
    git(checkout, 'push', '-q', 'origin', 'HEAD:refs/heads/main', 'HEAD:refs/heads/feature/live');
    // Cache tags of three branches, through the registry API (one manifest each, so each can go alone).
    const base = `http://${REGISTRY}/v2/drc-test/busybox/manifests/2`;
    const manifest = await fetch(base, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    const body = Buffer.from(await manifest.arrayBuffer());
    const type = manifest.headers.get('content-type') ?? '';
    // Blobs are per repository: mount the base's into this one first.
    for (const blob of [(JSON.parse(body.toString()) as { config: { digest: string } }).config.digest, ...(JSON.parse(body.toString()) as { layers: { digest: string }[] }).layers.map((l) => l.digest)]) {
      await fetch(`http://${REGISTRY}/v2/${path}/blobs/uploads/?mount=${blob}&from=drc-test/busybox`, { method: 'POST' });
    }
    const variant = (label: string): Buffer => {
      const parsed = JSON.parse(body.toString()) as Record<string, unknown>;
      return Buffer.from(JSON.stringify({ ...parsed, annotations: { label } }));
    };
    for (const tag of ['main', 'main__deps', 'feature.live', 'feature.live__deps', 'feature.gone', 'feature.gone__deps', 'deploy-1']) {
      const put = await fetch(`http://${REGISTRY}/v2/${path}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': type }, body: new Uint8Array(variant(tag === 'deploy-1' ? 'feature.gone' : tag)) });
      assert.equal(put.status, 201, await put.text());
    }
  });

  const job = (params: Record<string, string | boolean | number>) =>
    runOrbJob({
      orbText: readFileSync(join(ROOT, 'dist', 'orb.yml'), 'utf8'),
      job: 'prune-caches',
      params: { image: repo, registry: '127.0.0.1:5000', ...params },
      checkout,
      dockerCli: BUILDKIT_CLI,
      env: { DOCKER_LOGIN: 'ci-bot', DOCKER_PASSWORD: PASSWORD, CIRCLE_BRANCH: 'main' },
    });

  it('without delete: prints the table, stores the report, removes nothing', async () => {
    const dry = job({});
    assert.ok(dry.ok, explain(dry));
    assert.match(dry.output, /feature\.gone__deps\s+inline\s+branch feature\.gone\s+\S+\s+delete\s+gone/);
    assert.match(dry.output, /feature\.live__deps\s+inline\s+branch feature\.live\s+\S+\s+keep\s+live branch/);
    const stored = JSON.parse(readFileSync(join(dry.artifacts, 'docker-build-remote-cache', 'prune-report.json'), 'utf8')) as { rows: unknown[]; deleted: boolean };
    assert.equal(stored.deleted, false);
    assert.equal(stored.rows.length, 6);
    assert.equal((await registryTags(repo)).length, 7);
  });

  it('with delete: the gone branch\'s tags go, the deploy tag sharing its manifest stays', async () => {
    const deployDigest = await registryDigest(repo, 'deploy-1');
    const run = job({ delete: true });
    assert.ok(run.ok, explain(run));
    assert.deepEqual(await registryTags(repo), ['deploy-1', 'feature.live', 'feature.live__deps', 'main', 'main__deps']);
    assert.equal(await registryDigest(repo, 'deploy-1'), deployDigest);
    assert.ok(!run.output.includes(PASSWORD));
  });
});
