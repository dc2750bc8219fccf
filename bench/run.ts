/**
 * The side-by-side benchmark, per engine: a plain no-cache build, the original
 * scripts' algorithm (bench/seed.sh), buildx's registry cache written by hand (where
 * the builder can export one; inline cache on the classic store), and this project's
 * helper, on the same apps and the same sequence of changes, each scenario on a fresh
 * engine against the loopback registry. Prints one table per engine (medians of --reps
 * runs) and writes bench/results/latest-ENGINE.json and latest.md.
 *
 *   npm run bench [-- --reps 3 --apps two-stage,five-stage --engines modern,modern-classic,legacy]
 *   (for experiments: --tools helper,buildx, --helper-args '--cache-upload engine', --bundle OTHER.mjs, --out DIR)
 *
 * Without --engine, it runs itself once per engine (each in the environment of
 * `scripts/test-env.sh env ENGINE`) and joins the tables.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBuildOutput } from '../src/engine/build-output.ts';
import { BASE_IMAGE, BUILDKIT_CLI, BUNDLE, ENGINE, REGISTRY, REGISTRY_LOG, ROOT, ensureTestEnv, imageFiles, registryTraffic, wipeEngine } from '../test/support/env.ts';
import { makeApp } from './apps.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => (args.includes(name) ? (args[args.indexOf(name) + 1] ?? fallback) : fallback);
const REPS = Number(option('--reps', '3'));
const APPS = option('--apps', 'two-stage,five-stage').split(',') as ('two-stage' | 'five-stage')[];

const ENGINE_ARG = args.includes('--engine') ? option('--engine', 'legacy') : undefined;
const ENGINES = option('--engines', 'modern,modern-classic,legacy').split(',');
const ALL_TOOLS = ['no-cache', 'seed', 'buildx', 'helper'] as const;
type Tool = (typeof ALL_TOOLS)[number];
/** buildx by hand needs buildx: not on the legacy engine's client. */
const TOOLS: readonly Tool[] = (ENGINE === 'legacy' ? ALL_TOOLS.filter((t) => t !== 'buildx') : ALL_TOOLS).filter((t) => option('--tools', ALL_TOOLS.join(',')).split(',').includes(t));
/** For A/B runs of a helper option (`--helper-args '--cache-compression gzip'`): added to every helper run. */
/** Where the tables go (experiments write elsewhere than the recorded run). */
const OUT = option('--out', join(ROOT, 'bench', 'results'));
/** Another build of the helper to measure (an A/B against an earlier commit's bundle). */
const HELPER_BUNDLE = option('--bundle', BUNDLE);
const HELPER_ARGS = option('--helper-args', '').split(' ').filter((a) => a !== '');
/**
 * Not a tool: before each helper run that has caches to use, BuildKit alone builds
 * the same change with every cache tag the helper's repository holds, and pushes
 * nothing. No tool that must run that build can be faster, so a target below it is
 * out of reach on this engine.
 */
const FLOOR = 'bare build' as const;
type Row = Tool | typeof FLOOR;

const SCENARIOS = [
  { name: 'cold', branch: 'master', change: undefined },
  { name: 'same branch, no change', branch: 'master', change: undefined },
  { name: 'new branch, source change', branch: 'feature', change: 'src' },
  { name: 'same branch again, source change', branch: 'feature', change: 'src' },
  { name: 'dependency change', branch: 'feature', change: 'deps' },
] as const;

interface Measure {
  seconds: number;
  /** The helper's own phases (its report), for "where the time goes". */
  phases?: Record<string, number>;
  cached: number;
  total: number;
  mbPulled: number;
  mbPushed: number;
  filesDigest: string;
  ok: boolean;
}

