import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CheckpointWatch, earlyPart } from '../../src/engine/checkpoint-watch.ts';
import { stageCheckpoint, stageHistoryEntries, stageStepCount } from '../../src/dockerfile/dockerfile.ts';
import type { PlannedStage } from '../../src/plan/plan.ts';

const TWO_STAGE = [
  '# syntax=docker/dockerfile:1',
  'ARG BASE=busybox',
  'FROM ${BASE} AS builder',
  'WORKDIR /build',
  'ENV MODE=release',
  'COPY deps.txt ./',
  'RUN install \\',
  '    --all',
  '# the sources',
  'COPY src/ ./src/',
  'RUN make',
  'FROM ${BASE} AS final',
  'COPY --from=builder /out /app',
  '',
].join('\n');

describe('stageCheckpoint', () => {
  it('cuts a stage before its last COPY from the context when a RUN comes before and after; keeps the later stages', () => {
    const checkpoint = stageCheckpoint(TWO_STAGE, 0, true);
    assert.deepEqual(checkpoint && { step: checkpoint.step, total: checkpoint.totalSteps }, { step: 4, total: 6 }, 'FROM 1, WORKDIR 2, COPY 3, RUN 4 (ENV makes no step); 6 in all');
    assert.equal(
      checkpoint?.text,
      ['# syntax=docker/dockerfile:1', 'ARG BASE=busybox', 'FROM ${BASE} AS builder', 'WORKDIR /build', 'ENV MODE=release', 'COPY deps.txt ./', 'RUN install \\', '    --all', '# the sources', 'FROM ${BASE} AS final', 'COPY --from=builder /out /app', '', ''].join('\n'),
    );
  });

  it('has no checkpoint without a RUN before the cut, or without one after it', () => {
    assert.equal(stageCheckpoint('FROM a AS x\nCOPY . .\nRUN make\n', 0, true), undefined);
    assert.equal(stageCheckpoint('FROM a AS x\nRUN install\nCOPY . .\n', 0, true), undefined);
    assert.equal(stageCheckpoint('FROM a AS x\nRUN install\nCOPY . .\nRUN make\n', 1, true), undefined, 'no such stage');
  });

  it('does not count COPY --from as a copy from the context, but counts ADD', () => {
    const text = 'FROM a AS deps\nRUN x\nFROM a AS b\nRUN install\nADD src.tar /src\nRUN make\nCOPY --from=deps /x /x\n';
    assert.equal(stageCheckpoint(text, 1, true)?.step, 2);
    assert.equal(stageCheckpoint(text, 1, true)?.totalSteps, 5);
  });

  it('numbers steps without FROM for a stage built from another stage or from scratch (BuildKit shows no FROM step then)', () => {
    const text = 'FROM a AS deps\nRUN x\nFROM deps AS b\nRUN install\nCOPY src /src\nRUN make\n';
    assert.deepEqual({ step: stageCheckpoint(text, 1, false)?.step, total: stageCheckpoint(text, 1, false)?.totalSteps }, { step: 1, total: 3 });
    assert.equal(stageStepCount(text, 1, false), 3);
  });

  it('leaves a stage with ONBUILD alone (its steps would shift)', () => {
    assert.equal(stageCheckpoint('FROM a AS x\nONBUILD RUN y\nRUN install\nCOPY . .\nRUN make\n', 0, true), undefined);
  });

  it('works on a last, unnamed stage', () => {
    assert.equal(stageCheckpoint('FROM a\nRUN install\nCOPY . .\nRUN make\n', 0, true)?.text, 'FROM a\nRUN install\n');
  });
});

