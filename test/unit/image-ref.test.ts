import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { branchToken, cacheTag, formatRef, parseImageRef, parseRepository } from '../../src/plan/image-ref.ts';
import { UserError } from '../../src/errors.ts';

const TAG_GRAMMAR = /^[\w][\w.-]{0,127}$/;

describe('parseImageRef', () => {
  const valid: [string, string | undefined, string, string][] = [
    ['myorg/app', undefined, 'myorg/app', 'latest'],
    ['app:1.0', undefined, 'app', '1.0'],
    ['localhost:5000/team/app:abc123', 'localhost:5000', 'team/app', 'abc123'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000', 'app', 'latest'],
    ['registry.example.com/a/b/c:v1_x', 'registry.example.com', 'a/b/c', 'v1_x'],
    ['ghcr.io/my-org/my__app.x:tag-1', 'ghcr.io', 'my-org/my__app.x', 'tag-1'],
  ];
  for (const [input, domain, path, tag] of valid) {
    it(`reads ${input} as domain ${domain ?? '(hub)'}, path ${path}, tag ${tag}`, () => {
      assert.deepEqual(parseImageRef(input), { domain, path, tag });
    });
  }

  const invalid: [string, RegExp][] = [
    ['', /empty/],
    [':tag', /no repository/],
    ['MyOrg/App', /lowercase: use "myorg\/app"/],
    ['localhost:99999/app', /invalid registry host/],
    ['localhost:abc/app', /invalid registry host/],
    ['app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', /digest/],
    ['app:-bad', /invalid tag/],
    [`app:${'x'.repeat(129)}`, /invalid tag/],
    [`org/${'a'.repeat(300)}`, /300|characters long|invalid/],
    ['app/', /invalid repository/],
  ];
  for (const [input, message] of invalid) {
    it(`refuses "${input.slice(0, 40)}" with a message naming the problem`, () => {
      assert.throws(() => parseImageRef(input), (error: unknown) => error instanceof UserError && error.exitCode === 3 && message.test(`${error.message} ${error.hint}`));
    });
  }

  it('refuses a cache repository with a tag', () => {
    assert.throws(() => parseRepository('localhost:5000/cache:tag'), /has a tag/);
    assert.deepEqual(parseRepository('localhost:5000/cache'), { domain: 'localhost:5000', path: 'cache' });
  });

  it('formats a reference back to text', () => {
    assert.equal(formatRef(parseImageRef('localhost:5000/a/b')), 'localhost:5000/a/b:latest');
  });
});

describe('cache tag naming', () => {
  it('keeps plain branch names readable, writing / as .', () => {
    assert.equal(branchToken('main'), 'main');
    assert.equal(branchToken('feature/login-form'), 'feature.login-form');
    assert.equal(branchToken('Release-2'), 'Release-2');
  });

  it('adds a hash to names that lose information when sanitised', () => {
    assert.match(branchToken('release/1.2'), /^release\.1\.2_[0-9a-f]{12}$/);
    assert.match(branchToken('fix_bug'), /^fix-bug_[0-9a-f]{12}$/);
    assert.match(branchToken('ünïcode/ブランチ'), /^unicode\._[0-9a-f]{12}$|^unicode_[0-9a-f]{12}$/);
    assert.match(branchToken('pull/123'), /^pull\.123$/);
  });

  it('never uses "latest" as a branch token (it is the unprefixed final tag)', () => {
    assert.notEqual(branchToken('latest'), 'latest');
  });

  it('refuses a branch that has nothing usable', () => {
    assert.throws(() => branchToken('///'), /nothing that can go into a Docker tag/);
    assert.throws(() => branchToken('_-.'), /nothing/);
    assert.match(branchToken('ブランチ'), /^branch_[0-9a-f]{12}$/);
  });

  it('the seed collision: branch "x-builder" and stage builder of branch "x" get different tags', () => {
    const finalOfXBuilder = cacheTag(branchToken('x-builder'), 'final', true);
    const builderOfX = cacheTag(branchToken('x'), 'builder', false);
    assert.notEqual(finalOfXBuilder, builderOfX);
  });

  it('unprefixed tags: "latest" for the target, "__stage" for others; a branch named like a stage cannot collide', () => {
    assert.equal(cacheTag(null, 'final', true), 'latest');
    assert.equal(cacheTag(null, 'builder', false), '__builder');
    assert.notEqual(cacheTag(branchToken('builder'), 'final', true), cacheTag(null, 'builder', false));
  });

  it('produces valid, distinct tags of at most 128 characters for a hostile set of (branch, stage) pairs', () => {
    const branches = [
      'main', 'master', 'x', 'x-builder', 'x--builder', 'x__builder', 'x_builder', 'x/builder', 'x.builder', 'latest',
      'feature/a', 'feature.a', 'feature-a', 'feature_a', 'Feature/A', 'a'.repeat(64), 'a'.repeat(65), 'a'.repeat(300),
      `${'a'.repeat(300)}b`, 'pull/123', 'pull-123', '-lead', '.lead', 'dep/ünï', 'dep/uni', 'a//b', 'x$(touch /tmp/pwned)',
      'semi;colon`tick`', 'tag-like_0123456789ab', 'release/1.2', 'release.1.2',
    ];
    const stages = ['builder', 'deps', 'final', 'x', '0', '1', 'a_b', 'a__b', 's'.repeat(60), 's'.repeat(61), `${'s'.repeat(48)}_0123456789ab`, 's'.repeat(200)];
    const seen = new Map<string, string>();
    for (const branch of [...branches, null]) {
      const token = branch === null ? null : branchToken(branch);
      for (const stage of stages) {
        for (const isTarget of [false, true]) {
          if (isTarget && stage !== 'final') continue;
          const tag = cacheTag(token, stage, isTarget);
          assert.match(tag, TAG_GRAMMAR, `${branch}/${stage} gives invalid tag ${tag}`);
          const key = `${branch}|${isTarget ? '(target)' : stage}`;
          const other = seen.get(tag);
          assert.ok(other === undefined || other === key, `${key} and ${other} both map to ${tag}`);
          seen.set(tag, key);
        }
      }
    }
    assert.ok(seen.size > 300);
  });
});