function run(file: string, argv: string[], cwd: string, env: Record<string, string> = {}): { ok: boolean; output: string } {
  const result = spawnSync(file, argv, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 900_000 });
  return { ok: result.status === 0, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

/** Steps of a seed run, each (stage, instruction) counted once, as its first build saw it (classic or BuildKit output). */
function seedSteps(output: string): { cached: number; total: number } {
  const seen = new Map<string, boolean>();
  const classic = /^Step 1\//m.test(output);
  for (const build of output.split(classic ? /(?=^Step 1\/)/m : /(?=^#0 building with)/m)) {
    for (const step of parseBuildOutput(build, classic ? 'classic' : 'buildkit', true)) {
      const key = `${step.stage}|${step.instruction}`;
      if (!seen.has(key)) seen.set(key, step.cached);
    }
  }
  return { cached: [...seen.values()].filter(Boolean).length, total: seen.size };
}

function runTool(tool: Tool, app: string, image: string, branch: string): Omit<Measure, 'seconds' | 'mbPulled' | 'mbPushed' | 'filesDigest'> {
  if (tool === 'no-cache') {
    const built = buildkitBuild(app, ['-t', image]);
    const pushed = built.ok ? run(BUILDKIT_CLI, ['push', image], app) : built;
    return { ...built, ok: built.ok && pushed.ok };
  }
  if (tool === 'seed') {
    // As users ran it: the classic builder on 20.10 (the scripts' era), the engine's default (BuildKit) on the modern ones.
    const result = run('bash', [join(ROOT, 'bench', 'seed.sh'), image, branch], app, ENGINE === 'legacy' ? { DOCKER_BUILDKIT: '0' } : { BUILDKIT_PROGRESS: 'plain' });
    return { ok: result.ok, ...seedSteps(result.output) };
  }
  if (tool === 'buildx') return buildxByHand(app, image, branch);
  const report = join(mkdtempSync(join(tmpdir(), 'drc-bench-report-')), 'r.json');
  const result = run(process.execPath, [HELPER_BUNDLE, image, '--docker', BUILDKIT_CLI, '--branch', branch, '--default-branch', 'master', '--report', report, ...HELPER_ARGS], app, { DOCKER_BUILDKIT: '1' });
  let cached = 0;
  let total = 0;
  try {
    const parsed = JSON.parse(readFileSync(report, 'utf8')) as { stages: { steps: { cached: number; total: number } | null }[] };
    for (const s of parsed.stages) {
      cached += s.steps?.cached ?? 0;
      total += s.steps?.total ?? 0;
    }
  } catch {
    // no report: the run failed
  }
  if (!result.ok) process.stderr.write(result.output.slice(-3000));
  return { ok: result.ok, cached, total, phases: helperPhases(report) };
}

function helperPhases(report: string): Record<string, number> | undefined {
  try {
    const parsed = JSON.parse(readFileSync(report, 'utf8')) as { phases: { name: string; seconds: number }[]; totalSeconds: number };
    const phases: Record<string, number> = {};
    for (const p of parsed.phases) phases[phaseKind(p.name)] = (phases[phaseKind(p.name)] ?? 0) + p.seconds;
    return phases;
  } catch {
    return undefined;
  }
}

/** The report's phase names grouped as the issue asks: resolve, build, cache export, deploy push. */
function phaseKind(name: string): string {
  if (name.startsWith('resolve') || name.startsWith('pull caches') || name === 'login') return 'resolve';
  if (name.startsWith('push caches')) return 'cache export';
  if (name.startsWith('deploy') || name === 'tag') return 'deploy push';
  // The registry-cache build pushes the deploy image itself: its phase is build + deploy.
  return name.includes('deploy push') ? 'build + deploy push' : 'build';
}

/**
 * buildx's registry cache as a user writes it by hand: one cache ref per branch with
 * the default branch as fallback, each --cache-from given only when `docker buildx
 * imagetools inspect` finds the ref (BuildKit 0.13 can drop every import when one is
 * missing). On the classic store the docker driver exports inline cache only: the
 * branch image is the cache.
 */
function buildxByHand(app: string, image: string, branch: string): { ok: boolean; output: string; cached: number; total: number } {
  const repo = image.slice(0, image.lastIndexOf(':'));
  const refs = [...new Set([branch, 'master'])].map((b) => `${repo}:cache-${b}`);
  const existing = refs.filter((ref) => run(BUILDKIT_CLI, ['buildx', 'imagetools', 'inspect', ref], app).ok);
  const registryCache = ENGINE === 'modern';
  const cacheArgs = registryCache
    ? [...existing.flatMap((ref) => ['--cache-from', `type=registry,ref=${ref}`]), '--cache-to', `type=registry,ref=${repo}:cache-${branch},mode=max,ignore-error=true`]
    : [...existing.flatMap((ref) => ['--cache-from', ref]), '--cache-to', 'type=inline', '-t', `${repo}:cache-${branch}`];
  const built = run(BUILDKIT_CLI, ['buildx', 'build', '--progress', 'plain', ...cacheArgs, '-t', image, '--push', '.'], app);
  if (!built.ok) process.stderr.write(built.output.slice(-3000));
  const steps = parseBuildOutput(built.output, 'buildkit', true);
  return { ...built, cached: steps.filter((s) => s.cached).length, total: steps.length };
}

/** Tags of a registry repository, through the registry API (a child process: this script is synchronous). */
function repoTags(repo: string): string[] {
  const [host, ...path] = repo.split('/');
  const script = 'fetch(process.argv[1]).then((r) => r.json()).then((j) => process.stdout.write(JSON.stringify(j.tags ?? [])))';
  return JSON.parse(execFileSync(process.execPath, ['-e', script, `http://${host}/v2/${path.join('/')}/tags/list`], { encoding: 'utf8', timeout: 30_000 })) as string[];
}

/** The FLOOR: `docker build` of the app with --cache-from every cache tag in the repository (not the deploy tags sN), no push. */
function bareBuild(app: string, repo: string): Omit<Measure, 'seconds' | 'mbPulled' | 'mbPushed' | 'filesDigest'> {
  const caches = repoTags(repo).filter((tag) => !/^s\d+$/.test(tag));
  // On the containerd store these are the helper's registry caches (_BRANCH), read the same way.
  return buildkitBuild(app, caches.flatMap((tag) => ['--cache-from', `${repo}:${tag}`]));
}

/** `docker build` of the app with BuildKit and plain progress, its steps counted from that output. */
function buildkitBuild(app: string, options: string[]): { ok: boolean; output: string; cached: number; total: number } {
  const built = run(BUILDKIT_CLI, ['build', ...options, '.'], app, { DOCKER_BUILDKIT: '1', BUILDKIT_PROGRESS: 'plain' });
  if (!built.ok) process.stderr.write(built.output.slice(-3000));
  const steps = parseBuildOutput(built.output, 'buildkit', ENGINE === 'modern');
  return { ...built, cached: steps.filter((s) => s.cached).length, total: steps.length };
}

function digestFiles(image: string): string {
  const files = [...imageFiles(image).entries()].sort(([a], [b]) => a.localeCompare(b));
  return createHash('sha256').update(JSON.stringify(files)).digest('hex').slice(0, 16);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function applyChange(app: string, change: 'src' | 'deps' | undefined, index: number): void {
  if (change === 'src') appendFileSync(join(app, 'src', 'main.txt'), `source change ${index}\n`);
  if (change === 'deps') appendFileSync(join(app, 'deps.txt'), `library ${index}\n`);
}

/** Runs `body` on a fresh engine: its wall time, the registry traffic it caused and, given the image it pushed, that image's files. */
function measure(body: () => Pick<Measure, 'ok' | 'cached' | 'total' | 'phases'>, repo: string, image?: string): Measure {
  wipeEngine();
  const offset = statSync(REGISTRY_LOG).size;
  const t0 = process.hrtime.bigint();
  const { ok, cached, total, phases } = body();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  // The registry writes its log line after answering; give it a moment.
  execFileSync('sleep', ['0.3']);
  // This run's repository and the base image's: other work on the machine may use the registry too.
  const traffic = registryTraffic(offset, undefined, new RegExp(`^/v2/(${repo.slice(REGISTRY.length + 1)}|drc-test/busybox)/`));
  const filesDigest = image && ok ? digestFiles(image) : image ? 'failed' : '';
  return { ok, cached, total, seconds, mbPulled: traffic.pulled / 1e6, mbPushed: traffic.pushed / 1e6, filesDigest, ...(phases ? { phases } : {}) };
}

/** One child run per engine, each in that engine's environment; then the tables joined. */
function allEngines(): void {
  const tables: string[] = [];
  let allMet = true;
  for (const engine of ENGINES) {
    const env = Object.fromEntries(
      execFileSync('bash', [join(ROOT, 'scripts', 'test-env.sh'), 'env', engine], { encoding: 'utf8' })
        .split('\n')
        .filter((line) => line.includes('='))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    execFileSync('bash', [join(ROOT, 'scripts', 'test-env.sh'), 'up', engine], { stdio: ['ignore', 'ignore', 'inherit'] });
    const child = spawnSync(process.execPath, ['--import', 'tsx', ...process.argv.slice(1), '--engine', engine], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
    const md = join(OUT, `latest-${engine}.md`);
    tables.push(readFileSync(md, 'utf8'));
    allMet &&= child.status === 0;
  }
  writeFileSync(join(OUT, 'latest.md'), `${tables.join('\n')}\n`);
  process.exitCode = allMet ? 0 : 1;
}

function main(): void {
  ensureTestEnv();
  const started = new Date();
  const results: Record<string, Record<string, Record<Row, Measure[]>>> = {};
  for (const appKind of APPS) {
    results[appKind] = {};
    for (const s of SCENARIOS) results[appKind][s.name] = { 'no-cache': [], seed: [], buildx: [], helper: [], [FLOOR]: [] };
    for (let rep = 0; rep < REPS; rep++) {
      // Rotate the tool order between repetitions so that drift hits all of them.
      const order = TOOLS.map((_, i) => TOOLS[(i + rep) % TOOLS.length] as Tool);
      for (const tool of order) {
        const app = makeApp(appKind, BASE_IMAGE);
        const repo = `${REGISTRY}/bench-${appKind}-${tool}-${rep}-${Date.now().toString(36)}/app`;
        for (const [index, scenario] of SCENARIOS.entries()) {
          applyChange(app.dir, scenario.change, index);
          const record = (row: Row, label: string, body: () => Pick<Measure, 'ok' | 'cached' | 'total' | 'phases'>, image?: string): void => {
            const entry = measure(body, repo, image);
            results[appKind]?.[scenario.name]?.[row].push(entry);
            process.stderr.write(`${ENGINE} ${appKind} rep ${rep + 1} ${label.padEnd(8)} ${scenario.name.padEnd(34)} ${entry.seconds.toFixed(1).padStart(6)}s  steps ${entry.cached}/${entry.total}  pulled ${entry.mbPulled.toFixed(1)} MB  pushed ${entry.mbPushed.toFixed(1)} MB${entry.ok ? '' : '  FAILED'}\n`);
          };
          if (tool === 'helper' && index > 0) record(FLOOR, 'floor', () => bareBuild(app.dir, repo));
          const image = `${repo}:s${index}`;
          record(tool, tool, () => runTool(tool, app.dir, image, scenario.branch), image);
        }
        cpSync(app.dir, join(tmpdir(), 'drc-bench-last-app'), { recursive: true });
      }
    }
  }
  report(results, started);
}

/**
 * The targets. Modern engines (issue 15): against buildx's registry cache written by
 * hand, and for source changes also within 0.8 s of the bare build; cold against no
 * cache. Legacy 20.10 (issue 4): against the seed, as before.
 */
interface Target {
  readonly factor: number;
  readonly vs: 'seed' | 'no-cache' | 'buildx';
  readonly pulledShare?: number;
  readonly maxPulledMb?: number;
  readonly floorSlack?: number;
}
const TARGETS: Record<string, Target> =
  ENGINE === 'legacy'
    ? {
        cold: { factor: 1.1, vs: 'no-cache' },
        'same branch, no change': { factor: 0.5, vs: 'seed', pulledShare: 0.1 },
        'new branch, source change': { factor: 0.8, vs: 'seed' },
        'same branch again, source change': { factor: 0.8, vs: 'seed' },
        'dependency change': { factor: 0.8, vs: 'seed' },
      }
    : {
        cold: { factor: 1.1, vs: 'no-cache' },
        'same branch, no change': { factor: 0.75, vs: 'buildx', maxPulledMb: 2 },
        'new branch, source change': { factor: 1.0, vs: 'buildx', floorSlack: 0.8 },
        'same branch again, source change': { factor: 1.0, vs: 'buildx', floorSlack: 0.8 },
        'dependency change': { factor: 0.8, vs: 'buildx' },
      };

/** The helper's medians on 20.10 in the benchmark of 2026-11-28 15:48: no row may get more than 10% slower. */
const LEGACY_2026_11_28: Record<string, Record<string, number>> = {
  'two-stage': { cold: 13.9, 'same branch, no change': 0.9, 'new branch, source change': 5.8, 'same branch again, source change': 5.5, 'dependency change': 14.0 },
  'five-stage': { cold: 14.0, 'same branch, no change': 1.2, 'new branch, source change': 5.9, 'same branch again, source change': 6.1, 'dependency change': 15.2 },
};

/** Whether the helper met the scenario's target, in words, and the time the target allows. */
function verdict(appKind: string, scenario: string, summaries: Partial<Record<Row, Summary>>): { met: boolean; text: string; limit: number | undefined } {
  const target = TARGETS[scenario];
  const helper = summaries.helper;
  if (!target || !helper) return { met: true, text: '', limit: undefined };
  const reference = summaries[target.vs];
  if (!reference) return { met: true, text: `no ${target.vs} row on this engine`, limit: undefined };
  let limit = target.factor * reference.seconds;
  const parts = [`<= ${target.factor.toFixed(2)}x ${target.vs} (${(helper.seconds / reference.seconds).toFixed(2)}x)`];
  const floor = summaries[FLOOR];
  if (target.floorSlack !== undefined && floor) {
    limit = Math.min(limit, floor.seconds + target.floorSlack);
    parts.push(`<= bare build + ${target.floorSlack} s (+${(helper.seconds - floor.seconds).toFixed(1)} s)`);
  }
  let met = helper.seconds <= limit;
  if (target.pulledShare !== undefined && summaries.seed) {
    met &&= helper.mbPulled <= target.pulledShare * summaries.seed.mbPulled;
    parts.push(`<= ${target.pulledShare * 100}% seed MB pulled (${((100 * helper.mbPulled) / summaries.seed.mbPulled).toFixed(1)}%)`);
  }
  if (target.maxPulledMb !== undefined) {
    met &&= helper.mbPulled <= target.maxPulledMb;
    parts.push(`<= ${target.maxPulledMb} MB pulled (${helper.mbPulled.toFixed(1)})`);
  }
  const before = ENGINE === 'legacy' ? LEGACY_2026_11_28[appKind]?.[scenario] : undefined;
  if (before !== undefined) {
    met &&= helper.seconds <= 1.1 * before;
    parts.push(`<= 1.10x the 2026-11-28 run (${(helper.seconds / before).toFixed(2)}x of ${before} s)`);
  }
  return { met, text: parts.join(', '), limit };
}

interface Summary {
  seconds: number;
  mbPulled: number;
  mbPushed: number;
  cached: number;
  total: number;
  /** undefined: no no-cache run to compare with (a run with --tools without no-cache). */
  filesEqual: boolean | undefined;
  ok: boolean;
}

const ENGINE_NAMES: Record<string, string> = {
  modern: 'modern engine: Docker 26.1.5 + buildx 0.13.1, containerd image store',
  'modern-classic': 'modern engine: Docker 26.1.5 + buildx 0.13.1, classic store (overlay2)',
  legacy: 'legacy engine: Docker 20.10.24',
};

function report(results: Record<string, Record<string, Record<Row, Measure[]>>>, started: Date): void {
  const lines: string[] = [];
  const trace: string[] = [];
  const json: Record<string, unknown>[] = [];
  let allMet = true;
  lines.push(`### ${ENGINE_NAMES[ENGINE] ?? ENGINE}`, '', `Benchmark ${started.toISOString()} on ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; medians of ${REPS} runs; each scenario on a fresh engine`);
  // The reference column: buildx by hand where it runs, else the seed.
  const vs: Tool = TOOLS.includes('buildx') ? 'buildx' : 'seed';
  for (const [appKind, scenarios] of Object.entries(results)) {
    lines.push('', `#### ${appKind}`, '');
    lines.push(`| scenario | tool | time s | vs ${vs} | steps cached | MB pulled | MB pushed | files = no-cache | target |`);
    lines.push('|---|---|---|---|---|---|---|---|---|');
    trace.push('', `#### ${appKind}: where the helper's time goes (medians, seconds)`, '', '| scenario | total | resolve | build | build + deploy push | cache export | deploy push |', '|---|---|---|---|---|---|---|');
    for (const [scenario, byTool] of Object.entries(scenarios)) {
      const rows: Row[] = byTool[FLOOR].length > 0 ? [...TOOLS, FLOOR] : [...TOOLS];
      const summaries: Partial<Record<Row, Summary>> = {};
      for (const row of rows) {
        const runs = byTool[row];
        const reference = byTool['no-cache'];
        summaries[row] = {
          seconds: median(runs.map((r) => r.seconds)),
          mbPulled: median(runs.map((r) => r.mbPulled)),
          mbPushed: median(runs.map((r) => r.mbPushed)),
          cached: median(runs.map((r) => r.cached)),
          total: median(runs.map((r) => r.total)),
          filesEqual: reference.length === 0 ? undefined : runs.every((r, i) => r.filesDigest === reference[i]?.filesDigest),
          ok: runs.every((r) => r.ok),
        };
      }
      const helper = summaries.helper;
      if (!helper) continue;
      const reference = summaries[vs] ?? helper;
      const { met, text, limit } = verdict(appKind, scenario, summaries);
      const filesMet = helper.filesEqual !== false && helper.ok;
      allMet &&= met && filesMet;
      const floor = summaries[FLOOR];
      const outOfReach = !met && floor !== undefined && limit !== undefined && floor.seconds > limit;
      for (const row of rows) {
        const s = summaries[row];
        if (!s) continue;
        const files = row === FLOOR || s.filesEqual === undefined ? '-' : s.ok ? (s.filesEqual ? 'yes' : 'NO') : 'FAILED';
        const note =
          row === 'helper'
            ? `${met && filesMet ? 'met' : 'MISSED'}: ${text}${outOfReach && floor ? `; out of reach here: the bare build alone takes ${floor.seconds.toFixed(1)} s` : ''}`
            : row === FLOOR
              ? 'lower bound: same caches, BuildKit alone, no push'
              : '';
        lines.push(`| ${scenario} | ${row === 'buildx' ? 'buildx by hand' : row} | ${s.seconds.toFixed(1)} | ${(s.seconds / reference.seconds).toFixed(2)}x | ${s.cached}/${s.total} | ${s.mbPulled.toFixed(1)} | ${s.mbPushed.toFixed(1)} | ${files} | ${note} |`);
        json.push({ engine: ENGINE, app: appKind, scenario, tool: row, ...s, ...(row === 'helper' ? { met: met && filesMet, outOfReach } : {}), runs: byTool[row] });
      }
      const phase = (kind: string): string => {
        const values = byTool.helper.map((r) => r.phases?.[kind]).filter((v): v is number => v !== undefined);
        return values.length > 0 ? median(values).toFixed(2) : '-';
      };
      trace.push(`| ${scenario} | ${helper.seconds.toFixed(2)} | ${phase('resolve')} | ${phase('build')} | ${phase('build + deploy push')} | ${phase('cache export')} | ${phase('deploy push')} |`);
    }
  }
  lines.push(...trace, '', allMet ? 'All targets met.' : 'Some targets were MISSED.');
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  mkdirSync(OUT, { recursive: true });
  const payload = JSON.stringify({ engine: ENGINE, started: started.toISOString(), reps: REPS, cores: cpus().length, results: json, allMet }, null, 2);
  writeFileSync(join(OUT, `latest-${ENGINE}.json`), `${payload}\n`);
  writeFileSync(join(OUT, `latest-${ENGINE}.md`), `${text}\n`);
  process.exitCode = allMet ? 0 : 1;
}

if (ENGINE_ARG === undefined) allEngines();
else main();
