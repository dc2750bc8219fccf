import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { branchToken } from '../../src/plan/image-ref.ts';
import { judge, parseCacheTags, readBranchList } from '../../src/prune/classify.ts';

describe('parseCacheTags', () => {
  it('reads both schemes and their scopes, and never takes a deploy tag for a cache', () => {
    const tags = ['main', 'main__deps', 'latest', '__deps', '_main', '_main__builder', '_latest', '___deps', 'v1.2.0', 'abc123', 'feature.x', 'feature.x__my__stage', 'lonely'];
    const parsed = new Map(parseCacheTags(tags).map((t) => [t.tag, `${t.scheme} ${t.token ?? '-'} ${t.stage ?? '-'}`]));
    assert.deepEqual(Object.fromEntries(parsed), {
      main__deps: 'inline main deps',
      __deps: 'inline - deps',
      _main: 'registry-cache main -',
      _main__builder: 'registry-cache main builder',
      _latest: 'registry-cache - -',
      ___deps: 'registry-cache - deps',
      'feature.x__my__stage': 'inline feature.x my__stage',
      latest: 'inline - -',
      main: 'inline main -',
      'feature.x': 'inline feature.x -',
    });
  });
});

describe('judge', () => {
  const policy = { liveBranches: ['feature/x', 'fix/ünï'], defaultBranches: ['main', 'master'], olderThanDays: 30 };
  const cases: [string, number | undefined, string][] = [
    ['__deps', 100, 'keep unprefixed'],
    ['main__deps', 100, 'keep default branch'],
    [`${branchToken('fix/ünï')}__deps`, 1, 'keep live branch'],
    [`${branchToken('fix/ünï')}__deps`, 31, 'delete older than 30 days'],
    ['feature.x__deps', undefined, 'keep live branch'],
    ['feature.gone__deps', 1, 'delete gone'],
  ];
  for (const [tag, age, expected] of cases) {
    it(`${tag} (${age ?? 'unknown'} days) -> ${expected}`, () => {
      const [parsed] = parseCacheTags([tag]);
      assert.ok(parsed);
      const verdict = judge(parsed, age, policy);
      assert.equal(`${verdict.action} ${verdict.reason}`, expected);
    });
  }
});

describe('readBranchList', () => {
  it('takes git ls-remote --heads output or plain names, once each', () => {
    assert.deepEqual(readBranchList('abc\trefs/heads/main\ndef\trefs/heads/feature/x\n\nmain\nrefs/heads/fix/y\n# comment\n'), ['main', 'feature/x', 'fix/y']);
  });
});
