import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isBlobUpload, isManifestPut, isManifestRead, isWrite, startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { BUILDKIT_CLI, BUNDLE, STRATEGY, cleanup, ensureTestEnv, explain, type HelperRun, imageFiles, REGISTRY, registryDigest, registryTags, runHelper, smallApp, wipeEngine } from '../support/env.ts';

const BUILDKIT = { DOCKER_BUILDKIT: '1' };
const repoPath = (label: string): string => `fault-${label}-${Math.random().toString(16).slice(2, 8)}/app`;

describe('fault matrix on the real engine, through a fault-injecting proxy', { timeout: 900_000 }, () => {
  const proxies: FaultProxy[] = [];
  const dirs: string[] = [];
  before(() => ensureTestEnv());
  after(async () => {
    for (const proxy of proxies) await proxy.close();
    for (const dir of dirs) cleanup(dir);
  });
  const proxy = async (...args: Parameters<typeof startFaultProxy>): Promise<FaultProxy> => {
    const p = await startFaultProxy(...args);
    proxies.push(p);
    return p;
  };
  const app = (opts?: Parameters<typeof smallApp>[0]): string => {
    const dir = smallApp(opts);
    dirs.push(dir);
    return dir;
  };
  const helper = (image: string, cwd: string, extra: string[] = [], opts: { timeoutMs?: number } = {}) =>
    runHelper([image, '--docker', BUILDKIT_CLI, '--branch', 'main', ...extra], { cwd, env: BUILDKIT, ...opts });

  it('registry down for the whole run, --no-push: the build succeeds uncached and a warning names the registry', async () => {
    wipeEngine();
    const run = await helper('127.0.0.1:5998/down/app:x', app(), ['--no-push']);
    assert.equal(run.code, 0, explain(run));
    assert.match(run.stderr, /WARNING: registry 127\.0\.0\.1:5998 is unreachable/);
    assert.ok(run.report?.stages.every((s) => s.status === 'built' && s.cacheUsed === null));
  });

  it('registry down for the whole run, deploy on: the build succeeds, the deploy push fails with exit 7 and says what to check', async () => {
    wipeEngine();
    const run = await helper('127.0.0.1:5998/down/app:x', app());
    assert.equal(run.code, 7, explain(run));
    assert.ok(run.report?.stages.every((s) => s.status === 'built'));
    assert.match(run.stderr, /error: the deploy push of 127\.0\.0\.1:5998\/down\/app:x failed/);
    assert.match(run.stderr, /hint: check that the registry 127\.0\.0\.1:5998 answers/);
    assert.equal(run.report?.outcome, 'deploy-failed');
  });

  it('503 and 429 for the first requests of lookups and pushes: retried with backoff, the run succeeds, the report counts the retries', async () => {
    const p = await proxy([
      { match: isManifestRead, fault: { kind: 'status', status: 503 }, times: 2 },
      { match: isManifestPut, fault: { kind: 'status', status: 429 }, times: 2 },
    ]);
    const path = repoPath('flaky');
    wipeEngine();
    const run = await helper(`${p.address}/${path}:v1`, app());
    assert.equal(run.code, 0, explain(run));
    assert.ok((run.report?.retries ?? 0) >= 2, `retries counted: ${run.report?.retries}`);
    assert.match(run.stderr, /retry 1 of (lookup of|cache push of)/);
    assert.ok((await registryTags(`${REGISTRY}/${path}`)).includes(STRATEGY === 'inline' ? 'main__deps' : '_main'), 'the caches arrived');
    assert.equal(p.log.filter((l) => l.fault === 'status').length, 4, 'all four faults were served');
  });

  it('a connection reset during a layer push: retried, and the push completes', async () => {
    const p = await proxy([{ match: isBlobUpload, fault: { kind: 'reset-after-bytes', bytes: 512 * 1024 }, times: 1 }]);
    const path = repoPath('reset-once');
    wipeEngine();
    const run = await helper(`${p.address}/${path}:v1`, app());
    assert.equal(run.code, 0, explain(run));
    assert.ok(p.log.some((l) => l.fault === 'reset-after-bytes'), 'a reset was injected');
    const tags = await registryTags(`${REGISTRY}/${path}`);
    if (STRATEGY === 'inline') assert.deepEqual(tags, ['__builder', '__deps', 'latest', 'main', 'main__builder', 'main__deps', 'v1']);
    else {
      // The target's cache and the deploy always arrive; an early export the reset hit is left to the target's export.
      for (const tag of ['_latest', '_main', 'v1']) assert.ok(tags.includes(tag), `${tag} in ${tags.join(', ')}`);
      assert.deepEqual(tags.filter((t) => !['_latest', '_main', 'v1', '___builder', '___deps', '_main__builder', '_main__deps'].includes(t)), []);
    }
  });

  it('resets on every large layer upload: the cache pushes warn without repeating themselves, the run goes on to deploy', async () => {
    // Only the 4 MB dependency layer is that large: the deps and builder caches cannot be pushed, the final image can.
    const p = await proxy([{ match: isBlobUpload, fault: { kind: 'reset-after-bytes', bytes: 3 * 1024 * 1024 }, times: Infinity }]);
    const path = repoPath('reset-always');
    wipeEngine();
    const run = await helper(`${p.address}/${path}:v1`, app(), ['--retries', '2', '--timeout', '15']);
    assert.equal(run.code, 0, explain(run));
    assert.match(run.stderr, STRATEGY === 'inline' ? /WARNING: could not push the cache .*main__deps/ : /WARNING: could not export the registry cache .*:_main/);
    assert.equal(run.report?.deploy[0]?.action, 'pushed');
    assert.ok((await registryTags(`${REGISTRY}/${path}`)).includes('v1'), 'the deploy tag arrived');
    // The stage's other tag would send the same layers: not tried. docker push outlasts --timeout 15 here (it retries each
    // layer itself), and a cache push that used its whole timeout is not started over.
    const pushes = Object.fromEntries((run.report?.stages ?? []).map((s) => [s.stage, s.cachePush.map((c) => c.action)]));
    // The registry cache of the target holds the 4 MB layer: its export fails, and the copy to the unprefixed scope is not made.
    assert.deepEqual(pushes, STRATEGY === 'inline' ? { deps: ['failed', 'skipped'], builder: ['failed', 'skipped'], final: ['pushed', 'copied'] } : { deps: [], builder: [], final: ['failed', 'skipped'] }, explain(run));
    assert.doesNotMatch(run.stderr, /retry \d of cache push of/);
  });

  it('401 on push: no retry, a clear message, the remaining cache pushes skipped, the deploy fails loudly', async () => {
    const p = await proxy([{ match: isWrite, fault: { kind: 'status', status: 401, headers: { 'www-authenticate': 'Basic realm="test"' } }, times: Infinity }]);
    const path = repoPath('noauth');
    wipeEngine();
    const run = await helper(`${p.address}/${path}:v1`, app());
    assert.equal(run.code, 7, explain(run));
    assert.match(run.stderr, /refused a push .*no push rights/);
    assert.doesNotMatch(run.stderr, /retry \d of (cache|deploy) push of/);
    assert.match(run.stderr, /error: the deploy push of/);
    const pushes = (run.report?.stages ?? []).flatMap((s) => s.cachePush);
    assert.ok(pushes.some((c) => c.action === 'skipped'), JSON.stringify(pushes));
    assert.match(run.stderr, /error: the deploy push of .*:v1 failed/);
  });

  it('a stalled registry is bounded by --timeout: the run does not hang', async () => {
    const p = await proxy([{ match: () => true, fault: { kind: 'stall' }, times: Infinity }]);
    wipeEngine();
    const started = Date.now();
    const run = await helper(`${p.address}/${repoPath('stall')}:v1`, app(), ['--no-push', '--timeout', '4', '--retries', '2'], { timeoutMs: 150_000 });
    assert.equal(run.code, 0, explain(run));
    assert.match(run.stderr, /is unreachable|timed out/);
    assert.ok(Date.now() - started < 120_000, `finished in ${(Date.now() - started) / 1000}s`);
  });

  it('SIGTERM while the final stage builds: finished stages\' caches are pushed, then exit 143', async () => {
    const dir = app();
    writeFileSync(join(dir, 'Dockerfile'), `ARG BASE_IMAGE=${REGISTRY}/drc-test/busybox:2\nFROM \${BASE_IMAGE} AS deps\nRUN echo deps > /d\nFROM deps AS builder\nRUN echo builder > /b\nFROM \${BASE_IMAGE} AS final\nCOPY --from=builder /b /b\nRUN sleep 60\n`);
    const repo = `${REGISTRY}/${repoPath('sigterm')}`;
    wipeEngine();
    const started = Date.now();
    const run = await runHelper([`${repo}:v1`, '--docker', BUILDKIT_CLI, '--branch', 'main'], { cwd: dir, env: BUILDKIT, killWhenOutput: /\[final \d\/\d\] RUN sleep 60/ });
    assert.equal(run.code, 143, explain(run));
    assert.ok(Date.now() - started < 50_000, 'stopped well before the 60 s step would end');
    assert.match(run.stderr, /SIGTERM received/);
    const tags = await registryTags(repo);
    if (STRATEGY === 'inline') assert.deepEqual(tags, ['__builder', '__deps', 'main__builder', 'main__deps'], explain(run));
    else {
      // builder's cache holds deps' steps too (mode=max); deps' own tags exist when its early export ended before the signal (SIGTERM cancels one still running).
      for (const tag of ['___builder', '_main__builder']) assert.ok(tags.includes(tag), `${tag} in ${tags.join(', ')}\n${explain(run)}`);
      assert.deepEqual(tags.filter((t) => !['___builder', '_main__builder', '___deps', '_main__deps'].includes(t)), [], tags.join(', '));
    }
    assert.equal(run.report?.outcome, 'interrupted');
  });

  it('two runs of the same branch at once on one engine: no clobbered local tags, both succeed, the cache is complete', async () => {
    const repo = `${REGISTRY}/${repoPath('concurrent')}`;
    const a = app();
    const b = app();
    writeFileSync(join(a, 'src', 'main.txt'), 'from run A\n');
    writeFileSync(join(b, 'src', 'main.txt'), 'from run B\n');
    wipeEngine();
    const [runA, runB] = await Promise.all([helper(`${repo}:a`, a), helper(`${repo}:b`, b)]);
    assert.equal(runA.code, 0, explain(runA));
    assert.equal(runB.code, 0, explain(runB));
    const filesA = imageFiles(`${repo}:a`);
    const filesB = imageFiles(`${repo}:b`);
    // Each its own, not merely different: a shared context copy in BuildKit once gave each run the other's sources.
    const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
    assert.equal(filesA.get('app/app.txt'), sha('from run A\n'), 'deploy image a holds run A\'s sources');
    assert.equal(filesB.get('app/app.txt'), sha('from run B\n'), 'deploy image b holds run B\'s sources');
    for (const tag of STRATEGY === 'inline' ? ['main', 'main__builder', 'main__deps', 'latest', '__builder', '__deps'] : ['_main', '_latest']) {
      assert.ok(await registryDigest(repo, tag), `${tag} is a complete image (or registry cache) in the registry`);
    }
  });

  it('resolution time does not grow with 1,000 other branch tags in the repository', async () => {
    const path = repoPath('manytags');
    const repo = `${REGISTRY}/${path}`;
    const dir = app();
    wipeEngine();
    const seed = await helper(`${repo}:seed`, dir);
    assert.equal(seed.code, 0, explain(seed));
    const manifest = await fetch(`http://${REGISTRY}/v2/${path}/manifests/${STRATEGY === 'inline' ? 'main' : '_main'}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json' } });
    const body = Buffer.from(await manifest.arrayBuffer());
    const type = manifest.headers.get('content-type') ?? '';
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => fetch(`http://${REGISTRY}/v2/${path}/manifests/branch-${i + j}__deps`, { method: 'PUT', headers: { 'content-type': type }, body })));
    }
    assert.ok((await registryTags(repo)).length > 1000);
    const resolveSeconds = (run: HelperRun): number => (run.report as unknown as { phases: { name: string; seconds: number }[] }).phases.find((p) => p.name === 'resolve caches')?.seconds ?? Infinity;
    wipeEngine();
    const run = await helper(`${repo}:after`, dir, ['--branch', 'feature/y']);
    assert.equal(run.code, 0, explain(run));
    assert.ok(resolveSeconds(run) < Math.max(1, resolveSeconds(seed) * 3), `resolve took ${resolveSeconds(run)}s with 1,000 tags, ${resolveSeconds(seed)}s without`);
  });
});

void spawn;
void BUNDLE;
