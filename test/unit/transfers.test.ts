import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PhaseTraffic } from '../../src/report/phase-traffic.ts';
import { formatMarkdown, formatSummary, type RunReport } from '../../src/report/report.ts';
import { buildkitFetches, bytesOfShortIds, fetchedBytes, parseHumanSize, pullCompleteIds, pushedIds } from '../../src/report/transfers.ts';

const D1 = `sha256:${'a1'.repeat(32)}`;
const D2 = `sha256:${'b2'.repeat(32)}`;
const D3 = `sha256:${'c3'.repeat(32)}`;

describe('what docker output says it moved', () => {
  it('reads docker\'s human sizes in powers of 1000', () => {
    assert.equal(parseHumanSize('735B'), 735);
    assert.equal(parseHumanSize('1.72kB'), 1720);
    assert.equal(parseHumanSize('104.9MB'), 104_900_000);
    assert.equal(parseHumanSize('2GB'), 2e9);
    assert.equal(parseHumanSize('lots'), undefined);
  });

  it('BuildKit: cache layers it pulled (no size) and FROM blobs it downloaded (size on the done line), each once', () => {
    const output = [
      `#11 pulling ${D1}`,
      `#12 pulling ${D3} done`,
      `#11 pulling ${D1} 0.5s done`,
      `#4 ${D2} 0B / 1.05MB 0.1s`,
      `#4 ${D2} 1.05MB / 1.05MB 0.2s done`,
      `#4 extracting ${D2} 0.1s done`,
      `#16 writing image ${D3} done`,
      `#9 ${D3}`,
    ].join('\n');
    const fetched = buildkitFetches(output);
    assert.deepEqual([...fetched], [[D1, undefined], [D2, 1_050_000]]);
    assert.equal(fetchedBytes(fetched, new Map([[D1, 104_857_600]])), 104_857_600 + 1_050_000);
    assert.equal(fetchedBytes(fetched, new Map()), 1_050_000, 'a blob of unknown size adds nothing');
  });

  it('docker pull: layers downloaded (not those that already existed), by short compressed digest', () => {
    const output = ['v1: Pulling from team/app', 'a1a1a1a1a1a1: Already exists', 'b2b2b2b2b2b2: Pulling fs layer', 'b2b2b2b2b2b2: Download complete', 'b2b2b2b2b2b2: Pull complete', 'Digest: sha256:00'].join('\n');
    const ids = pullCompleteIds(output);
    assert.deepEqual([...ids], ['b2b2b2b2b2b2']);
    assert.equal(bytesOfShortIds(ids, new Map([[D1, 10], [D2, 20]])), 20);
  });

  it('docker push: layers sent (not found or mounted), by short diff_id', () => {
    const output = ['a1a1a1a1a1a1: Preparing', 'b2b2b2b2b2b2: Preparing', 'a1a1a1a1a1a1: Mounted from team/base', 'b2b2b2b2b2b2: Pushed', 'c3c3c3c3c3c3: Layer already exists', 'v1: digest: sha256:00 size: 946'].join('\n');
    assert.deepEqual([...pushedIds(output)], ['b2b2b2b2b2b2']);
  });
});

function report(): RunReport {
  const phase = (name: string, seconds: number) => ({ name, seconds, mbPulled: null, mbPushed: null });
  return {
    version: 1, image: 'r/app:v1', branch: 'main', builder: 'buildkit', strategy: 'target-then-export', engine: null,
    stages: [{ stage: 'builder', isTarget: false, cacheUsed: null, lookups: [], status: 'built', steps: { cached: 0, total: 2 }, buildSeconds: 4, uncachedStepSeconds: 4, cachePush: [], cachedInstructions: [], savedSeconds: null, mbPushed: 105 }],
    deploy: [], phases: [phase('resolve caches', 0), phase('build builder', 4), phase('deploy', 0.2), phase('push caches', 1)],
    retries: 0, warnings: [], notes: [], outcome: 'success', exitCode: 0, totalSeconds: 5.3,
  };
}

describe('PhaseTraffic', () => {
  it('puts pulls and early cache uploads in their build phase, the rest of the cache uploads under push caches', async () => {
    const traffic = new PhaseTraffic();
    const r = report();
    traffic.add('build builder', Promise.resolve({ pulledBytes: 2_000_000 }));
    traffic.addEarlyCacheUpload('build builder', 100_000_000);
    traffic.add('deploy', { pushedBytes: 500_000 });
    traffic.add('resolve caches', { pulledBytes: 3_000 });
    traffic.add('deploy', Promise.reject(new Error('registry gone')));
    await traffic.settled();
    traffic.fill(r);
    const byName = Object.fromEntries(r.phases.map((p) => [p.name, [p.mbPulled, p.mbPushed]]));
    assert.deepEqual(byName, { 'resolve caches': [0.003, 0], 'build builder': [2, 100], deploy: [0, 0.5], 'push caches': [null, 5] });
    const summary = formatSummary(r);
    assert.match(summary, /phases: resolve caches 0\.0s \(<0\.1 MB pulled\), build builder 4\.0s \(2\.0 MB pulled, 100\.0 MB pushed\), deploy 0\.2s \(0\.5 MB pushed\), push caches 1\.0s \(5\.0 MB pushed\)/);
    assert.match(summary, /registry traffic: 2\.0 MB pulled, 105\.5 MB pushed/);
    assert.match(formatMarkdown(r), /Phases: resolve caches 0\.0s \(<0\.1 MB pulled\), build builder 4\.0s \(2\.0 MB pulled, 100\.0 MB pushed\).*Registry traffic: 2\.0 MB pulled, 105\.5 MB pushed\./);
  });
});