describe('CheckpointWatch', () => {
  const header = (id: number, label: string): string => `#${id} ${label} RUN install\n`;

  it('fires once when the checkpoint step ends DONE', () => {
    let fired = 0;
    const watch = new CheckpointWatch(['[builder 4/6]'], () => fired++);
    watch.feed(header(7, '[builder 3/6]') + '#7 DONE 0.1s\n' + header(8, '[builder 4/6]'));
    watch.feed('#8 0.5 installing\n#8 DO');
    assert.equal(fired, 0);
    watch.feed('NE 8.8s\n#8 DONE 8.8s\n');
    assert.equal(fired, 1);
  });

  it('does not fire when the step was CACHED (the registry has its layers) or failed', () => {
    for (const end of ['CACHED', 'ERROR: exit code 1', 'CANCELED']) {
      let fired = 0;
      const watch = new CheckpointWatch(['[builder 4/6]'], () => fired++);
      watch.feed(`${header(8, '[builder 4/6]')}#8 ${end}\n`);
      assert.equal(fired, 0, end);
    }
  });

  it('with registry caches, a step that only fetched its layers before DONE was a hit: it does not fire; one that printed output did', () => {
    const blob = 'sha256:' + 'a'.repeat(64);
    let fired = 0;
    const fetched = new CheckpointWatch(['[builder 4/6]'], () => fired++, true);
    fetched.feed(`${header(8, '[builder 4/6]')}#8 ${blob} 8.39MB / 8.39MB 0.1s done\n#8 extracting ${blob} 0.1s done\n#8 DONE 0.3s\n`);
    assert.equal(fired, 0);
    const ran = new CheckpointWatch(['[builder 4/6]'], () => fired++, true);
    ran.feed(`${header(8, '[builder 4/6]')}#8 0.512 installing\n#8 DONE 8.1s\n`);
    assert.equal(fired, 1);
    // On 20.10 (no registry caches) blob lines belong to steps that ran.
    const legacy = new CheckpointWatch(['[builder 4/6]'], () => fired++);
    legacy.feed(`${header(8, '[builder 4/6]')}#8 ${blob} 8.39MB / 8.39MB 0.1s done\n#8 DONE 0.3s\n`);
    assert.equal(fired, 2);
  });

  it('ignores other stages and output prefixed by parallel builds', () => {
    let fired = 0;
    const watch = new CheckpointWatch(['[builder 4/6]'], () => fired++);
    watch.feed(`${header(3, '[assets 4/6]')}#3 DONE 1.0s\n[builder] #9 [builder 4/6] RUN x\n[builder] #9 DONE 1.0s\n`);
    assert.equal(fired, 0);
  });
});

describe('stageStepCount', () => {
  it('counts FROM and each RUN, COPY, ADD, WORKDIR of the stage, as BuildKit numbers them', () => {
    assert.equal(stageStepCount(TWO_STAGE, 0, true), 6);
    assert.equal(stageStepCount(TWO_STAGE, 1, true), 2);
    assert.equal(stageStepCount(TWO_STAGE, 2, true), undefined);
    assert.equal(stageStepCount('FROM a\nONBUILD RUN x\nRUN y\n', 0, true), undefined);
  });
});

describe('stageHistoryEntries', () => {
  it('counts the instructions that leave a history entry with either builder, never ARG', () => {
    const text = 'FROM a AS one\nARG X\nWORKDIR /w\nENV A=1\nCOPY . .\nRUN make\nFROM one AS two\nCMD ["x"]\n';
    assert.equal(stageHistoryEntries(text, 0), 4);
    assert.equal(stageHistoryEntries(text, 1), 1);
    assert.equal(stageHistoryEntries(text, 2), undefined);
    assert.equal(stageHistoryEntries('FROM a\nONBUILD RUN x\n', 0), undefined);
  });
});

describe('earlyPart', () => {
  const stage = (over: Partial<PlannedStage>): PlannedStage => ({ key: 's', isTarget: false, targetArg: 's', candidates: [], writes: [], registryCandidates: [], registryWrites: [], localRef: { domain: 'drc.local', path: 'a', tag: 't' }, keptRef: { domain: 'drc.local', path: 'a', tag: 'k' }, needs: [], layersFrom: [], baseImage: undefined, checkpoint: undefined, buildkitSteps: 4, ownSteps: 3, historyEntries: 3, ...over });

  it('uploads the dependency part of a stage that has one, in any build', () => {
    const checkpoint = stageCheckpoint(TWO_STAGE, 0, true);
    assert.equal(earlyPart(stage({ checkpoint }), false), 'cut');
    assert.equal(earlyPart(stage({ checkpoint, isTarget: true }), true), 'cut');
  });

  it('uploads a finished non-target stage whole only while a build of several stages goes on', () => {
    assert.equal(earlyPart(stage({}), true), 'whole');
    assert.equal(earlyPart(stage({}), false), undefined, 'a stage built alone is pushed when it ends');
    assert.equal(earlyPart(stage({ isTarget: true }), true), undefined, 'the target is exported by its own build');
    assert.equal(earlyPart(stage({ buildkitSteps: 1 }), true), undefined, 'a bare FROM has nothing new');
  });
});
