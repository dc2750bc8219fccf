import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatRef, type ImageRef, parseImageRef } from '../../src/plan/image-ref.ts';
import { makePlan } from '../../src/plan/plan.ts';
import { cacheSources } from '../../src/strategies/registry-cache.ts';

const plan = makePlan({
  image: parseImageRef('localhost:5000/team/app:abc123'),
  extraTags: [],
  cacheRepo: { domain: 'localhost:5000', path: 'team/app' },
  stages: [
    { key: 'deps', named: true, deps: [], isLast: false, buildkitSteps: 3 },
    { key: 'final', named: true, deps: ['deps'], isLast: true, buildkitSteps: 2 },
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
});
// Every candidate tag of every stage exists.
const found = new Map(plan.stages.map((s) => [s.key, s.registryCandidates]));
const tags = (refs: readonly ImageRef[]): string[] => refs.map((r) => formatRef(r).split(':').pop() ?? '');

describe('cacheSources: the --cache-from list of the registry-cache build', () => {
  it("scope by scope, most specific first, the target's cache before the stages'", () => {
    assert.deepEqual(tags(cacheSources(plan, found)), ['_feature', '_feature__deps', '_main', '_main__deps', '_latest', '___deps']);
  });
  it('leaves out a tag whose manifest one listed before it has (the unprefixed copies of the default branch)', () => {
    const digests = new Map([
      ['_feature', 'sha256:f'],
      ['_feature__deps', 'sha256:fd'],
      ['_main', 'sha256:m'],
      ['_main__deps', 'sha256:md'],
      ['_latest', 'sha256:m'],
      ['___deps', 'sha256:md'],
    ]);
    const digestOf = (ref: ImageRef): string | undefined => digests.get(tags([ref])[0] ?? '');
    assert.deepEqual(tags(cacheSources(plan, found, digestOf)), ['_feature', '_feature__deps', '_main', '_main__deps']);
    // A new branch's copy of the default branch's cache: the branch's own tag stays, the copy it came from goes.
    digests.set('_feature', 'sha256:m');
    assert.deepEqual(tags(cacheSources(plan, found, digestOf)), ['_feature', '_feature__deps', '_main__deps']);
  });
  it('keeps tags whose digest is unknown', () => {
    assert.deepEqual(tags(cacheSources(plan, found, () => undefined)), tags(cacheSources(plan, found)));
  });
});
