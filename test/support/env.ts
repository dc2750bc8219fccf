import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUNDLE = join(ROOT, 'dist', 'docker-build-remote-cache.mjs');
export const REGISTRY = process.env.DRC_TEST_REGISTRY ?? '127.0.0.1:5000';
export const BASE_IMAGE = `${REGISTRY}/drc-test/busybox:2`;
/** The loopback registry's JSON access log (scripts/test-env.sh). */
export const REGISTRY_LOG = process.env.DRC_TEST_REGISTRY_LOG ?? '/tmp/drc-test-env/registry.log';
/** The loopback registry's storage, beside its log (scripts/test-env.sh). */
const REGISTRY_DATA = join(dirname(REGISTRY_LOG), 'registry-data');
/** Which engine the suite runs on (scripts/test-env.sh): modern, modern-classic or legacy. */
export const ENGINE = (process.env.DRC_TEST_ENGINE ?? 'legacy') as 'modern' | 'modern-classic' | 'legacy';
/** The strategy BuildKit runs get on this engine (plan/strategy.ts). */
export const STRATEGY: 'registry-cache' | 'inline' = ENGINE === 'modern' ? 'registry-cache' : 'inline';
/** For describe(..., { skip }): suites about the inline-cache machinery, on engines that use it. */
export const INLINE_ONLY: false | string = STRATEGY === 'inline' ? false : 'inline-cache machinery: this engine builds with the registry cache';
/**
 * A client that builds with BuildKit on the engine under test: the modern engines' own
 * client with buildx; on the legacy engine Debian's 20.10 client (BuildKit built in; the
 * newer one in /usr/local/bin has no buildx).
 */
export const BUILDKIT_CLI = process.env.DRC_TEST_DOCKER_CLI ?? (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');
export const CLASSIC_CLI = 'docker';

let envReady = false;
/** Brings up engine, registry and base image (idempotent), once per test process. */
export function ensureTestEnv(): void {
  if (envReady) return;
  execFileSync('bash', [join(ROOT, 'scripts', 'test-env.sh'), 'up'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 });
  if (!existsSync(BUNDLE)) execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: 'ignore' });
  envReady = true;
}

