import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DockerCapabilities } from '../../src/engine/docker.ts';
import { buildxDriverOf, imageStoreOf } from '../../src/engine/docker.ts';
import { chooseStrategy, type StrategyInputs } from '../../src/plan/strategy.ts';

const caps = (over: Partial<DockerCapabilities>): DockerCapabilities => ({ clientVersion: '29.0.0', serverVersion: '29.0.0', hasBuildx: true, buildxDriver: 'docker', imageStore: 'containerd', ...over });
const choose = (over: Partial<StrategyInputs>) => chooseStrategy({ requested: 'auto', builder: 'auto', dockerBuildkit: undefined, caps: caps({}), ...over });

describe('chooseStrategy', () => {
  const cases: { name: string; input: Partial<StrategyInputs>; kind: string }[] = [
    { name: 'docker driver on the containerd store (Docker 29): registry cache', input: {}, kind: 'registry-cache' },
    { name: 'docker driver on the classic store (Docker 27-28): inline cache per stage', input: { caps: caps({ imageStore: 'classic' }) }, kind: 'inline' },
    { name: 'docker-container driver on the classic store: registry cache', input: { caps: caps({ imageStore: 'classic', buildxDriver: 'docker-container' }) }, kind: 'registry-cache' },
    { name: 'remote and kubernetes drivers: registry cache', input: { caps: caps({ buildxDriver: 'remote', imageStore: undefined }) }, kind: 'registry-cache' },
    { name: 'no buildx, DOCKER_BUILDKIT=1 (the 20.10 client): inline', input: { caps: caps({ hasBuildx: false, buildxDriver: undefined, imageStore: 'classic' }), dockerBuildkit: true }, kind: 'inline' },
    { name: 'no buildx, DOCKER_BUILDKIT unset: classic builder', input: { caps: caps({ hasBuildx: false, buildxDriver: undefined }) }, kind: 'classic' },
    { name: 'DOCKER_BUILDKIT=0 wins over buildx', input: { dockerBuildkit: false }, kind: 'classic' },
    { name: '--builder classic wins over buildx', input: { builder: 'classic' }, kind: 'classic' },
    { name: '--builder buildkit still takes the registry cache where it can', input: { builder: 'buildkit' }, kind: 'registry-cache' },
    { name: '--strategy inline on the containerd store', input: { requested: 'inline' }, kind: 'inline' },
    { name: '--strategy classic on any engine', input: { requested: 'classic' }, kind: 'classic' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const chosen = choose(c.input);
      assert.ok(!('error' in chosen), JSON.stringify(chosen));
      assert.equal(chosen.kind, c.kind);
      assert.ok(chosen.reason.length > 0);
    });
  }
  it('refuses --strategy registry-cache where the builder cannot export one, and says why', () => {
    const chosen = choose({ requested: 'registry-cache', caps: caps({ imageStore: 'classic' }) });
    assert.ok('error' in chosen);
    assert.match(chosen.error, /classic image store exports inline cache only/);
  });
});

describe('engine probe parsing', () => {
  it('reads the containerd store from docker info, and the classic one from overlay2', () => {
    assert.equal(imageStoreOf('overlayfs [["driver-type","io.containerd.snapshotter.v1"]]'), 'containerd');
    assert.equal(imageStoreOf('overlay2 [["Backing Filesystem","extfs"]]'), 'classic');
    assert.equal(imageStoreOf(''), undefined);
  });
  it('reads the driver from docker buildx inspect', () => {
    assert.equal(buildxDriverOf('Name:   default\nDriver: docker\n\nNodes:\n'), 'docker');
    assert.equal(buildxDriverOf('Name: ci\nDriver:        docker-container\n'), 'docker-container');
    assert.equal(buildxDriverOf('nothing'), undefined);
  });
});
