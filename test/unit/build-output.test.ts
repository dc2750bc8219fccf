import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countSteps, parseBuildOutput } from '../../src/engine/build-output.ts';

const BUILDKIT = `#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s
#5 [deps 1/4] FROM 127.0.0.1:5000/drc-test/busybox:1
#5 DONE 0.0s
#6 [deps 2/4] WORKDIR /deps
#6 CACHED
#7 [deps 3/4] COPY deps.txt ./
#7 CACHED
#8 [deps 4/4] RUN sleep 5
#8 DONE 5.5s
#9 [builder 1/2] COPY src/ ./
#9 DONE 0.1s
#10 [2/2] RUN true
#10 CACHED
`;

const CLASSIC = `Step 1/9 : ARG BASE_IMAGE=x
Step 2/9 : FROM x AS deps
 ---> 1234
Step 3/9 : WORKDIR /deps
 ---> Using cache
 ---> abcd
Step 4/9 : RUN sleep 5
 ---> Running in 999
Step 5/9 : FROM deps AS builder
Step 6/9 : COPY src/ ./
 ---> Using cache
Step 7/9 : FROM x
Step 8/9 : COPY --from=builder /out /app
 ---> 5678
Step 9/9 : CMD ["cat"]
 ---> Using cache
`;

describe('parseBuildOutput', () => {
  it('counts BuildKit steps per stage, FROM excluded, with durations', () => {
    const steps = parseBuildOutput(BUILDKIT, 'buildkit');
    assert.deepEqual(countSteps(steps, 'deps'), { cached: 2, total: 3 });
    assert.deepEqual(countSteps(steps, 'builder'), { cached: 0, total: 1 });
    assert.deepEqual(countSteps(steps.filter((s) => s.stage === undefined)), { cached: 1, total: 1 });
    assert.equal(steps.find((s) => s.instruction.startsWith('RUN sleep'))?.seconds, 5.5);
  });
  it('counts classic builder steps per stage, global ARG and FROM excluded', () => {
    const steps = parseBuildOutput(CLASSIC, 'classic');
    assert.deepEqual(countSteps(steps, 'deps'), { cached: 1, total: 2 });
    assert.deepEqual(countSteps(steps, 'builder'), { cached: 1, total: 1 });
    assert.deepEqual(countSteps(steps, '2'), { cached: 1, total: 2 });
    assert.deepEqual(countSteps(steps), { cached: 3, total: 5 });
  });
});
