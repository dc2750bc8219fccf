import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatRef, parseImageRef } from '../../src/plan/image-ref.ts';
import { buildInvocation, type CacheCandidate, dryRunCommands, makePlan, type PlanInput, type PlannedStage } from '../../src/plan/plan.ts';

const STAGES = [
  { key: 'deps', named: true, deps: [], isLast: false },
  { key: 'builder', named: true, deps: ['deps'], isLast: false },
  { key: 'final', named: true, deps: ['builder'], isLast: true },
];

function input(overrides: Partial<PlanInput> = {}): PlanInput {
  const image = parseImageRef('localhost:5000/team/app:abc123');
  return {
    image,
    extraTags: [],
    cacheRepo: { domain: image.domain, path: image.path },
    stages: STAGES,
    branch: 'main',
    defaultBranches: ['main', 'master'],
    updateSharedCache: undefined,
    push: true,
    pushCache: true,
    builder: 'buildkit',
    runId: 'r1',
    passthrough: ['--build-arg', 'A=1', '--secret', 'id=x,src=y'],
    context: '.',
    ...overrides,
  };
}

const tags = (candidates: readonly CacheCandidate[]) => candidates.map((c) => c.ref.tag);

describe('makePlan', () => {
  it('on a default branch: reads branch, the other default, unprefixed; writes the branch and unprefixed tags', () => {
    const plan = makePlan(input());
    const builder = plan.stages[1];
    assert.deepEqual(tags(builder?.candidates ?? []), ['main__builder', 'master__builder', '__builder']);
    assert.deepEqual(tags(builder?.writes ?? []), ['main__builder', '__builder']);
    assert.deepEqual(tags(plan.stages[2]?.candidates ?? []), ['main', 'master', 'latest']);
  });

  it('on a feature branch: falls back to each default branch in order, then unprefixed; writes only its own tags', () => {
    const plan = makePlan(input({ branch: 'feature/login' }));
    assert.deepEqual(tags(plan.stages[0]?.candidates ?? []), ['feature.login__deps', 'main__deps', 'master__deps', '__deps']);
    assert.deepEqual(tags(plan.stages[0]?.writes ?? []), ['feature.login__deps']);
    assert.match(plan.notes.join('\n'), /not a default branch/);
  });

  it('writes the unprefixed tags from a feature branch only when asked', () => {
    const plan = makePlan(input({ branch: 'feature/login', updateSharedCache: true }));
    assert.deepEqual(tags(plan.stages[2]?.writes ?? []), ['feature.login', 'latest']);
  });

  it('with no branch (a tag build) reads the default branches and writes nothing', () => {
    const plan = makePlan(input({ branch: undefined }));
    assert.deepEqual(tags(plan.stages[2]?.candidates ?? []), ['main', 'master', 'latest']);
    assert.deepEqual(tags(plan.stages[2]?.writes ?? []), []);
  });

  it('with --no-push-cache writes no cache tag at all', () => {
    const plan = makePlan(input({ pushCache: false }));
    assert.ok(plan.stages.every((s) => s.writes.length === 0));
  });

  it('puts cache tags in --cache-repo and deploys to IMAGE plus extra tags', () => {
    const plan = makePlan(input({ cacheRepo: { domain: 'localhost:5000', path: 'team/app-cache' }, extraTags: [parseImageRef('localhost:5000/team/app:v1')] }));
    assert.equal(formatRef(plan.stages[0]?.candidates[0]?.ref ?? parseImageRef('x')), 'localhost:5000/team/app-cache:main__deps');
    assert.deepEqual(plan.deploy.map(formatRef), ['localhost:5000/team/app:abc123', 'localhost:5000/team/app:v1']);
  });

  it('gives every run its own local tags', () => {
    const a = makePlan(input({ runId: 'aaa' }));
    const b = makePlan(input({ runId: 'bbb' }));
    assert.notEqual(formatRef(a.stages[0]?.localRef ?? parseImageRef('x')), formatRef(b.stages[0]?.localRef ?? parseImageRef('x')));
  });

  it('does not cache an unnamed intermediate stage on its own, and says so', () => {
    const plan = makePlan(input({ stages: [{ key: '0', named: false, deps: [], isLast: false }, { key: 'final', named: true, deps: ['0'], isLast: true }] }));
    assert.deepEqual(plan.stages.map((s) => s.key), ['final']);
    assert.match(plan.notes.join('\n'), /stage 0 has no name/);
  });

  it('builds an unnamed stage alone by the name given in the copy of the Dockerfile, keeps its key for tags, and says so', () => {
    const plan = makePlan(input({ stages: [{ key: '0', named: false, targetName: 'stage-0', deps: [], isLast: false }, { key: 'final', named: true, deps: ['0'], isLast: true }] }));
    assert.deepEqual(plan.stages.map((s) => [s.key, s.targetArg]), [['0', 'stage-0'], ['final', 'final']]);
    assert.match(plan.notes.join('\n'), /stage 0 has no name: the builds use a temporary copy of the Dockerfile that names it stage-0/);
    assert.ok(plan.stages[0]?.writes.every((w) => formatRef(w.ref).endsWith('__0')), 'cache tags use the key');
    assert.deepEqual(buildInvocation(plan, plan.stages[0] as PlannedStage, new Map(), new Set()).args.slice(0, 3), ['build', '--target', 'stage-0']);
  });

  it('knows which planned stages lie down each stage\'s FROM chain (their layers are in its image), through unnamed ones', () => {
    const plan = makePlan(
      input({
        stages: [
          { key: 'deps', named: true, deps: [], baseStage: null, isLast: false },
          { key: '1', named: false, deps: ['deps'], baseStage: 'deps', isLast: false },
          { key: 'builder', named: true, deps: ['1'], baseStage: '1', isLast: false },
          { key: 'assets', named: true, deps: [], baseStage: null, isLast: false },
          { key: 'final', named: true, deps: ['builder', 'assets'], baseStage: null, isLast: true },
        ],
      }),
    );
    assert.deepEqual(Object.fromEntries(plan.stages.map((s) => [s.key, s.layersFrom])), { deps: [], builder: ['deps'], assets: [], final: [] });
    // --stages gives no FROM chain: unknown, so a push waits for every stage needed.
    assert.equal(makePlan(input()).stages[1]?.layersFrom, undefined);
  });
});

