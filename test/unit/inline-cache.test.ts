import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INLINE_CACHE_KEY, inferChainLinks, repairInlineCache, type ImageConfig } from '../../src/strategies/classic-store/inline-cache.ts';

const encode = (records: unknown[]): string => Buffer.from(JSON.stringify(records)).toString('base64');
const decode = (config: ImageConfig): { digest: string; layers?: { layer: number }[] }[] => JSON.parse(Buffer.from(String(config[INLINE_CACHE_KEY]), 'base64').toString('utf8'));

describe('repairInlineCache', () => {
  // The cold image: every step linked to its layer.
  const source: ImageConfig = {
    rootfs: { diff_ids: ['base', 'workdir', 'deps', 'src-v1'] },
    [INLINE_CACHE_KEY]: encode([
      { digest: 'k-workdir', layers: [{ layer: 1 }] },
      { digest: 'k-deps', layers: [{ layer: 2 }], inputs: [[{ link: 0 }]] },
      { digest: 'k-src-v1', layers: [{ layer: 3 }], inputs: [[{ link: 1 }]] },
    ]),
  };
  // Rebuilt after a source change: the cached steps lost their links.
  const rebuilt: ImageConfig = {
    architecture: 'amd64',
    rootfs: { diff_ids: ['base', 'workdir', 'deps', 'src-v2'] },
    [INLINE_CACHE_KEY]: encode([
      { digest: 'k-workdir' },
      { digest: 'k-deps', inputs: [[{ link: 0 }]] },
      { digest: 'k-src-v2', layers: [{ layer: 3 }], inputs: [[{ link: 1 }]] },
    ]),
  };

  it('links the cached steps back to the layers they share with the source image', () => {
    const result = repairInlineCache(rebuilt, [source]);
    assert.equal(result?.repaired, 2);
    const records = decode(result?.config ?? {});
    assert.deepEqual(records.map((r) => [r.digest, r.layers?.[0]?.layer]), [['k-workdir', 1], ['k-deps', 2], ['k-src-v2', 3]]);
    assert.equal(result?.config.architecture, 'amd64', 'the rest of the config is kept');
  });

  it('does not link a record when the layers below it differ', () => {
    const other: ImageConfig = { ...source, rootfs: { diff_ids: ['base', 'workdir', 'deps-OTHER', 'src-v1'] } };
    const result = repairInlineCache(rebuilt, [other]);
    assert.equal(result?.repaired, 1, 'only the workdir record, whose layers 0..1 match');
  });

  it('returns nothing when no record needs or gets repair', () => {
    assert.equal(repairInlineCache(source, [source]), undefined);
    assert.equal(repairInlineCache({ rootfs: { diff_ids: [] } }, [source]), undefined);
  });
});

describe('inferChainLinks', () => {
  const diffIds = ['base0', 'base1', 'workdir', 'copy-deps', 'run-deps', 'copy-src', 'run-src'];
  // The records of a cold build as the 20.10 engine wrote them: COPY deps and RUN deps lost their links.
  const holes = [
    { digest: 'k-workdir', layers: [{ layer: 2 }], inputs: [[{ link: 3 }, { link: 7 }]] },
    { digest: 'k-copy-deps', inputs: [[{ link: 0 }], [{ link: 2 }]] },
    { digest: 'k-context' },
    { digest: 'k-base' },
    { digest: 'k-run-src', layers: [{ layer: 6, createdAt: 't6' }], inputs: [[{ link: 5 }]] },
    { digest: 'k-copy-src', layers: [{ layer: 5, createdAt: 't5' }], inputs: [[{ link: 8 }], [{ link: 6 }]] },
    { digest: 'k-context2' },
    { digest: 'k-base-alt' },
    { digest: 'k-run-deps', inputs: [[{ link: 1 }]] },
  ];
  const config = (records: unknown[], layers = diffIds): ImageConfig => ({ rootfs: { diff_ids: layers }, [INLINE_CACHE_KEY]: encode(records) });
  const linkOf = (cfg: ImageConfig | undefined, digest: string): number | undefined => decode(cfg ?? {}).find((r) => r.digest === digest)?.layers?.[0]?.layer;

  it('fills holes that the layer arithmetic forces (two steps between layer 2 and layer 5 are 3 and 4)', () => {
    const result = inferChainLinks(config(holes));
    assert.equal(result?.repaired, 2);
    assert.equal(linkOf(result?.config, 'k-copy-deps'), 3);
    assert.equal(linkOf(result?.config, 'k-run-deps'), 4);
    assert.equal(linkOf(result?.config, 'k-workdir'), 2, 'existing links kept');
    assert.equal(linkOf(result?.config, 'k-base'), undefined, 'the base image record is not guessed');
  });

  it('infers nothing when a step between could have added no layer (the gap is smaller than the steps)', () => {
    const records = structuredClone(holes);
    (records[5] as { layers: { layer: number }[] }).layers = [{ layer: 4 }];
    (records[4] as { layers: { layer: number }[] }).layers = [{ layer: 5 }];
    assert.equal(inferChainLinks(config(records)), undefined);
  });

  it('infers nothing when the image contradicts the one-layer-per-step rule', () => {
    const records = structuredClone(holes);
    (records[4] as { layers: { layer: number }[] }).layers = [{ layer: 6 }];
    (records[5] as { layers: { layer: number }[] }).layers = [{ layer: 3 }];
    assert.equal(inferChainLinks(config(records)), undefined, 'run-src is 3 layers above copy-src: the rule does not hold here');
  });

  it('does not walk through a step with several possible inputs, nor down to the base image', () => {
    const records = [
      { digest: 'k-base' },
      { digest: 'k-a', inputs: [[{ link: 0 }]] },
      { digest: 'k-b', layers: [{ layer: 1 }], inputs: [[{ link: 1 }]] },
      { digest: 'k-c', inputs: [[{ link: 2 }, { link: 0 }]] },
      { digest: 'k-d', layers: [{ layer: 3 }], inputs: [[{ link: 3 }]] },
    ];
    assert.equal(inferChainLinks(config(records, ['l0', 'l1', 'l2', 'l3'])), undefined);
  });

  it('reaches down to the base image when its layer count is given (checked by the caller against the first layers)', () => {
    // Seen in a final benchmark run: WORKDIR, COPY deps and RUN deps all unlinked, right above a 2-layer base.
    const records = structuredClone(holes);
    delete (records[0] as { layers?: unknown }).layers;
    assert.equal(inferChainLinks(config(records)), undefined, 'without the base layer count, nothing is forced');
    const result = inferChainLinks(config(records), 2);
    assert.equal(result?.repaired, 3);
    assert.deepEqual(['k-workdir', 'k-copy-deps', 'k-run-deps'].map((d) => linkOf(result?.config, d)), [2, 3, 4]);
    assert.equal(inferChainLinks(config(records), 3), undefined, 'a wrong base count does not add up, so nothing is filled');
    const linked = structuredClone(holes);
    assert.equal(inferChainLinks(config(linked), 4), undefined, 'a base count that contradicts an existing link stops the inference');
  });
});
