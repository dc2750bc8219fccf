/**
 * The side-by-side benchmark: the original scripts' algorithm (bench/seed.sh), a
 * plain no-cache build, and this project's helper, on the same apps and the same
 * sequence of changes, each scenario on a fresh engine against the loopback
 * registry. Prints one table (medians of --reps runs, ratios against the seed) and
 * writes bench/results/latest.json.
 *
 *   npm run bench [-- --reps 3 --apps two-stage,five-stage]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBuildOutput } from '../src/engine/build-output.ts';
import { BASE_IMAGE, BUILDKIT_CLI, BUNDLE, REGISTRY, REGISTRY_LOG, ROOT, ensureTestEnv, imageFiles, registryTraffic, wipeEngine } from '../test/support/env.ts';
import { makeApp } from './apps.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => (args.includes(name) ? (args[args.indexOf(name) + 1] ?? fallback) : fallback);
const REPS = Number(option('--reps', '3'));
const APPS = option('--apps', 'two-stage,five-stage').split(',') as ('two-stage' | 'five-stage')[];

const TOOLS = ['no-cache', 'seed', 'helper'] as const;
type Tool = (typeof TOOLS)[number];
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

/** Steps of a seed run, each (stage, instruction) counted once, as its first build saw it. */
function seedSteps(output: string): { cached: number; total: number } {
  const seen = new Map<string, boolean>();
  for (const build of output.split(/(?=^Step 1\/)/m)) {
    for (const step of parseBuildOutput(build, 'classic')) {
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
    const result = run('bash', [join(ROOT, 'bench', 'seed.sh'), image, branch], app, { DOCKER_BUILDKIT: '0' });
    return { ok: result.ok, ...seedSteps(result.output) };
  }
  const report = join(mkdtempSync(join(tmpdir(), 'drc-bench-report-')), 'r.json');
  const result = run(process.execPath, [BUNDLE, image, '--docker', BUILDKIT_CLI, '--branch', branch, '--default-branch', 'master', '--report', report], app, { DOCKER_BUILDKIT: '1' });
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
  return { ok: result.ok, cached, total };
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
  return buildkitBuild(app, caches.flatMap((tag) => ['--cache-from', `${repo}:${tag}`]));
}

/** `docker build` of the app with BuildKit and plain progress, its steps counted from that output. */
function buildkitBuild(app: string, options: string[]): { ok: boolean; output: string; cached: number; total: number } {
  const built = run(BUILDKIT_CLI, ['build', ...options, '.'], app, { DOCKER_BUILDKIT: '1', BUILDKIT_PROGRESS: 'plain' });
  if (!built.ok) process.stderr.write(built.output.slice(-3000));
  const steps = parseBuildOutput(built.output, 'buildkit');
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
function measure(body: () => Pick<Measure, 'ok' | 'cached' | 'total'>, image?: string): Measure {
  wipeEngine();
  const offset = statSync(REGISTRY_LOG).size;
  const t0 = process.hrtime.bigint();
  const { ok, cached, total } = body();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  // The registry writes its log line after answering; give it a moment.
  execFileSync('sleep', ['0.3']);
  const traffic = registryTraffic(offset);
  const filesDigest = image && ok ? digestFiles(image) : image ? 'failed' : '';
  return { ok, cached, total, seconds, mbPulled: traffic.pulled / 1e6, mbPushed: traffic.pushed / 1e6, filesDigest };
}

function main(): void {
  ensureTestEnv();
  const started = new Date();
  const results: Record<string, Record<string, Record<Row, Measure[]>>> = {};
  for (const appKind of APPS) {
    results[appKind] = {};
    for (const s of SCENARIOS) results[appKind][s.name] = { 'no-cache': [], seed: [], helper: [], [FLOOR]: [] };
    for (let rep = 0; rep < REPS; rep++) {
      // Rotate the tool order between repetitions so that drift hits all of them.
      const order = TOOLS.map((_, i) => TOOLS[(i + rep) % TOOLS.length] as Tool);
      for (const tool of order) {
        const app = makeApp(appKind, BASE_IMAGE);
        const repo = `${REGISTRY}/bench-${appKind}-${tool}-${rep}-${Date.now().toString(36)}/app`;
        for (const [index, scenario] of SCENARIOS.entries()) {
          applyChange(app.dir, scenario.change, index);
          const record = (row: Row, label: string, body: () => Pick<Measure, 'ok' | 'cached' | 'total'>, image?: string): void => {
            const entry = measure(body, image);
            results[appKind]?.[scenario.name]?.[row].push(entry);
            process.stderr.write(`${appKind} rep ${rep + 1} ${label.padEnd(8)} ${scenario.name.padEnd(34)} ${entry.seconds.toFixed(1).padStart(6)}s  steps ${entry.cached}/${entry.total}  pulled ${entry.mbPulled.toFixed(1)} MB  pushed ${entry.mbPushed.toFixed(1)} MB${entry.ok ? '' : '  FAILED'}\n`);
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

/** The issue's targets: the helper's time at most `factor` times the reference's; for no change also at most `pulledShare` of the seed's MB pulled. */
const TARGETS: Record<string, { readonly factor: number; readonly vs: 'seed' | 'no-cache'; readonly pulledShare?: number }> = {
  cold: { factor: 1.1, vs: 'no-cache' },
  'same branch, no change': { factor: 0.5, vs: 'seed', pulledShare: 0.1 },
  'new branch, source change': { factor: 0.8, vs: 'seed' },
  'same branch again, source change': { factor: 0.8, vs: 'seed' },
  'dependency change': { factor: 0.8, vs: 'seed' },
};

/** Whether the helper met the scenario's target, in words, and the time the target allows. */
function verdict(scenario: string, summaries: Record<Tool, Summary>): { met: boolean; text: string; limit: number | undefined } {
  const target = TARGETS[scenario];
  if (!target) return { met: true, text: '', limit: undefined };
  const { helper, seed } = summaries;
  const reference = summaries[target.vs];
  const limit = target.factor * reference.seconds;
  const parts = [`<= ${target.factor.toFixed(2)}x ${target.vs === 'seed' ? 'seed time' : 'no-cache'} (${(helper.seconds / reference.seconds).toFixed(2)}x)`];
  let met = helper.seconds <= limit;
  if (target.pulledShare !== undefined) {
    met &&= helper.mbPulled <= target.pulledShare * seed.mbPulled;
    parts.push(`<= ${target.pulledShare * 100}% seed MB pulled (${((100 * helper.mbPulled) / seed.mbPulled).toFixed(1)}%)`);
  }
  return { met, text: parts.join(', '), limit };
}

interface Summary {
  seconds: number;
  mbPulled: number;
  mbPushed: number;
  cached: number;
  total: number;
  filesEqual: boolean;
  ok: boolean;
}

function report(results: Record<string, Record<string, Record<Row, Measure[]>>>, started: Date): void {
  const lines: string[] = [];
  const json: Record<string, unknown>[] = [];
  let allMet = true;
  lines.push(`Benchmark ${started.toISOString()} on ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; medians of ${REPS} runs; each scenario on a fresh engine`);
  for (const [appKind, scenarios] of Object.entries(results)) {
    lines.push('', `## ${appKind}`, '');
    lines.push('| scenario | tool | time s | vs seed | steps cached | MB pulled | MB pushed | files = no-cache | target |');
    lines.push('|---|---|---|---|---|---|---|---|---|');
    for (const [scenario, byTool] of Object.entries(scenarios)) {
      const rows: Row[] = byTool[FLOOR].length > 0 ? [...TOOLS, FLOOR] : [...TOOLS];
      const summaries = {} as Record<Row, Summary>;
      for (const row of rows) {
        const runs = byTool[row];
        const reference = byTool['no-cache'];
        summaries[row] = {
          seconds: median(runs.map((r) => r.seconds)),
          mbPulled: median(runs.map((r) => r.mbPulled)),
          mbPushed: median(runs.map((r) => r.mbPushed)),
          cached: median(runs.map((r) => r.cached)),
          total: median(runs.map((r) => r.total)),
          filesEqual: runs.every((r, i) => r.filesDigest === reference[i]?.filesDigest),
          ok: runs.every((r) => r.ok),
        };
      }
      const { met, text, limit } = verdict(scenario, summaries);
      const filesMet = summaries.helper.filesEqual && summaries.helper.ok;
      allMet &&= met && filesMet;
      const floor = byTool[FLOOR].length > 0 ? summaries[FLOOR] : undefined;
      const outOfReach = !met && floor !== undefined && limit !== undefined && floor.seconds > limit;
      for (const row of rows) {
        const s = summaries[row];
        const files = row === FLOOR ? '-' : s.ok ? (s.filesEqual ? 'yes' : 'NO') : 'FAILED';
        const verdict =
          row === 'helper'
            ? `${met && filesMet ? 'met' : 'MISSED'}: ${text}${outOfReach ? `; out of reach here: the bare build alone takes ${(floor.seconds / summaries.seed.seconds).toFixed(2)}x seed` : ''}`
            : row === FLOOR
              ? 'lower bound: same caches, BuildKit alone, no push'
              : '';
        lines.push(
          `| ${scenario} | ${row} | ${s.seconds.toFixed(1)} | ${(s.seconds / summaries.seed.seconds).toFixed(2)}x | ${s.cached}/${s.total} | ${s.mbPulled.toFixed(1)} | ${s.mbPushed.toFixed(1)} | ${files} | ${verdict} |`,
        );
        json.push({ app: appKind, scenario, tool: row, ...s, ...(row === 'helper' ? { met: met && filesMet, outOfReach } : {}), runs: byTool[row] });
      }
    }
  }
  lines.push('', allMet ? 'All targets met.' : 'Some targets were MISSED.');
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const payload = JSON.stringify({ started: started.toISOString(), reps: REPS, cores: cpus().length, results: json, allMet }, null, 2);
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.json'), `${payload}\n`);
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.md'), `${text}\n`);
}

main();
