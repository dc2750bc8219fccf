import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DockerCapabilities } from '../../src/engine/docker.ts';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentBuildxBuilder } from '../../src/engine/buildx-config.ts';
import { buildxDriverOf, Docker, imageStoreOf, infoOf } from '../../src/engine/docker.ts';
import type { RunResult } from '../../src/engine/exec.ts';
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
  it('reads client version, buildx plugin, server version and store from one docker info', () => {
    const modern = '{"Version":"26.1.5+dfsg1","Plugins":[{"Name":"buildx","Version":"0.13.1"}]}\n26.1.5+dfsg1\noverlayfs [["driver-type","io.containerd.snapshotter.v1"]]\n';
    assert.deepEqual(infoOf(modern), { clientVersion: '26.1.5+dfsg1', hasBuildx: true, serverVersion: '26.1.5+dfsg1', imageStore: 'containerd' });
    // 20.10's CLI: no client version in its info, no buildx.
    const legacy = '{"Debug":false,"Context":"default","Plugins":[],"Warnings":null}\n20.10.24+dfsg1\noverlay2 [["Backing Filesystem","extfs"]]';
    assert.deepEqual(infoOf(legacy), { clientVersion: undefined, hasBuildx: false, serverVersion: '20.10.24+dfsg1', imageStore: 'classic' });
    assert.equal(infoOf('{"Plugins":[{"Name":"buildx","Err":"not executable"}]}\n29.0.0\noverlay2 []')?.hasBuildx, false);
    assert.equal(infoOf(''), undefined);
    assert.equal(infoOf('28.0.0 28.0.0'), undefined);
  });
  it("takes buildx's current builder from its config: none or an empty name is the context's default", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drc-buildx-config-'));
    assert.equal(await currentBuildxBuilder(dir), 'default');
    mkdirSync(join(dir, 'buildx'));
    writeFileSync(join(dir, 'buildx', 'current'), '{"Key":"unix:///var/run/docker.sock","Name":"","Global":false}');
    assert.equal(await currentBuildxBuilder(dir), 'default');
    writeFileSync(join(dir, 'buildx', 'current'), '{"Key":"unix:///var/run/docker.sock","Name":"ci","Global":false}');
    assert.equal(await currentBuildxBuilder(dir), 'named');
    writeFileSync(join(dir, 'buildx', 'current'), 'not json');
    assert.equal(await currentBuildxBuilder(dir), 'unknown');
  });
});

describe('engine probe', () => {
  const answer = (stdout: string, exitCode = 0): RunResult => ({ exitCode, stdout, stderr: '', all: stdout, timedOut: false, canceled: false, notFound: false, durationMs: 1 });
  const probe = (answers: Record<string, RunResult>) => {
    const calls: string[] = [];
    const docker = new Docker('docker', async (_cli, args) => {
      calls.push(args.slice(0, 2).join(' '));
      return answers[args[0] === 'buildx' ? 'buildx' : (args[0] ?? '')] ?? answer('', 1);
    });
    return { calls, docker };
  };
  const modernInfo = answer('{"Version":"29.0.0","Plugins":[{"Name":"buildx"}]}\n29.0.0\noverlayfs [["driver-type","io.containerd.snapshotter.v1"]]');
  it("asks only docker info when buildx uses the context's default builder", async () => {
    const { calls, docker } = probe({ info: modernInfo });
    const caps = await docker.capabilities(1000, undefined, async () => 'default');
    assert.deepEqual(caps, { clientVersion: '29.0.0', serverVersion: '29.0.0', hasBuildx: true, buildxDriver: 'docker', imageStore: 'containerd' });
    assert.deepEqual(calls, ['info --format']);
  });
  it('asks buildx for the driver of a builder the user named or made current', async () => {
    const { calls, docker } = probe({ info: modernInfo, buildx: answer('Name: ci\nDriver: docker-container\n') });
    assert.equal(((await docker.capabilities(1000, 'ci')) as DockerCapabilities).buildxDriver, 'docker-container');
    assert.equal(((await docker.capabilities(1000, undefined, async () => 'named')) as DockerCapabilities).buildxDriver, 'docker-container');
    assert.deepEqual(calls, ['info --format', 'buildx inspect', 'info --format', 'buildx inspect']);
  });
  it('counts a named builder buildx cannot inspect as no buildx', async () => {
    const { docker } = probe({ info: modernInfo, buildx: answer('', 1) });
    const caps = (await docker.capabilities(1000, 'missing')) as DockerCapabilities;
    assert.equal(caps.hasBuildx, false);
    assert.equal(caps.buildxDriver, undefined);
  });
  it('asks docker version for the client version of a 20.10 CLI', async () => {
    const { calls, docker } = probe({ info: answer('{"Plugins":[]}\n20.10.24\noverlay2 []'), version: answer('20.10.24\n') });
    const caps = (await docker.capabilities(1000, undefined, async () => 'default')) as DockerCapabilities;
    assert.equal(caps.clientVersion, '20.10.24');
    assert.equal(caps.hasBuildx, false);
    assert.deepEqual(calls, ['info --format', 'version --format']);
  });
  it('returns the failed answer when the engine does not answer', async () => {
    const { docker } = probe({ info: answer('', 1), version: answer('Cannot connect to the Docker daemon', 1) });
    const caps = await docker.capabilities(1000);
    assert.ok('exitCode' in caps && caps.exitCode === 1);
  });
});