function docker(args: string[], cli = CLASSIC_CLI): string {
  return execFileSync(cli, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
}

/**
 * A fresh setup_remote_docker: no containers, no images, no build cache. The containerd
 * store keeps blobs and snapshots that no image or cache uses (a pull would then fetch
 * nothing), so that engine is restarted empty instead (about 1 s).
 */
export function wipeEngine(): void {
  if (ENGINE === 'modern') {
    execFileSync('bash', [join(ROOT, 'scripts', 'test-env.sh'), 'fresh', 'modern'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
    return;
  }
  try {
    docker(['info', '--format', '{{.ServerVersion}}']);
  } catch {
    // The engine stopped answering (it happens to 20.10 under load): bring it back first.
    envReady = false;
    ensureTestEnv();
  }
  const containers = docker(['ps', '-aq']).split('\n').filter(Boolean);
  if (containers.length > 0) docker(['rm', '-f', ...containers]);
  const images = [...new Set(docker(['images', '-aq']).split('\n').filter(Boolean))];
  if (images.length > 0) {
    try {
      docker(['rmi', '-f', ...images]);
    } catch {
      // Images shared between tags may already be gone.
    }
  }
  docker(['builder', 'prune', '-af']);
}


/** A repository name no other test uses. */
export function uniqueRepo(label: string): string {
  return `${REGISTRY}/it-${label}-${randomBytes(3).toString('hex')}/app`;
}

export async function registryTags(repo: string): Promise<string[]> {
  const path = repo.slice(REGISTRY.length + 1);
  const response = await fetch(`http://${REGISTRY}/v2/${path}/tags/list`);
  if (response.status === 404) return [];
  const body = (await response.json()) as { tags?: string[] | null };
  return (body.tags ?? []).sort();
}

export async function registryDigest(repo: string, tag: string): Promise<string | undefined> {
  const path = repo.slice(REGISTRY.length + 1);
  const response = await fetch(`http://${REGISTRY}/v2/${path}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' },
  });
  return response.ok ? (response.headers.get('docker-content-digest') ?? undefined) : undefined;
}

/** A copy of the example app (or another fixture) in a temporary folder. */
export function appCopy(source = join(ROOT, 'examples', 'app')): string {
  const dir = mkdtempSync(join(tmpdir(), 'drc-app-'));
  cpSync(source, dir, { recursive: true });
  return dir;
}

/** A small 3-stage app: quick to build, deterministic, with a heavy-ish dependency layer. */
/**
 * A shell command that writes `blocks` 64 KiB blocks of seeded random bytes to `path`,
 * each block with its byte values rotated by another amount (tr), so that no byte
 * string repeats: neither gzip nor zstd (whose window would find a repeated block) can
 * shrink it, as they cannot shrink the archives of a real dependency layer. At most 254.
 */
export function incompressibleFile(path: string, blocks: number, seed: number): string {
  if (blocks > 254) throw new Error('incompressibleFile: at most 254 rotations');
  return `awk 'BEGIN { srand(${seed}); for (i = 0; i < 65536; i++) printf "%c", 1 + int(rand() * 255) }' > /tmp/b && for k in $(seq 1 ${blocks}); do tr '\\001-\\377' "$(printf '\\\\%03o-\\\\377\\\\001-\\\\%03o' $((k + 1)) $k)" < /tmp/b; done > ${path} && rm /tmp/b`;
}

/**
 * One stage that installs dependencies (`writeVendor` writes build/vendor.bin), then
 * copies and builds the sources for 3 s, long enough for an early upload or export to
 * run beside it; a slim final stage. For the tests of what goes up before a build ends.
 */
export function dependencyStageApp(prefix: string, writeVendor: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'deps.txt'), 'lib 1\n');
  writeFileSync(join(dir, 'src', 'main.txt'), 'v1\n');
  writeFileSync(
    join(dir, 'Dockerfile'),
    [
      `ARG BASE_IMAGE=${BASE_IMAGE}`,
      'FROM ${BASE_IMAGE} AS builder',
      'WORKDIR /build',
      'COPY deps.txt ./',
      `RUN ${writeVendor} && cat deps.txt > installed.txt`,
      'COPY src/ ./src/',
      'RUN sleep 3 && mkdir -p /out && cat installed.txt src/*.txt > /out/app.txt && sha256sum vendor.bin > /out/vendor.sum',
      'FROM ${BASE_IMAGE} AS final',
      'COPY --from=builder /out /app',
      '',
    ].join('\n'),
  );
  return dir;
}

export function smallApp(opts: { failFinal?: boolean; depsMb?: number; depsSleep?: number } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'drc-small-'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'deps.txt'), 'dep-a 1.0\n');
  writeFileSync(join(dir, 'src', 'main.txt'), 'v1\n');
  writeFileSync(
    join(dir, 'Dockerfile'),
    [
      `ARG BASE_IMAGE=${BASE_IMAGE}`,
      'FROM ${BASE_IMAGE} AS deps',
      'COPY deps.txt /deps/',
      `RUN sleep ${opts.depsSleep ?? 1} && ${incompressibleFile('/deps/vendor.bin', (opts.depsMb ?? 4) * 16, 7)}`,
      'FROM deps AS builder',
      'RUN mkdir -p /out && echo toolchain > /out/toolchain.txt',
      'COPY src/ /src/',
      'RUN mkdir -p /out && cat /src/*.txt > /out/app.txt && sha256sum /deps/vendor.bin > /out/vendor.sum',
      'FROM ${BASE_IMAGE} AS final',
      'COPY --from=builder /out /app',
      opts.failFinal ? 'RUN echo "deliberate failure in the final stage" && exit 3' : 'RUN cat /app/app.txt > /app/copy.txt',
      'CMD ["cat", "/app/app.txt"]',
      '',
    ].join('\n'),
  );
  return dir;
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface HelperRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly report: Report | undefined;
}

export interface Report {
  outcome: string;
  exitCode: number;
  builder: string;
  retries: number;
  strategy: string | null;
  warnings: string[];
  stages: { stage: string; cacheUsed: { scope: string; branch: string | null; ref: string } | null; steps: { cached: number; total: number } | null; status: string; cachePush: { ref: string; action: string; message?: string }[]; mbPushed: number | null }[];
  deploy: { ref: string; action: string }[];
}

/** What a failed assertion about a helper run shows: its exit code and the end of its output. */
export function explain(run: HelperRun): string {
  return `exit ${run.code}\nstdout:\n${run.stdout.slice(-2500)}\nstderr:\n${run.stderr.slice(-3500)}`;
}

/** A stage's entry in the run's report; the test fails when the report has none. */
export function reportedStage(run: HelperRun, key: string): Report['stages'][number] {
  const found = run.report?.stages.find((s) => s.stage === key);
  assert.ok(found, `report has stage ${key}: ${JSON.stringify(run.report?.stages.map((s) => s.stage))}`);
  return found;
}

/** Runs the bundled helper like a user would, bounded in time. */
export function runHelper(args: string[], opts: { cwd: string; env?: Record<string, string>; input?: string; timeoutMs?: number; onSpawn?: (pid: number) => void; killAfterMs?: number; killWhenOutput?: RegExp } = { cwd: ROOT }): Promise<HelperRun> {
  const reportFile = join(mkdtempSync(join(tmpdir(), 'drc-report-')), 'report.json');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUNDLE, ...args, '--report', reportFile], {
      cwd: opts.cwd,
      env: { ...process.env, CIRCLE_BRANCH: '', CIRCLE_TAG: '', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      if (opts.killWhenOutput && !signalled && opts.killWhenOutput.test(stderr)) {
        signalled = true;
        child.kill('SIGTERM');
      }
    });
    child.stdin.end(opts.input ?? '');
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`helper did not finish in ${opts.timeoutMs ?? 240_000} ms\n${stderr.slice(-3000)}`));
    }, opts.timeoutMs ?? 240_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let report: Report | undefined;
      try {
        report = JSON.parse(readFileSync(reportFile, 'utf8')) as Report;
      } catch {
        report = undefined;
      }
      rmSync(dirname(reportFile), { recursive: true, force: true });
      resolve({ code, signal, stdout, stderr, report });
    });
  });
}

/** Files the engine writes into every container it creates (Docker 26 exports etc/mtab): not the image's. */
const ENGINE_MADE = new Set(['etc/mtab', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf', '.dockerenv']);

/** Every file of an image with its content hash, for comparing two builds. */
export function imageFiles(image: string): Map<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'drc-fs-'));
  try {
    const container = docker(['create', image]).trim();
    try {
      docker(['export', '-o', join(dir, 'fs.tar'), container]);
    } finally {
      docker(['rm', container]);
    }
    mkdirSync(join(dir, 'fs'));
    execFileSync('tar', ['-xf', join(dir, 'fs.tar'), '-C', join(dir, 'fs')]);
    const files = new Map<string, string>();
    const walk = (path: string): void => {
      for (const name of readdirSync(path)) {
        const full = join(path, name);
        const stat = statSync(full, { throwIfNoEntry: false });
        if (!stat) continue;
        if (stat.isDirectory()) walk(full);
        else if (stat.isFile() && !ENGINE_MADE.has(relative(join(dir, 'fs'), full))) files.set(relative(join(dir, 'fs'), full), createHash('sha256').update(readFileSync(full)).digest('hex'));
      }
    };
    walk(join(dir, 'fs'));
    return files;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function buildNoCache(context: string, tag: string, target?: string): void {
  execFileSync(CLASSIC_CLI, ['build', '--no-cache', '-q', ...(target ? ['--target', target] : []), '-t', tag, context], { stdio: 'ignore', timeout: 300_000 });
}

/**
 * Bytes the registry served (blob GETs) and received (blob uploads) since byte
 * `offset` of its JSON log; `agent` keeps only requests whose user agent matches,
 * `path` only those whose URI matches (one repository's, beside other runs).
 */
export function registryTraffic(offset: number, agent?: RegExp, path?: RegExp): { pulled: number; pushed: number } {
  const size = statSync(REGISTRY_LOG).size;
  const buffer = Buffer.alloc(Math.max(0, size - offset));
  const fd = openSync(REGISTRY_LOG, 'r');
  readSync(fd, buffer, 0, buffer.length, offset);
  closeSync(fd);
  let pulled = 0;
  let pushed = 0;
  for (const line of buffer.toString('utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (agent && !agent.test(String(entry['http.request.useragent'] ?? ''))) continue;
    if (path && !path.test(String(entry['http.request.uri'] ?? ''))) continue;
    const method = entry['http.request.method'];
    const uri = String(entry['http.request.uri'] ?? '');
    if (method === 'GET' && /\/blobs\/sha256:/.test(uri)) pulled += Number(entry['http.response.written'] ?? 0);
    if (method === 'PUT' && /\/blobs\/uploads\//.test(uri) && entry['http.response.status'] === 201) {
      // A completed upload received the whole blob: docker push sends it in PATCHes (the final PUT's
      // state says how many bytes), BuildKit's pusher in the PUT itself (state Offset 0, and the log
      // has no request size). The blob's size in the registry's storage counts both the same way.
      const digest = /[?&]digest=sha256(?:%3A|:)([0-9a-f]{64})/i.exec(uri)?.[1];
      const stored = digest ? statSync(join(REGISTRY_DATA, 'docker', 'registry', 'v2', 'blobs', 'sha256', digest.slice(0, 2), digest, 'data'), { throwIfNoEntry: false }) : undefined;
      pushed += stored?.size ?? 0;
    }
  }
  return { pulled, pushed };
}
