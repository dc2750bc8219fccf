import assert from 'node:assert/strict';
import { appendFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUILDKIT_CLI, CLASSIC_CLI, cleanup, ensureTestEnv, explain, type HelperRun, REGISTRY_LOG, registryTraffic, runHelper, smallApp, uniqueRepo, wipeEngine, STRATEGY } from '../support/env.ts';

/** The run's MB per phase from its JSON report. */
function phases(run: HelperRun): { name: string; mbPulled: number | null; mbPushed: number | null }[] {
  return (run.report as unknown as { phases: { name: string; mbPulled: number | null; mbPushed: number | null }[] }).phases;
}

const sum = (run: HelperRun, key: 'mbPulled' | 'mbPushed'): number => phases(run).reduce((total, p) => total + (p[key] ?? 0), 0);

/** Within 2% or 0.1 MB (configs and manifests the report does not count as layers). */
function near(reported: number, measured: number, what: string): void {
  assert.ok(Math.abs(reported - measured) <= Math.max(0.1, 0.02 * measured), `${what}: report says ${reported.toFixed(3)} MB, the registry log ${measured.toFixed(3)} MB`);
}

const NOT_THE_HELPER = /^(?!node)/;

const BUILDERS = [
  { name: 'buildkit', cli: BUILDKIT_CLI, env: { DOCKER_BUILDKIT: '1' }, pullPhase: STRATEGY === 'inline' ? 'build final (target) with every cache' : 'build final (target) with the registry cache, deploy push' },
  { name: 'classic', cli: CLASSIC_CLI, env: { DOCKER_BUILDKIT: '0' }, pullPhase: 'pull caches' },
];

// The summary's MB pulled and pushed per phase, checked against what the registry itself logged for the run.
for (const builder of BUILDERS) {
  describe(`MB pulled and pushed per phase, ${builder.name} builder, against the registry's log`, { timeout: 300_000 }, () => {
    const app = smallApp({ depsMb: 3 });
    const repo = uniqueRepo(`traffic-${builder.name}`);
    const helper = async (tag: string, branch: string): Promise<{ run: HelperRun; pulled: number; pushed: number; enginePulled: number }> => {
      wipeEngine();
      const offset = statSync(REGISTRY_LOG).size;
      const run = await runHelper([`${repo}:${tag}`, '--docker', builder.cli, '--branch', branch], { cwd: app, env: builder.env });
      assert.equal(run.code, 0, explain(run));
      // The registry writes its log line after answering.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const all = registryTraffic(offset);
      return { run, pulled: all.pulled / 1e6, pushed: all.pushed / 1e6, enginePulled: registryTraffic(offset, NOT_THE_HELPER).pulled / 1e6 };
    };

    before(() => ensureTestEnv());
    after(() => cleanup(app));

    it('cold: every byte pushed is in the report (cache layers, early uploads, deploy), nothing pulled but the base', async () => {
      const { run, pushed, enginePulled } = await helper('v1', 'main');
      assert.ok(pushed > 3, `the registry received the 3 MB dependency layer (${pushed} MB)`);
      near(sum(run, 'mbPushed'), pushed, 'MB pushed');
      near(sum(run, 'mbPulled'), enginePulled, 'MB pulled');
      assert.match(run.stdout + run.stderr, /registry traffic: [\d.]+ MB pulled, [\d.]+ MB pushed/);
    });

    it('no change on a fresh engine: the report pulls what the registry served the engine', async () => {
      const { run, enginePulled } = await helper('v1b', 'main');
      // BuildKit uses the caches from the registry without their layers; the classic builder pulls the cache images.
      // On the containerd store the engine unpacks the deploy image, so it fetches the base layers (1.06 MB) the final stage starts from.
      if (builder.name === 'buildkit') assert.ok(enginePulled < (STRATEGY === 'inline' ? 0.1 : 2), `no cache layer was pulled (${enginePulled} MB)`);
      else assert.ok(enginePulled > 3, `the cache images were pulled (${enginePulled} MB)`);
      near(sum(run, 'mbPulled'), enginePulled, 'MB pulled');
    });

    it('a source change on a branch: the cache layers the engine pulled are in the phase that pulled them', async () => {
      appendFileSync(join(app, 'src', 'main.txt'), 'changed\n');
      const { run, pulled, enginePulled } = await helper('v2', 'topic');
      assert.ok(enginePulled > 3, `the engine pulled the 3 MB dependency layer (${enginePulled} MB)`);
      const phase = phases(run).find((p) => p.name.startsWith(builder.pullPhase));
      assert.ok(phase && phase.mbPulled !== null && phase.mbPulled > 3, JSON.stringify(phases(run)));
      near(sum(run, 'mbPulled'), enginePulled, 'MB pulled');
      assert.ok(pulled >= enginePulled, 'the helper\'s own reads (configs) are on top');
    });
  });
}
