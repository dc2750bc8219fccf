import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { argsFromOrbParams, orbBoolean, splitWords } from '../../src/cli/orb-params.ts';

describe('orb parameters to the helper\'s command line', () => {
  it('splits extra build arguments like shell words, expanding nothing', () => {
    assert.deepEqual(splitWords(`--build-arg A=1 --label "x=$(touch /tmp/p)" --label 'y=\`id\`;z' a\\ b`), ['--build-arg', 'A=1', '--label', 'x=$(touch /tmp/p)', '--label', 'y=`id`;z', 'a b']);
    assert.deepEqual(splitWords('  '), []);
    assert.throws(() => splitWords('--label "open'), /unclosed " in extra_build_args/);
  });

  it('reads booleans as CircleCI may render them, and refuses anything else', () => {
    assert.equal(orbBoolean('true', false), true);
    assert.equal(orbBoolean('0', true), false);
    assert.equal(orbBoolean('<nil>', true), true);
    assert.throws(() => orbBoolean('maybe', true), /not a boolean/);
  });

  it('builds the argv: tag from the commit, every set parameter, context last; empty ones left out', () => {
    const args = argsFromOrbParams({
      params: {
        PARAM_IMAGE: 'reg.example.com/team/app', PARAM_TAG: '', PARAM_EXTRA_TAGS: 'stable, v1', PARAM_BRANCH: '<nil>', PARAM_DEFAULT_BRANCHES: 'main,master',
        PARAM_TARGET: 'runtime', PARAM_BUILDKIT: 'true', PARAM_CACHE_UPLOAD: 'engine', PARAM_CACHE_COMPRESSION: 'gzip', PARAM_DEPLOY: 'false', PARAM_DOCKERFILE: 'docker/Dockerfile', PARAM_EXTRA_BUILD_ARGS: '--build-arg A=1', PARAM_CONTEXT: 'svc',
      },
      commit: 'abc123',
      readOnly: false,
    });
    assert.deepEqual(args, [
      'reg.example.com/team/app:abc123', '--tag', 'stable', '--tag', 'v1', '--default-branch', 'main,master', '--target', 'runtime',
      '--builder', 'buildkit', '--cache-upload', 'engine', '--cache-compression', 'gzip', '--no-push', '-f', 'docker/Dockerfile', '--build-arg', 'A=1', 'svc',
    ]);
  });

  it('a read-only run (forked PR) pushes neither the deploy image nor caches', () => {
    const args = argsFromOrbParams({ params: { PARAM_IMAGE: 'myorg/app' }, commit: undefined, readOnly: true });
    assert.deepEqual(args, ['myorg/app:latest', '--no-push', '--no-push-cache', '.']);
  });

  it('refuses an empty image and an image that carries a tag', () => {
    assert.throws(() => argsFromOrbParams({ params: { PARAM_IMAGE: ' ' }, commit: 'x', readOnly: false }), /"image" is empty/);
    assert.throws(() => argsFromOrbParams({ params: { PARAM_IMAGE: 'localhost:5000/app:v1' }, commit: 'x', readOnly: false }), /has a tag/);
    assert.deepEqual(argsFromOrbParams({ params: { PARAM_IMAGE: 'localhost:5000/app' }, commit: 'x', readOnly: false })[0], 'localhost:5000/app:x');
  });
});
