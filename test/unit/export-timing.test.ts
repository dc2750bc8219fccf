import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { digestParts } from '../../src/context-digest.ts';
import { parseDockerfile } from '../../src/dockerfile/dockerfile.ts';
import { partInputs } from '../../src/dockerfile/inputs.ts';
import { formatRef, type ImageRef, parseImageRef } from '../../src/plan/image-ref.ts';
import { dryRunCommands, makePlan, type PlanInput, registryBuildInvocation } from '../../src/plan/plan.ts';
import { BUILD_INPUTS, partKey, targetExportTiming } from '../../src/strategies/export-timing.ts';
import { cacheSources } from '../../src/strategies/registry-cache.ts';

const DOCKERFILE = [
  'ARG BASE=busybox',
  'FROM ${BASE} AS builder',
  'WORKDIR /build',
  'COPY deps.txt ./',
  'RUN install deps.txt',
  'COPY src/ ./src/',
  'RUN build src',
  'FROM ${BASE} AS final',
  'COPY --from=builder /out /app',
  'COPY ["run.sh", "/app/"]',
  '',
].join('\n');

describe('partInputs', () => {
  const dockerfile = parseDockerfile(DOCKERFILE);
  it("a stage's dependency part: the global ARGs and its lines before the cut, the context paths they copy", () => {
    const part = partInputs(DOCKERFILE, dockerfile, 0, 6);
    assert.deepEqual(part?.sources, ['deps.txt']);
    assert.equal(part?.text, 'ARG BASE=busybox\nFROM ${BASE} AS builder\nWORKDIR /build\nCOPY deps.txt ./\nRUN install deps.txt');
  });
  it('the whole build: every stage the target needs; COPY --from reads no context, the JSON form does', () => {
    assert.deepEqual(partInputs(DOCKERFILE, dockerfile, 1)?.sources, ['deps.txt', 'src/', 'run.sh']);
  });
  it('unknown when the text cannot tell what is read', () => {
    const unknown = ['COPY $DIR /x', 'ADD https://example.com/a.tgz /x', 'RUN --mount=target=/src make', 'RUN --mount=type=bind,source=.,target=/src make', 'ONBUILD RUN x'];
    for (const line of unknown) {
      const text = `FROM busybox\n${line}\n`;
      assert.equal(partInputs(text, parseDockerfile(text), 0), undefined, line);
    }
    const known = 'FROM busybox AS tools\nFROM busybox\nRUN --mount=type=cache,target=/root/.cache make\nRUN --mount=type=bind,from=tools,target=/b ls\nCOPY <<EOF /x\nhello\nEOF\n';
    assert.deepEqual(partInputs(known, parseDockerfile(known), 1)?.sources, []);
  });
});

