import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { branchToken } from '../../src/plan/image-ref.ts';
import { BUILDKIT_CLI, BUNDLE, ensureTestEnv, explain, runHelper, smallApp, STRATEGY, wipeEngine } from '../support/env.ts';

/** A registry of this test's own (its garbage collection must not touch the shared one's data). */
interface OwnRegistry {
  readonly address: string;
  readonly config: string;
  readonly data: string;
  process: ChildProcess;
}

async function startRegistry(port: number, deleteEnabled: boolean): Promise<OwnRegistry> {
  const dir = mkdtempSync(join(tmpdir(), `drc-prune-registry-${port}-`));
  const data = join(dir, 'data');
  mkdirSync(data);
  const config = join(dir, 'config.yml');
  writeFileSync(config, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${data}\n  delete:\n    enabled: ${deleteEnabled}\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  const address = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`http://${address}/v2/`).then((r) => r.ok, () => false);
    if (up) return { address, config, data, process: child };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error(`the registry on ${address} did not start`);
}

const sha = (bytes: Buffer | string): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Registry API helpers for building a repository by hand: blobs, manifests, tags. */
function api(address: string, repo: string) {
  const base = `http://${address}/v2/${repo}`;
  return {
    async blob(bytes: Buffer): Promise<{ digest: string; size: number }> {
      const digest = sha(bytes);
      const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST' });
      const location = new URL(start.headers.get('location') ?? '', `http://${address}`);
      location.searchParams.set('digest', digest);
      const put = await fetch(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(bytes) });
      assert.equal(put.status, 201, `blob upload: ${await put.text()}`);
      return { digest, size: bytes.length };
    },
    async manifest(tag: string, body: string): Promise<string> {
      const put = await fetch(`${base}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': MANIFEST }, body });
      assert.equal(put.status, 201, `manifest ${tag}: ${await put.text()}`);
      return put.headers.get('docker-content-digest') ?? '';
    },
    async digest(tag: string): Promise<string | undefined> {
      const head = await fetch(`${base}/manifests/${tag}`, { method: 'HEAD', headers: { accept: `${MANIFEST}, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json` } });
      return head.ok ? (head.headers.get('docker-content-digest') ?? undefined) : undefined;
    },
    async tags(): Promise<string[]> {
      const all: string[] = [];
      let next: string | undefined = `${base}/tags/list?n=500`;
      while (next) {
        const response: Response = await fetch(next);
        if (response.status === 404) return all;
        all.push(...(((await response.json()) as { tags?: string[] }).tags ?? []));
        const link = /<([^>]+)>/.exec(response.headers.get('link') ?? '')?.[1];
        next = link ? `http://${address}${link}` : undefined;
      }
      return all.sort();
    },
  };
}

function du(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) if (entry.isFile()) total += statSync(join(entry.parentPath ?? entry.path, entry.name)).size;
  return total;
}

