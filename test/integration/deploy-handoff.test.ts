import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { BUILDKIT_CLI, cleanup, ensureTestEnv, explain, REGISTRY, registryDigest, registryTags, reportedStage, runHelper, smallApp, uniqueRepo, wipeEngine, INLINE_ONLY } from '../support/env.ts';

/** The manifest of a tag in the loopback registry. */
async function manifest(repo: string, tag: string): Promise<{ config: { digest: string }; layers: { digest: string }[] }> {
  const response = await fetch(`http://${REGISTRY}/v2/${repo.slice(REGISTRY.length + 1)}/manifests/${tag}`, {
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
  });
  assert.equal(response.status, 200, `${repo}:${tag} is in the registry`);
  return (await response.json()) as { config: { digest: string }; layers: { digest: string }[] };
}

// The target's cache tags hold the deploy image: they are written from the deploy push, after it, not by a second docker push beside it.
describe('the target stage cache and the deploy push (BuildKit, real engine and registry)', { timeout: 300_000, skip: INLINE_ONLY }, () => {
  const app = smallApp({ depsMb: 1 });
  /** A cold run on main, deploying `repo:TAG` for a new repository; the run and its target stage's report. */
  const coldRun = async (label: string, tag: string) => {
    const repo = uniqueRepo(label);
    wipeEngine();
    const run = await runHelper([`${repo}:${tag}`, '--docker', BUILDKIT_CLI, '--branch', 'main'], { cwd: app, env: { DOCKER_BUILDKIT: '1' } });
    assert.equal(run.code, 0, explain(run));
    return { repo, run, final: reportedStage(run, 'final') };
  };

  before(() => ensureTestEnv());
  after(() => cleanup(app));

  it('a cold run copies the deploy tag into the target cache tags (same layers, no second push of them)', async () => {
    const { repo, run, final } = await coldRun('handoff', 'v1');
    const main = final.cachePush.find((p) => p.ref === `${repo}:main`);
    assert.equal(main?.action, 'pushed', JSON.stringify(final.cachePush));
    assert.equal(main?.message, `manifest copy of the deploy push ${repo}:v1`);
    assert.equal(final.cachePush.find((p) => p.ref === `${repo}:latest`)?.action, 'copied', JSON.stringify(final.cachePush));
    assert.deepEqual(await registryTags(repo), ['__builder', '__deps', 'latest', 'main', 'main__builder', 'main__deps', 'v1']);
    const [deployed, cached] = await Promise.all([manifest(repo, 'v1'), manifest(repo, 'main')]);
    assert.deepEqual(cached.layers, deployed.layers, 'the cache tag holds the deploy image\'s layers');
    // Only the deploy push sent the final image's new layer: the registry got one upload of it.
    assert.equal(run.report?.retries, 0, explain(run));
    assert.match(run.stdout + run.stderr, /cache .*:main: pushed \(manifest copy of the deploy push/);
  });

  it('a deploy tag that is also a cache tag (IMAGE:latest on the default branch) is left as the deploy push wrote it', async () => {
    const { repo, run, final } = await coldRun('handoff-latest', 'latest');
    const latest = final.cachePush.find((p) => p.ref === `${repo}:latest`);
    assert.deepEqual(latest, { ref: `${repo}:latest`, action: 'deployed', message: 'a deploy tag: the deploy push writes it' });
    // The deploy push sends the engine's config unchanged: the tag's config digest is the local image's ID.
    const imageId = execFileSync(BUILDKIT_CLI, ['image', 'inspect', '--format', '{{.Id}}', `${repo}:latest`], { encoding: 'utf8' }).trim();
    assert.equal((await manifest(repo, 'latest')).config.digest, imageId);
    assert.ok(await registryDigest(repo, 'main'), 'the branch cache tag is written');
    assert.equal(run.report?.deploy[0]?.action, 'pushed');
  });
});