describe('buildInvocation', () => {
  const plan = makePlan(input({ branch: 'feature/x' }));
  const [deps, builder, final] = plan.stages;
  if (!deps || !builder || !final) throw new Error('plan has three stages');
  // Stages resolve independently: the branch has a builder cache, but no final image cache.
  const resolved = new Map<string, CacheCandidate[]>([
    ['deps', deps.candidates.slice(1, 2)],
    ['builder', builder.candidates.slice(0, 2)],
    ['final', final.candidates.slice(1, 2)],
  ]);

  it('BuildKit: --target, run and kept tags, every cache found for the stage and its dependencies, inline cache, user args, context last', () => {
    const { args, env } = buildInvocation(plan, final, resolved, new Set(['deps', 'builder']));
    assert.deepEqual(args, [
      'build', '--target', 'final', '--tag', 'drc.local/team/app:run-r1__final', '--tag', 'drc.local/team/app:last__final',
      '--cache-from', 'localhost:5000/team/app:main',
      '--cache-from', 'localhost:5000/team/app:main__deps',
      '--cache-from', 'localhost:5000/team/app:feature.x__builder',
      '--cache-from', 'localhost:5000/team/app:main__builder',
      '--build-arg', 'BUILDKIT_INLINE_CACHE=1',
      '--build-arg', 'A=1', '--secret', 'id=x,src=y', '.',
    ]);
    assert.deepEqual(env, { DOCKER_BUILDKIT: '1', BUILDKIT_PROGRESS: 'plain' });
  });

  it('classic: also lists the stages this run built, since the classic builder uses only --cache-from images', () => {
    const classic = makePlan(input({ branch: 'feature/x', builder: 'classic' }));
    const stage = classic.stages[1];
    if (!stage) throw new Error('builder stage');
    const { args, env } = buildInvocation(classic, stage, new Map(), new Set(['deps']));
    assert.deepEqual(args.filter((_, i) => args[i - 1] === '--cache-from'), ['drc.local/team/app:run-r1__deps']);
    assert.ok(!args.includes('BUILDKIT_INLINE_CACHE=1'));
    assert.deepEqual(env, { DOCKER_BUILDKIT: '0' });
  });

  it('builds a stage with no cache found without any --cache-from', () => {
    const { args } = buildInvocation(plan, deps, new Map(), new Set());
    assert.ok(!args.includes('--cache-from'));
  });

  it('exports a stage the target build ran from local hits only: no --cache-from, inline cache kept, user args kept', () => {
    const { args } = buildInvocation(plan, builder, resolved, new Set(['final']), true);
    assert.deepEqual(args, ['build', '--target', 'builder', '--tag', 'drc.local/team/app:run-r1__builder', '--tag', 'drc.local/team/app:last__builder', '--build-arg', 'BUILDKIT_INLINE_CACHE=1', '--build-arg', 'A=1', '--secret', 'id=x,src=y', '.']);
  });
});

