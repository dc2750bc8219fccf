import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUILDKIT_CLI, ENGINE, type HelperRun, cleanup, ensureTestEnv, explain, registryDigest, runHelper, smallApp, uniqueRepo, wipeEngine } from '../support/env.ts';

/**
 * Docker 26's docker driver on the classic store failed to write the inline cache of a
 * no-change build from several cache images ("failed to find blob ... in layers": 7 of 8
 * runs of examples/app). The helper builds the target there without inline cache and
 * writes it afterwards from local hits only (per-stage.ts deferredInlineCache).
 */
/** The report's phase names (the test support's Report type leaves phases out). */
const phaseNames = (run: HelperRun): string[] => ((run.report as unknown as { phases?: { name: string }[] } | undefined)?.phases ?? []).map((p) => p.name);

describe('classic store on a modern engine: inline cache without the blob fault', { skip: ENGINE !== 'modern-classic', timeout: 600_000 }, () => {
  const repo = uniqueRepo('inline-fault');
  const app = smallApp();
  const helper = (tag: string) => runHelper([`${repo}:${tag}`, '--docker', BUILDKIT_CLI, '--branch', 'main'], { cwd: app, env: { DOCKER_BUILDKIT: '1' } });
  before(() => ensureTestEnv());
  after(() => cleanup(app));

  it('no-change runs on fresh engines: no fault, no inline cache written from the cache images, the caches kept', async () => {
    wipeEngine();
    const cold = await helper('cold');
    assert.equal(cold.code, 0, explain(cold));
    const kept = await registryDigest(repo, 'main');
    for (let i = 0; i < 4; i++) {
      wipeEngine();
      const run = await helper(`same-${i}`);
      const all = `${run.stdout}\n${run.stderr}`;
      assert.equal(run.code, 0, explain(run));
      assert.doesNotMatch(all, /failed to find blob|could not write the inline cache/, `run ${i}`);
      assert.match(all, /final: the image has the layers of \S+:main; its cache is current/, `run ${i}`);
      assert.ok(!phaseNames(run).some((name) => name.startsWith('export final')), `run ${i} built the target once: ${phaseNames(run).join(', ')}`);
      for (const stage of run.report?.stages ?? []) {
        assert.equal(stage.steps?.cached, stage.steps?.total, `run ${i} ${stage.stage}: ${JSON.stringify(stage.steps)}`);
        assert.ok(stage.cachePush.every((p) => p.action === 'unchanged'), `run ${i} ${stage.stage}: ${JSON.stringify(stage.cachePush)}`);
      }
      assert.equal(await registryDigest(repo, 'main'), kept, 'the target cache tag kept its digest');
    }
  });

  it('a source change: the target is built again from local hits with inline cache, and that cache serves the next run', async () => {
    appendFileSync(join(app, 'src', 'main.txt'), 'changed\n');
    wipeEngine();
    const changed = await helper('changed');
    assert.equal(changed.code, 0, explain(changed));
    assert.ok(phaseNames(changed).includes('export final (target) with its inline cache'), phaseNames(changed).join(', '));
    const final = changed.report?.stages.find((s) => s.stage === 'final');
    assert.equal(final?.cachePush[0]?.action, 'pushed', JSON.stringify(final?.cachePush));
    wipeEngine();
    const next = await helper('after-change');
    assert.equal(next.code, 0, explain(next));
    for (const stage of next.report?.stages ?? []) assert.equal(stage.steps?.cached, stage.steps?.total, `${stage.stage} cached from the re-exported caches: ${JSON.stringify(stage.steps)}`);
  });
});