describe('digestParts', () => {
  const context = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'drc-digest-'));
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'deps.txt'), 'lib 1\n');
    writeFileSync(join(dir, 'src', 'main.txt'), 'hello\n');
    writeFileSync(join(dir, 'src', 'notes.log'), 'ignored\n');
    writeFileSync(join(dir, '.dockerignore'), '# comment\n**/*.log\n');
    return dir;
  };
  const parts = new Map([
    ['deps', { text: 'COPY deps.txt ./', sources: ['deps.txt'] }],
    ['src', { text: 'COPY src/ ./src/', sources: ['./src/'] }],
    ['glob', { text: 'COPY *.txt ./', sources: ['*.txt'] }],
    ['none', undefined],
  ]);
  const digest = (dir: string, options: string[] = []) => digestParts(dir, join(dir, '.dockerignore'), parts, options);

  it('changes with the files a part copies and only with them; .dockerignore applied; not with times', async () => {
    const dir = context();
    const before = await digest(dir);
    assert.match(before.get('deps') ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.equal(before.get('none'), undefined);
    assert.deepEqual(await digest(dir), before, 'same files, same digests');
    writeFileSync(join(dir, 'src', 'notes.log'), 'still ignored\n');
    assert.deepEqual(await digest(dir), before, 'an ignored file changes nothing');
    writeFileSync(join(dir, 'src', 'main.txt'), 'hello again\n');
    const afterSource = await digest(dir);
    assert.equal(afterSource.get('deps'), before.get('deps'));
    assert.notEqual(afterSource.get('src'), before.get('src'));
    chmodSync(join(dir, 'deps.txt'), 0o755);
    const afterMode = await digest(dir);
    assert.notEqual(afterMode.get('deps'), before.get('deps'), 'the mode is part of what COPY copies');
    assert.notEqual(afterMode.get('glob'), afterSource.get('glob'), 'a pattern reads the files it matches');
    assert.notEqual((await digest(dir, ['--target', 'x'])).get('deps'), afterMode.get('deps'), 'the options are part of it');
  });
  it('no digest for a missing source or over the budget', async () => {
    const dir = context();
    const missing = await digestParts(dir, undefined, new Map([['m', { text: '', sources: ['nope.txt'] }]]), []);
    assert.equal(missing.get('m'), undefined);
    const big = await digestParts(dir, undefined, new Map([['b', { text: '', sources: ['.'] }]]), [], { maxBytes: 4, maxFiles: 100 });
    assert.equal(big.get('b'), undefined);
  });
});

function plan(overrides: Partial<PlanInput> = {}) {
  const image = parseImageRef('localhost:5000/team/app:abc123');
  const checkpoint = { text: 'FROM x AS builder\nRUN a\n', step: 3, totalSteps: 5, cutLine: 6 };
  return makePlan({
    image,
    extraTags: [],
    cacheRepo: { domain: image.domain, path: image.path },
    stages: [
      { key: 'builder', named: true, deps: [], isLast: false, checkpoint, buildkitSteps: 5 },
      { key: 'final', named: true, deps: ['builder'], isLast: true, buildkitSteps: 2 },
    ],
    branch: 'feature',
    defaultBranches: ['main'],
    updateSharedCache: undefined,
    push: true,
    pushCache: true,
    builder: 'buildkit',
    strategy: 'registry-cache',
    runId: 'r1',
    passthrough: [],
    context: '.',
    ...overrides,
  });
}

describe('targetExportTiming', () => {
  const current = new Map([[BUILD_INPUTS, 'sha256:b2'], [partKey('builder', 'cut'), 'sha256:d1'], [partKey('builder', 'whole'), 'sha256:w2']]);
  it('in the build when only steps after the dependency parts changed', () => {
    const recorded = new Map([[BUILD_INPUTS, 'sha256:b1'], [partKey('builder', 'cut'), 'sha256:d1']]);
    assert.equal(targetExportTiming(plan(), recorded, current).when, 'in-build');
  });
  it('after the build when nothing should have changed (a no-change run writes nothing)', () => {
    const recorded = new Map([[BUILD_INPUTS, 'sha256:b2'], [partKey('builder', 'cut'), 'sha256:d1']]);
    assert.deepEqual(targetExportTiming(plan(), recorded, current), { when: 'after', why: 'the inputs are those recorded with the cache: no step should run' });
  });
  it('in the build too when a dependency part changed, is unknown, or the cache has no record (steps should run; the parts still go up early)', () => {
    const changed = targetExportTiming(plan(), new Map([[BUILD_INPUTS, 'sha256:b1'], [partKey('builder', 'cut'), 'sha256:d0']]), current);
    assert.deepEqual(changed, { when: 'in-build', why: 'the dependency part of builder may have changed: it goes up early, the rest in the build' });
    assert.equal(targetExportTiming(plan(), new Map([[BUILD_INPUTS, 'sha256:b1']]), current).when, 'in-build');
    assert.equal(targetExportTiming(plan(), new Map([[BUILD_INPUTS, 'sha256:b1'], [partKey('builder', 'cut'), 'sha256:d1']]), new Map([[BUILD_INPUTS, 'sha256:b2']])).when, 'in-build');
    assert.deepEqual(targetExportTiming(plan(), undefined, current), { when: 'in-build', why: 'no record of the inputs of the cache found: steps should run' });
  });
  it('after the build only when the build digest is the recorded one; an unknown build digest never counts as unchanged', () => {
    assert.equal(targetExportTiming(plan(), new Map([[BUILD_INPUTS, 'sha256:b2']]), current).when, 'after');
    assert.equal(targetExportTiming(plan(), new Map([[BUILD_INPUTS, 'sha256:b2']]), new Map([[partKey('builder', 'cut'), 'sha256:d1']])).when, 'in-build');
  });
  it('in the build when no part can go early, even without a record', () => {
    const single = plan({ stages: [{ key: 'final', named: true, deps: [], isLast: true, buildkitSteps: 2 }] });
    assert.equal(targetExportTiming(single, undefined, new Map()).when, 'in-build');
  });
});