function prune(args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [BUNDLE, 'prune', ...args], { encoding: 'utf8', input: input ?? '', timeout: 300_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const ODD = ['feature/Ünïcode-naïve', 'user/JIRA-123_fix!', 'ブランチ', `long/${'x'.repeat(120)}`, 'release/1.0'];
const BRANCHES = [...ODD, ...Array.from({ length: 25 }, (_, i) => `feature/f${i}`)];
/** 20 live branches (some of the odd names among them), 10 gone; feature/f0 (live) and feature/f2 (gone) are built by the helper. */
const LIVE = BRANCHES.filter((_, i) => i % 3 !== 1);
const GONE = BRANCHES.filter((b) => !LIVE.includes(b));

describe('prune: the caches of branches that are gone, on a real registry', { timeout: 900_000 }, () => {
  let registry: OwnRegistry;
  let refusing: OwnRegistry;
  const repo = 'team/app';
  const image = (): string => `${registry.address}/${repo}`;
  let work: string;
  let app: string;
  const digestsBefore = new Map<string, string | undefined>();
  const cacheTagsOf = (branch: string): string[] => {
    const t = branchToken(branch);
    return [t, `${t}__deps`, `${t}__builder`, `_${t}`];
  };

  before(async () => {
    ensureTestEnv();
    registry = await startRegistry(5101, true);
    refusing = await startRegistry(5102, false);
    work = mkdtempSync(join(tmpdir(), 'drc-prune-'));
    // Real caches first, written by the helper: main (default) and two topic branches with their own source changes.
    app = smallApp();
    for (const [branch, tag, file] of [['main', 'm1', ''], ['feature/f0', 'f0', 'src/main.txt'], ['feature/f2', 'f2', 'src/main.txt']] as const) {
      if (file) appendFileSync(join(app, file), `a change on ${branch}\n`);
      wipeEngine();
      const run = await runHelper([`${image()}:${tag}`, '--docker', BUILDKIT_CLI, '--branch', branch, '--default-branch', 'main'], { cwd: app });
      assert.equal(run.code, 0, explain(run));
    }
    // Then the rest by hand through the registry API: 30 branches' cache tags in both schemes, deploy
    // tags sharing their digests, a stage that is the same image on every branch, and 2,000 other tags.
    const r = api(registry.address, repo);
    const layer = await r.blob(Buffer.from('a layer every test image shares'));
    const manifestFor = async (label: string, created: string): Promise<string> => {
      const config = await r.blob(Buffer.from(JSON.stringify({ created, architecture: 'amd64', os: 'linux', config: { Labels: { label } }, rootfs: { type: 'layers', diff_ids: [layer.digest] } })));
      return JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }] });
    };
    const sharedBuilder = await manifestFor('builder, unchanged on every branch', new Date().toISOString());
    const old = new Date(Date.now() - 40 * 86_400_000).toISOString();
    // One gone branch's dependency cache has a 2 MB layer no other tag uses: garbage collection must free it.
    const unique = await r.blob(Buffer.from(Array.from({ length: 2 * 1024 * 1024 }, () => Math.floor(Math.random() * 256))));
    for (const [i, branch] of BRANCHES.entries()) {
      if (branch === 'feature/f0' || branch === 'feature/f2') continue;
      const t = branchToken(branch);
      const created = i % 4 === 0 ? old : new Date().toISOString();
      const target = await manifestFor(`target of ${branch}`, created);
      await r.manifest(t, target);
      await r.manifest(`deploy-${i}`, target); // a deploy tag: the same manifest as the branch's target cache
      const deps = await manifestFor(`deps of ${branch}`, created);
      await r.manifest(`${t}__deps`, branch === GONE[0] ? deps.replace('"layers":[', `"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"${unique.digest}","size":${unique.size}},`) : deps);
      await r.manifest(`${t}__builder`, sharedBuilder);
      await r.manifest(`_${t}`, await manifestFor(`registry cache of ${branch}`, created));
    }
    const other = await manifestFor('not a cache', new Date().toISOString());
    for (let i = 0; i < 2000; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => r.manifest(`release-${i + j}`, other)));
    for (const tag of await r.tags()) digestsBefore.set(tag, await r.digest(tag));
    writeFileSync(join(work, 'live.txt'), LIVE.map((b) => `0123456789abcdef\trefs/heads/${b}`).join('\n'));
  });

  after(() => {
    registry?.process.kill();
    refusing?.process.kill();
    if (work) rmSync(work, { recursive: true, force: true });
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it('a dry run deletes nothing and gives each cache tag its verdict and reason', async () => {
    const report = join(work, 'dry.json');
    const run = prune([image(), '--live-branches', join(work, 'live.txt'), '--default-branch', 'main', '--report', report]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^tag\s+scheme\s+scope\s+age\s+verdict\s+reason/m);
    assert.deepEqual(await api(registry.address, repo).tags(), [...digestsBefore.keys()].sort(), 'no tag changed');
    const rows = (JSON.parse(readFileSync(report, 'utf8')) as { rows: { tag: string; action: string; reason: string }[]; tagsListed: number }).rows;
    const verdict = new Map(rows.map((r) => [r.tag, `${r.action} ${r.reason}`]));
    assert.ok(JSON.parse(readFileSync(report, 'utf8')).tagsListed > 2100, 'every page of the tag list was read');
    for (const branch of GONE) for (const tag of cacheTagsOf(branch).filter((t) => digestsBefore.has(t))) assert.equal(verdict.get(tag), 'delete gone', tag);
    for (const branch of LIVE) for (const tag of cacheTagsOf(branch).filter((t) => digestsBefore.has(t))) assert.equal(verdict.get(tag), 'keep live branch', tag);
    for (const tag of ['main', 'main__deps', 'main__builder']) if (digestsBefore.has(tag)) assert.equal(verdict.get(tag), 'keep default branch', tag);
    const mainCache = STRATEGY === 'inline' ? 'main' : '_main';
    assert.equal(verdict.get(mainCache), 'keep default branch');
    assert.equal(verdict.get(STRATEGY === 'inline' ? 'latest' : '_latest'), 'keep unprefixed');
    for (const tag of rows.map((r) => r.tag)) assert.ok(!/^(deploy-|release-|m1$|f0$|f2$)/.test(tag), `deploy tag ${tag} is never a candidate`);
  });

  it('--older-than prunes the caches of live branches not written for that long, and only those', () => {
    const report = join(work, 'old.json');
    const run = prune([image(), '--live-branches', join(work, 'live.txt'), '--default-branch', 'main', '--older-than', '30', '--report', report]);
    assert.equal(run.code, 0, run.stderr);
    const rows = (JSON.parse(readFileSync(report, 'utf8')) as { rows: { tag: string; reason: string }[] }).rows;
    const stale = LIVE.filter((b) => BRANCHES.indexOf(b) % 4 === 0);
    assert.ok(stale.length > 0);
    for (const branch of stale) assert.equal(rows.find((r) => r.tag === `${branchToken(branch)}__deps`)?.reason, 'older than 30 days', branch);
    assert.equal(rows.find((r) => r.tag === `${branchToken(BRANCHES[2] ?? '')}__deps`)?.reason, 'live branch', 'a fresh live cache stays');
  });

  it('--delete removes exactly the gone branches\' cache tags; every kept tag keeps its digest; GC frees the pruned layers', async () => {
    const r = api(registry.address, repo);
    const beforeBytes = du(registry.data);
    const run = prune([image(), '--live-branches', '-', '--default-branch', 'main', '--delete'], readFileSync(join(work, 'live.txt'), 'utf8'));
    assert.equal(run.code, 0, run.stderr);
    const gone = new Set(GONE.flatMap(cacheTagsOf).filter((t) => digestsBefore.has(t)));
    assert.ok(gone.size >= 30, `${gone.size} gone tags`);
    const after = await r.tags();
    assert.deepEqual(after, [...digestsBefore.keys()].filter((t) => !gone.has(t)).sort(), `exactly the gone branches' tags were removed\n${run.stdout.split('\n').filter((l) => /failed/.test(l)).join('\n')}`);
    for (const tag of after) assert.equal(await r.digest(tag), digestsBefore.get(tag), `${tag} kept its digest`);
    // The gone branch the helper built (feature/f2) had a layer of its own: garbage collection frees it.
    const gc = spawnSync('docker-registry', ['garbage-collect', registry.config], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(gc.status, 0, gc.stderr);
    const freed = beforeBytes - du(registry.data);
    assert.ok(freed > 2 * 1024 * 1024, `garbage collection freed ${freed} bytes (a gone branch's 2 MB layer among them)`);
    process.stderr.write(`prune test: garbage collection freed ${freed} bytes\n`);
  });

  it('the default branch\'s next build on a fresh engine is still fully cached', async () => {
    // main's sources, as main built them (the topic branches changed them since).
    writeFileSync(join(app, 'src', 'main.txt'), 'v1\n');
    writeFileSync(join(app, 'deps.txt'), 'dep-a 1.0\n');
    wipeEngine();
    const run = await runHelper([`${image()}:m2`, '--docker', BUILDKIT_CLI, '--branch', 'main', '--default-branch', 'main'], { cwd: app });
    assert.equal(run.code, 0, explain(run));
    for (const stage of run.report?.stages ?? []) assert.ok(stage.steps && stage.steps.cached === stage.steps.total, `${stage.stage}: ${JSON.stringify(stage.steps)}`);
  });

  it('a registry that refuses deletes: one clear line naming it, exit 8', async () => {
    const r = api(refusing.address, repo);
    const layer = await r.blob(Buffer.from('layer'));
    const config = await r.blob(Buffer.from('{"rootfs":{"type":"layers","diff_ids":[]}}'));
    const body = JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }] });
    await r.manifest('gone__deps', body);
    await r.manifest('gone', body.replace('"layers":[', '"annotations":{"x":"1"},"layers":['));
    const run = prune([`${refusing.address}/${repo}`, '--live-branches', '-', '--delete'], 'main\n');
    assert.equal(run.code, 8, run.stderr);
    assert.match(run.stderr, new RegExp(`error: registry ${refusing.address.replace(/\./g, '\\.')} refused a delete .*the rest were not touched`));
    assert.match(run.stderr, /hint: enable deletes there/);
    assert.equal(run.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1);
    assert.deepEqual(await r.tags(), ['gone', 'gone__deps']);
  });

  it('bad input gets one clear line and its own exit code', () => {
    const cases: [string[], string, number, RegExp][] = [
      [[image(), '--live-branches', join(work, 'live.txt'), '--frobnicate'], '', 2, /error: Unknown argument: frobnicate/],
      [[image(), '--live-branches', '-'], '', 3, /error: the --live-branches list is empty/],
      [[image()], '', 2, /error: --live-branches is required/],
      [[image(), '--live-branches', join(work, 'nope.txt')], '', 3, /error: cannot read --live-branches/],
      [[image(), '--live-branches', '-', '--older-than', '-3'], 'main\n', 2, /error: --older-than must be a number of days/],
    ];
    for (const [args, input, code, says] of cases) {
      const run = prune(args, input);
      assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, says);
      assert.equal(run.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1);
    }
    const empty = prune([image(), '--live-branches', '-', '--allow-empty', '--default-branch', 'main'], '');
    assert.equal(empty.code, 0, `--allow-empty takes an empty list: ${empty.stderr}`);
  });
});
