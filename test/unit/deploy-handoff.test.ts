import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeployHandoff } from '../../src/publish/deploy-handoff.ts';
import { parseImageRef } from '../../src/plan/image-ref.ts';

const ref = (text: string) => parseImageRef(text);

describe('DeployHandoff', () => {
  it('gives the deploy tag of the same local image in the same repository once it is pushed', async () => {
    const handoff = new DeployHandoff();
    handoff.expect('drc.local/app:run-1__final', [ref('registry.test/team/app:v1'), ref('registry.test/other/app:v1')]);
    const waiting = handoff.pushedInto('drc.local/app:run-1__final', ref('registry.test/team/app:main'));
    assert.ok(waiting);
    handoff.settle(ref('registry.test/team/app:v1'), true);
    assert.deepEqual(await waiting, ref('registry.test/team/app:v1'));
  });

  it('has nothing for another local image or another repository', () => {
    const handoff = new DeployHandoff();
    handoff.expect('drc.local/app:run-1__final', [ref('registry.test/team/app:v1')]);
    assert.equal(handoff.pushedInto('drc.local/app:run-1__builder', ref('registry.test/team/app:main__builder')), undefined);
    assert.equal(handoff.pushedInto('drc.local/app:run-1__final', ref('registry.test/team/cache:main')), undefined);
    assert.equal(handoff.pushedInto('drc.local/app:run-1__final', ref('other.test/team/app:main')), undefined);
  });

  it('resolves to nothing when the deploy push failed or never ran', async () => {
    const failed = new DeployHandoff();
    failed.expect('l', [ref('registry.test/team/app:v1')]);
    const waitingFailed = failed.pushedInto('l', ref('registry.test/team/app:main'));
    failed.settle(ref('registry.test/team/app:v1'), false);
    assert.equal(await waitingFailed, undefined);

    const ended = new DeployHandoff();
    ended.expect('l', [ref('registry.test/team/app:v1')]);
    const waitingEnded = ended.pushedInto('l', ref('registry.test/team/app:main'));
    ended.end();
    assert.equal(await waitingEnded, undefined);
  });

  it('a settled push stays settled when the rest are ended', async () => {
    const handoff = new DeployHandoff();
    handoff.expect('l', [ref('registry.test/team/app:v1'), ref('registry.test/team/app:v2')]);
    handoff.settle(ref('registry.test/team/app:v1'), true);
    handoff.end();
    assert.deepEqual(await handoff.pushedInto('l', ref('registry.test/team/app:main')), ref('registry.test/team/app:v1'));
  });

  it('knows the deploy tags, so that no cache write overwrites one', () => {
    const handoff = new DeployHandoff();
    handoff.expect('l', [ref('registry.test/team/app:latest')]);
    assert.equal(handoff.isDeployTag(ref('registry.test/team/app:latest')), true);
    assert.equal(handoff.isDeployTag(ref('registry.test/team/app:main')), false);
  });
});
