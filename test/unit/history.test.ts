import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normaliseInstruction, savedSeconds, stepDurations } from '../../src/report/history.ts';

describe('time saved from an image history', () => {
  const history = [
    { created: '2020-01-01T00:00:00Z', created_by: '/bin/sh -c #(nop) COPY dir:abc in /bin' },
    { created: '2026-11-28T00:00:00Z', created_by: 'WORKDIR /build # buildkit' },
    { created: '2026-11-28T00:00:00.5Z', created_by: 'COPY deps.txt ./ # buildkit' },
    { created: '2026-11-28T00:00:09Z', created_by: 'RUN /bin/sh -c sleep 8 && make deps # buildkit' },
  ];
  it('reads each step\'s duration from consecutive created times, ignoring the base image\'s age', () => {
    const youngBase = [{ created: '2026-11-27T23:50:00Z', created_by: '/bin/sh -c #(nop) COPY dir:x in /bin' }, { created: '2026-11-28T00:00:00Z', created_by: 'WORKDIR /a # buildkit' }];
    assert.equal(stepDurations(youngBase).size, 0, 'not even a base built minutes before');
    const durations = stepDurations(history);
    assert.equal(durations.get('RUN sleep 8 && make deps'), 8.5);
    assert.equal(durations.get('COPY deps.txt ./'), 0.5);
    assert.equal(durations.has('WORKDIR /build'), false);
  });
  it('leaves out the first of the stage\'s own entries, measured against the base (Docker 26 BuildKit marks no entry)', () => {
    // A base built by the same BuildKit 150 s before the stage: nothing tells its entries apart but the count.
    const modern = [
      { created: '2026-12-02T19:05:14Z', created_by: 'COPY bin /bin # buildkit' },
      { created: '2026-12-02T19:05:14Z', created_by: 'CMD ["/bin/sh"]' },
      { created: '2026-12-02T19:07:44Z', created_by: 'WORKDIR /deps' },
      { created: '2026-12-02T19:07:44.5Z', created_by: 'COPY deps.txt ./ # buildkit' },
      { created: '2026-12-02T19:07:50Z', created_by: 'RUN /bin/sh -c sleep 5 # buildkit' },
    ];
    assert.equal(stepDurations(modern).get('WORKDIR /deps'), 150, 'without the count, the base\'s age reads as a step');
    const durations = stepDurations(modern, 3);
    assert.deepEqual([...durations.keys()], ['COPY deps.txt ./', 'RUN sleep 5']);
    assert.equal(durations.get('RUN sleep 5'), 5.5);
    assert.equal(stepDurations(modern, 9).size, 0, 'a count larger than the history trusts nothing');
  });
  it('sums the durations of the cached steps it can match', () => {
    assert.equal(savedSeconds(['RUN sleep 8 && make deps', 'COPY deps.txt ./', 'RUN unknown'], stepDurations(history)), 9);
  });
  it('normalises the classic builder\'s history text', () => {
    assert.equal(normaliseInstruction('/bin/sh -c #(nop)  WORKDIR /x'), 'WORKDIR /x');
    assert.equal(normaliseInstruction('/bin/sh -c echo  hi'), 'RUN echo hi');
  });
});