describe('the build that exports its own cache', () => {
  it('keeps the deploy tags and --push, and adds --cache-to; the dry run shows it', () => {
    const p = plan();
    const target = p.stages[1];
    assert.ok(target);
    const args = registryBuildInvocation(p, { stage: target, cacheFrom: [], cacheToInBuild: target.registryWrites[0]?.ref }).args;
    assert.ok(args.includes('--push') && args.includes('localhost:5000/team/app:abc123'), args.join(' '));
    assert.ok(args.includes('type=registry,ref=localhost:5000/team/app:_feature,mode=max,ignore-error=true,compression=zstd'), args.join(' '));
    assert.ok(!args.includes('type=cacheonly'), args.join(' '));
    const shown = dryRunCommands(p).find((phase) => phase.title.startsWith('instead of that second build'));
    const assumed = target.registryCandidates.slice(0, 1).map((c) => c.ref);
    assert.deepEqual(shown?.invocations[0]?.args, registryBuildInvocation(p, { stage: target, cacheFrom: assumed, cacheToInBuild: target.registryWrites[0]?.ref }).args);
  });
});

// Every candidate tag of every stage exists.
const sourcesPlan = plan();
const found = new Map(sourcesPlan.stages.map((s) => [s.key, s.registryCandidates]));
const tags = (refs: readonly ImageRef[]): string[] => refs.map((r) => formatRef(r).split(':').pop() ?? '');

describe('cacheSources: the --cache-from list of the registry-cache build', () => {
  it("scope by scope, most specific first, the target's cache before the stages'", () => {
    assert.deepEqual(tags(cacheSources(sourcesPlan, found)), ['_feature', '_feature__builder', '_main', '_main__builder', '_latest', '___builder']);
  });
  it('leaves out a tag whose manifest one listed before it has (the unprefixed copies of the default branch)', () => {
    const digests = new Map([
      ['_feature', 'sha256:f'],
      ['_feature__builder', 'sha256:fd'],
      ['_main', 'sha256:m'],
      ['_main__builder', 'sha256:md'],
      ['_latest', 'sha256:m'],
      ['___builder', 'sha256:md'],
    ]);
    const digestOf = (ref: ImageRef): string | undefined => digests.get(tags([ref])[0] ?? '');
    assert.deepEqual(tags(cacheSources(sourcesPlan, found, digestOf)), ['_feature', '_feature__builder', '_main', '_main__builder']);
    // A new branch's copy of the default branch's cache: the branch's own tag stays, the copy it came from goes.
    digests.set('_feature', 'sha256:m');
    assert.deepEqual(tags(cacheSources(sourcesPlan, found, digestOf)), ['_feature', '_feature__builder', '_main__builder']);
  });
  it('keeps tags whose digest is unknown', () => {
    assert.deepEqual(tags(cacheSources(sourcesPlan, found, () => undefined)), tags(cacheSources(sourcesPlan, found)));
  });
});