describe('dryRunCommands', () => {
  it('BuildKit: the target build with every cache first, then an export and cache push per other stage, then deploy', () => {
    const plan = makePlan(input({ branch: 'feature/x' }));
    const titles = dryRunCommands(plan).map((p) => p.title);
    assert.match(titles[1] ?? '', /^build final \(target\) with every cache/);
    assert.deepEqual(titles.slice(2), [
      'if a step of stage deps ran: export it (every step a local hit), then push its cache',
      'if a step of stage builder ran: export it (every step a local hit), then push its cache',
      'push the cache of final (target)',
      'deploy',
    ]);
  });

  it('inline on buildx (Docker 26+ classic store): the target build has no inline cache; a local-hit build with it follows, before the target\'s cache push', () => {
    const plan = makePlan(input({ branch: 'feature/x', deferTargetInlineCache: true }));
    const phases = dryRunCommands(plan);
    const targetBuild = phases[1]?.invocations[0]?.args ?? [];
    assert.ok(targetBuild.includes('--cache-from'), 'the target build uses the caches');
    assert.ok(!targetBuild.includes('BUILDKIT_INLINE_CACHE=1'), 'and writes no inline cache');
    const index = phases.findIndex((p) => p.title.startsWith('if the image of final has the layers of no cache found'));
    assert.equal(phases[index + 1]?.title, 'push the cache of final (target)');
    const rebuild = phases[index]?.invocations[0]?.args ?? [];
    assert.ok(rebuild.includes('BUILDKIT_INLINE_CACHE=1') && !rebuild.includes('--cache-from'), rebuild.join(' '));
  });

  it('registry cache: a stage with a dependency part is exported early, from a cut Dockerfile, to its own tag', () => {
    const checkpoint = { text: 'FROM x AS deps\nRUN a\n', step: 2, totalSteps: 4, cutLine: 3 };
    const stages = STAGES.map((s) => (s.key === 'deps' ? { ...s, checkpoint, buildkitSteps: 4 } : { ...s, buildkitSteps: 3 }));
    const plan = makePlan(input({ strategy: 'registry-cache', stages }));
    const early = dryRunCommands(plan).filter((p) => p.title.startsWith('while it builds'));
    // builder is read only by the target: its layers go with the target's export.
    assert.deepEqual(early.map((p) => p.title), ["while it builds, once a dependency step of deps has run: export that part (steps up to 2/4) to the stage's cache tag"]);
    const cut = early[0]?.invocations[0]?.args ?? [];
    assert.deepEqual(cut.slice(cut.indexOf('--file'), cut.indexOf('--file') + 2), ['--file', "<the Dockerfile cut before the stage's sources>"]);
    assert.ok(cut.includes('type=registry,ref=localhost:5000/team/app:_main__deps,mode=max,ignore-error=true,compression=zstd'), cut.join(' '));
    // Without its dependency shape, deps goes whole once it has finished: builder still builds on it.
    const whole = dryRunCommands(makePlan(input({ strategy: 'registry-cache', stages: STAGES.map((st) => ({ ...st, buildkitSteps: 3 })) }))).filter((p) => p.title.startsWith('while it builds'));
    assert.deepEqual(whole.map((p) => p.title), ["while it builds, once deps has finished and a step of it ran: export it to the stage's cache tag (the stages built on it still build)"]);
    assert.ok(!(whole[0]?.invocations[0]?.args ?? []).includes('--file'), 'a whole stage is built from the user\'s Dockerfile');
    assert.equal(dryRunCommands(makePlan(input({ strategy: 'registry-cache', stages, pushCache: false }))).filter((p) => p.title.startsWith('while it builds')).length, 0, 'nothing early without cache pushes');
  });

  it('registry cache: the cache export names the chosen compression', () => {
    for (const compression of ['zstd', 'gzip', 'uncompressed'] as const) {
      const plan = makePlan(input({ strategy: 'registry-cache', cacheCompression: compression }));
      const exportArgs = dryRunCommands(plan)[2]?.invocations[0]?.args ?? [];
      assert.ok(exportArgs.includes(`type=registry,ref=localhost:5000/team/app:_main,mode=max,ignore-error=true,compression=${compression}`), exportArgs.join(' '));
    }
  });

  it('classic: stage by stage, after pulling the caches', () => {
    const plan = makePlan(input({ branch: 'feature/x', builder: 'classic' }));
    assert.deepEqual(dryRunCommands(plan).map((p) => p.title.split(' (')[0]?.split(',')[0]), ['resolve', 'pull the caches found', 'build stage deps', 'build stage builder', 'build stage final', 'deploy']);
  });
});
