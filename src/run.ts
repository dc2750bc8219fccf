import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { digestBuildInputs } from './context-digest.js';
import { currentBuildxBuilder } from './engine/buildx-config.js';
import { type PartInputs, partInputs } from './dockerfile/inputs.js';
import { BUILD_INPUTS, partKey } from './strategies/export-timing.js';
import { buildTargetThenExport, buildStageByStage, type StrategyContext } from './strategies/per-stage.js';
import { CacheOps } from './registry/cache-ops.js';
import { EngineUploader } from './publish/cache-uploader.js';
import { ClassicStoreUploads } from './strategies/classic-store/uploads.js';
import { gitBranch, type RunContext } from './context.js';
import { type Docker, type DockerCapabilities, displayInvocation } from './engine/docker.js';
import { type Dockerfile, findStage, parseDockerfile, type Stage, stageCheckpoint, stageHistoryEntries, stageStepCount, stagesFor, withStageNames } from './dockerfile/dockerfile.js';
import { withDockerfile, writeDockerfileCopy } from './dockerfile/copy.js';
import { ExitCode, tail, UserError, inputError } from './errors.js';
import type { Runner } from './engine/exec.js';
import { formatRef, type ImageRef, parseImageRef } from './plan/image-ref.js';
import { savedSeconds } from './report/history.js';
import { pullResolved, resolve } from './registry/resolve.js';
import { deploy, login } from './publish/deploy.js';
import { DeployHandoff } from './publish/deploy-handoff.js';
import { PhaseTraffic } from './report/phase-traffic.js';
import type { Logger } from './log.js';
import type { Options } from './cli/options.js';
import { secretArgWarning } from './redact.js';
import { buildWithRegistryCache, type RegistryCacheContext, resolveRegistryCaches } from './strategies/registry-cache.js';
import { type ChosenStrategy, chooseStrategy, type StrategyKind } from './plan/strategy.js';
import { dryRunCommands, makePlan, type Plan, type PlannedStage, type StageInput } from './plan/plan.js';
import type { RegistryApi } from './registry/registry.js';
import type { RunReport, StageReport } from './report/report.js';

/** How long cache pushes may go on after SIGINT/SIGTERM. */
const INTERRUPT_GRACE_MS = 60_000;

export interface RunDeps {
  readonly docker: Docker;
  readonly registry: RegistryApi;
  readonly runner: Runner;
  readonly log: Logger;
  readonly ctx: RunContext;
  /** Aborted on SIGINT/SIGTERM: the running build stops, finished caches are still pushed. */
  readonly cancel: AbortSignal;
  readonly runId: string;
  /** The registry password, when --password-stdin was given (read by the CLI). */
  readonly stdinPassword: string | undefined;
  readonly now?: () => number;
}

interface StageInputs {
  readonly inputs: StageInput[];
  /** The Dockerfile with names given to its unnamed stages, to build in its place; undefined when none needs one. */
  readonly namedText: string | undefined;
  /** What the build and each stage's early-export parts read (export-timing.ts); empty with --stages. */
  readonly parts: ReadonlyMap<string, PartInputs | undefined>;
}

/**
 * Stages to build, from --stages or from the Dockerfile's graph. docker builds a
 * stage alone only by name (--target), so an unnamed stage that the target needs
 * gets BuildKit's own label for it, stage-N, in a copy of the Dockerfile: it is
 * then built, cached and reported like a named one.
 */
async function stageInputs(options: Options): Promise<StageInputs> {
  let text: string;
  try {
    text = await readFile(options.dockerfile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw inputError(`the Dockerfile ${options.dockerfile} is a folder`, 'point -f at the Dockerfile itself');
    throw inputError(
      `cannot read the Dockerfile ${options.dockerfile} (${code ?? (error as Error).message})`,
      'run the helper in the build context, or pass -f PATH and the context folder',
    );
  }
  const dockerfile = parseDockerfile(text, options.buildArgs, options.dockerfile);
  if (options.stages !== undefined) {
    // --stages overrides detection: each listed stage needs those before it.
    const keys = [...options.stages];
    const targetKey = options.target?.toLowerCase() ?? keys[keys.length - 1] ?? '';
    const ordered = [...keys.filter((k) => k !== targetKey), targetKey];
    const chosen = ordered.map((key) => findStage(dockerfile, key, options.dockerfile));
    // The last stage of the file builds without --target; other unnamed ones need a name.
    const lastStage = dockerfile.stages[dockerfile.stages.length - 1];
    const given = namesFor(dockerfile, chosen.filter((s) => s.name === undefined && s !== lastStage).map((s) => s.index));
    const inputs = chosen.map((stage, i) => ({ key: ordered[i] ?? stage.key, named: stage.name !== undefined, targetName: given.get(stage.index), deps: ordered.slice(0, i), isLast: false }));
    return { inputs, namedText: given.size > 0 ? withStageNames(text, given) : undefined, parts: new Map() };
  }
  const last = dockerfile.stages[dockerfile.stages.length - 1];
  const target = options.target === undefined ? last : findStage(dockerfile, options.target, options.dockerfile);
  if (target === undefined) throw inputError(`${options.dockerfile} has no stages`);
  if (target.name === undefined && target !== last) {
    throw inputError(`the target stage ${target.index} has no name`, 'name it with FROM ... AS NAME to build it with --target');
  }
  const needed = stagesFor(dockerfile, target);
  const given = namesFor(dockerfile, needed.filter((s) => s.name === undefined && s !== target).map((s) => s.index));
  const buildText = given.size > 0 ? withStageNames(text, given) : text;
  const keyOf = (index: number): string => dockerfile.stages[index]?.key ?? String(index);
  const inputs = needed.map((s) => ({
    key: s.key,
    named: s.name !== undefined,
    targetName: given.get(s.index),
    deps: s.deps.map(keyOf),
    baseStage: s.baseStage === undefined ? null : keyOf(s.baseStage),
    isLast: s === last,
    baseImage: rootImage(dockerfile, s),
    checkpoint: stageCheckpoint(buildText, s.index, fromIsStep(s)),
    buildkitSteps: stageStepCount(text, s.index, fromIsStep(s)),
    ownSteps: stageStepCount(text, s.index, false),
    historyEntries: stageHistoryEntries(text, s.index),
  }));
  const parseBuilt = given.size > 0 ? parseDockerfile(buildText, options.buildArgs, options.dockerfile) : dockerfile;
  const parts = new Map<string, PartInputs | undefined>([[BUILD_INPUTS, partInputs(buildText, parseBuilt, target.index)]]);
  for (const [i, s] of needed.entries()) {
    const cutLine = inputs[i]?.checkpoint?.cutLine;
    if (cutLine !== undefined) parts.set(partKey(s.key, 'cut'), partInputs(buildText, parseBuilt, s.index, cutLine));
    parts.set(partKey(s.key, 'whole'), partInputs(buildText, parseBuilt, s.index));
  }
  return { inputs, namedText: given.size > 0 ? buildText : undefined, parts };
}

/** stage-N for each unnamed stage given by index, unless another stage already has that name. */
function namesFor(dockerfile: Dockerfile, indexes: readonly number[]): Map<number, string> {
  const taken = new Set(dockerfile.stages.map((s) => s.name));
  return new Map(indexes.filter((i) => !taken.has(`stage-${i}`)).map((i) => [i, `stage-${i}`]));
}

/** BuildKit shows FROM as a step only for an image: not for scratch, not for another stage. */
function fromIsStep(stage: Stage): boolean {
  return stage.baseStage === undefined && stage.base.toLowerCase() !== 'scratch';
}

/** The image at the bottom of a stage's FROM chain, if it parses as a reference (not scratch). */
function rootImage(dockerfile: Dockerfile, stage: Stage): ImageRef | undefined {
  let current: Stage | undefined = stage;
  for (let hops = 0; current && current.baseStage !== undefined && hops <= dockerfile.stages.length; hops++) current = dockerfile.stages[current.baseStage];
  if (!current || current.baseStage !== undefined || current.base.toLowerCase() === 'scratch') return undefined;
  try {
    return parseImageRef(current.base);
  } catch {
    return undefined;
  }
}

async function findBranch(options: Options, deps: RunDeps): Promise<string | undefined> {
  if (options.branch !== undefined) return options.branch;
  if (deps.ctx.ciBranch !== undefined) return deps.ctx.ciBranch;
  if (deps.ctx.ciTag !== undefined) return undefined;
  return gitBranch(deps.runner, options.context);
}

function pickStrategy(options: Options, ctx: RunContext, caps: DockerCapabilities | undefined): ChosenStrategy {
  const chosen = chooseStrategy({ requested: options.strategy, builder: options.builder, dockerBuildkit: ctx.dockerBuildkit, caps });
  if ('error' in chosen) {
    const named = options.buildxBuilder === undefined ? '' : ` (buildx builder "${options.buildxBuilder}": does it exist? docker buildx ls)`;
    throw new UserError('usage', `${chosen.error}${named}`, { hint: 'use --strategy auto to let the helper choose' });
  }
  if (options.buildxBuilder !== undefined && caps && !caps.hasBuildx) {
    throw new UserError('usage', `the buildx builder "${options.buildxBuilder}" cannot be used: docker buildx inspect ${options.buildxBuilder} failed`, { hint: 'create it (docker buildx create --name NAME) or drop --builder / BUILDX_BUILDER' });
  }
  return chosen;
}

async function probeDocker(options: Options, deps: RunDeps): Promise<DockerCapabilities> {
  const caps = await deps.docker.capabilities(30_000, options.buildxBuilder, () => currentBuildxBuilder(deps.ctx.dockerConfigDir));
  if ('clientVersion' in caps) return caps;
  if (caps.notFound) {
    throw new UserError('dockerMissing', `the docker CLI "${options.docker}" was not found`, {
      hint: 'install the docker CLI, or point --docker at it (on CircleCI use an image that has it, e.g. cimg/base or cimg/node)',
    });
  }
  throw new UserError('engineUnreachable', 'the Docker engine does not answer', {
    hint: 'start it (on CircleCI add the setup_remote_docker step), or check DOCKER_HOST',
    detail: tail(caps.stderr || caps.stdout, 5),
  });
}

function emptyStageReport(stage: PlannedStage): StageReport {
  return { stage: stage.key, isTarget: stage.isTarget, cacheUsed: null, lookups: [], status: 'not-built', steps: null, buildSeconds: null, uncachedStepSeconds: null, cachePush: [], cachedInstructions: [], savedSeconds: null, mbPushed: null };
}

/** Runs the whole job: resolve, build stage by stage, push caches (always), deploy. */
export async function execute(options: Options, deps: RunDeps): Promise<RunReport> {
  const now = deps.now ?? Date.now;
  const started = now();
  // Asked first: the answer (tens of milliseconds) comes while the inputs are read and the caches looked up.
  const probing = options.dryRun ? probeDocker(options, deps).catch(() => undefined) : probeDocker(options, deps);
  probing.catch(() => undefined);
  const branch = await findBranch(options, deps);
  const { inputs, namedText, parts } = await stageInputs(options);
  // Read beside the probe and the lookups; only the registry-cache strategy waits for it.
  // Only the registry-cache strategy reads them: skipped when the run cannot take it or writes no cache.
  const digestsUsed = !options.dryRun && options.pushCache && (options.strategy === 'auto' || options.strategy === 'registry-cache');
  const digests = !digestsUsed ? Promise.resolve(new Map<string, string | undefined>()) : digestBuildInputs({ dockerfile: options.dockerfile, context: options.context, target: options.target, passthrough: options.passthrough }, parts);
  const copy = namedText === undefined ? undefined : await writeDockerfileCopy(namedText, options.dockerfile, 'drc-dockerfile-');
  try {
    const passthrough = copy ? withDockerfile(options.passthrough, copy.path) : options.passthrough;
    return await runStages(options, deps, { started, probing, branch, inputs, passthrough, digests });
  } finally {
    await copy?.remove();
  }
}

interface Prepared {
  readonly started: number;
  readonly probing: Promise<DockerCapabilities | undefined>;
  readonly branch: string | undefined;
  readonly inputs: readonly StageInput[];
  /** The user's docker build options; --file names the copy of the Dockerfile when one is built instead. */
  readonly passthrough: readonly string[];
  /** Digests of what the build and its parts read (context-digest.ts). */
  readonly digests: Promise<ReadonlyMap<string, string | undefined>>;
}

async function runStages(options: Options, deps: RunDeps, prepared: Prepared): Promise<RunReport> {
  const now = deps.now ?? Date.now;
  const { log } = deps;
  const { started, probing, branch, inputs, passthrough, digests } = prepared;
  const timeoutMs = options.timeoutSeconds * 1000;
  const planFor = (strategy: StrategyKind, deferTargetInlineCache = false): Plan =>
    makePlan({
      image: options.image,
      extraTags: options.extraTags,
      cacheRepo: options.cacheRepo,
      stages: inputs,
      branch,
      defaultBranches: options.defaultBranches,
      updateSharedCache: options.updateSharedCache,
      push: options.push,
      pushCache: options.pushCache,
      builder: strategy === 'classic' ? 'classic' : 'buildkit',
      strategy,
      buildxBuilder: options.buildxBuilder,
      cacheCompression: options.cacheCompression,
      deferTargetInlineCache,
      revealBuildArgs: options.verbose ? options.showBuildArgs : [],
      runId: deps.runId,
      passthrough,
      // Absolute: the docker CLI keys BuildKit's copy of the context on the path as given, so
      // two runs at once on one engine, each with context ".", overwrote each other's sources.
      context: resolvePath(options.context),
    });
  // The cache tags looked up do not depend on the builder: the plan is made again once it is known.
  let plan = planFor('inline');

  const report: RunReport = {
    version: 1,
    image: formatRef(options.image),
    branch: branch ?? null,
    builder: plan.builder,
    strategy: null,
    engine: null,
    stages: plan.stages.map(emptyStageReport),
    deploy: plan.deploy.map((ref) => ({ ref: formatRef(ref), action: 'not-run' as const })),
    phases: [],
    retries: 0,
    warnings: [],
    notes: [...plan.notes],
    outcome: 'success',
    exitCode: ExitCode.ok,
    totalSeconds: 0,
  };
  let reason = '';
  // Measured on Docker 26's classic store (docs/engines.md): its docker push still gzips at
  // ~26 MB/s, so the direct and early uploads stay (cold 12.3-12.9 s against 15.5-14.3 s
  // with docker push alone), and its BuildKit still drops inline-cache links that cost hits.
  let classicStore = true;
  const useBuilder = (caps: DockerCapabilities | undefined): void => {
    const chosen = pickStrategy(options, deps.ctx, caps);
    // buildx's BuildKit on the classic store: see deferredInlineCache (per-stage.ts).
    plan = planFor(chosen.kind, chosen.kind === 'inline' && caps?.hasBuildx === true);
    classicStore = caps?.imageStore !== 'containerd';
    reason = chosen.reason;
    report.builder = plan.builder;
    report.strategy = chosen.kind;
    report.engine = caps ? engineLine(caps) : null;
  };
  for (const note of plan.notes) log.info(`note: ${note}`);
  const secretArgs = secretArgWarning([...options.buildArgs.keys()]);
  if (secretArgs) log.warn(secretArgs);

  if (options.dryRun) {
    useBuilder(await probing);
    printDryRun(plan, options, reason);
    report.totalSeconds = (now() - started) / 1000;
    return report;
  }

  const ops = new CacheOps(deps.docker, deps.registry, log, { attempts: options.retries, baseDelayMs: 500, maxDelayMs: 8000 }, timeoutMs);
  const timed = async <T>(name: string, body: () => Promise<T>): Promise<T> => {
    const t0 = now();
    try {
      return await log.phase(name, body);
    } finally {
      report.phases.push({ name, seconds: (now() - t0) / 1000, mbPulled: null, mbPushed: null });
    }
  };
  const traffic = new PhaseTraffic();
  const finish = (): RunReport => {
    traffic.fill(report);
    report.retries = ops.retries;
    report.warnings = [...log.warnings];
    report.totalSeconds = (now() - started) / 1000;
    return report;
  };

  if (options.login) {
    // docker login goes through the engine (one that does not answer is reported as that first), and the lookups need it.
    useBuilder(await probing);
    await timed('login', () => login(options, deps, timeoutMs));
  } else {
    // The registry lookups start while the engine answers the probe; they report nothing until resolve reads them.
    // Both kinds of cache tag: the strategy is known only once the engine has answered.
    ops.prefetchLookups(plan.stages.flatMap((stage) => [...stage.candidates, ...stage.registryCandidates].map((c) => c.ref)));
    useBuilder(await probing);
  }
  log.info(`strategy: ${plan.strategy} (${reason})`);
  if (plan.strategy === 'registry-cache') {
    const registryContext: RegistryCacheContext = { plan, cli: options.docker, report, docker: deps.docker, ops, log, cancel: deps.cancel, traffic, timeoutMs, timed, digests };
    const found = await timed('resolve caches', () => resolveRegistryCaches(registryContext));
    const { failure, deployError } = await buildWithRegistryCache(registryContext, found);
    await traffic.settled();
    return endOfRun(deps, report, finish, failure, deployError);
  }
  const resolved = await timed('resolve caches', () => resolve(plan, ops, report, log));
  if (plan.builder === 'classic') await timed('pull caches', () => pullResolved(plan, resolved, ops, report, log, (moved) => traffic.add('pull caches', moved)));

  const target = plan.stages[plan.stages.length - 1];
  const deploys = new DeployHandoff();
  if (plan.push && target) deploys.expect(formatRef(target.localRef), plan.deploy);
  // The classic image store's upload machinery; on the containerd store (--strategy inline there)
  // docker save gives compressed layers, which the direct upload cannot send.
  const classicUploads = classicStore ? new ClassicStoreUploads(deps.docker, deps.registry, ops, log, timeoutMs, options.cacheUpload) : undefined;
  const uploader = classicUploads ?? new EngineUploader(ops);
  const strategyContext: StrategyContext = { plan, cli: options.docker, report, resolved, docker: deps.docker, ops, log, cancel: deps.cancel, uploader, early: classicUploads, deploys, traffic, inlineCacheDropped: new Set(), timed };
  // BuildKit: one target build with every cache, then each changed stage exported from it; classic: stage by stage.
  const outcome = plan.builder === 'buildkit' ? await buildTargetThenExport(strategyContext) : await buildStageByStage(strategyContext);
  const { built, pushes, failure } = outcome;
  // The deploy push runs beside the cache pushes; the target's cache waits for it (deploy-handoff.ts).
  const deploying = !failure && !deps.cancel.aborted && target && built.has(target.key)
    ? timed(plan.push ? 'deploy' : 'tag', () => deploy(plan, target, options, deps, ops, report, { handoff: deploys, traffic })).finally(() => deploys.end())
    : undefined;
  if (!deploying) deploys.end();

  // Reads cache image histories from the registry only: no need to wait for the pushes.
  const savings = estimateSavings(report, ops, plan);
  await timed('push caches', async () => {
    if (pushes.length === 0) log.info('no stage cache to write');
    const all = Promise.all(pushes);
    if (!deps.cancel.aborted) return void (await all);
    // Stopped by a signal: CircleCI kills the job soon after, so the pushes get a bounded grace period.
    const graceMs = Math.min(timeoutMs, INTERRUPT_GRACE_MS);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), graceMs);
    });
    const result = await Promise.race([all.then(() => 'done' as const), expired]);
    clearTimeout(timer);
    if (result === 'expired') log.warn(`cache pushes did not finish within ${graceMs / 1000}s of the signal; stopping anyway`);
  });
  const deployError = deploying ? await deploying : undefined;
  await Promise.all([savings, keepLocalImages(plan, built, deps), traffic.settled()]);

  return endOfRun(deps, report, finish, failure, deployError);
}

/** Maps how the run ended to the report's outcome and exit code; throws for every ending but success. */
function endOfRun(deps: RunDeps, report: RunReport, finish: () => RunReport, failure: UserError | undefined, deployError: UserError | undefined): RunReport {
  if (deps.cancel.aborted) {
    report.outcome = 'interrupted';
    const signal = String(deps.cancel.reason ?? 'SIGTERM');
    const interrupted = new UserError(signal === 'SIGINT' ? 'interrupted' : 'terminated', `stopped by ${signal}: the caches of the finished stages were pushed`);
    report.exitCode = interrupted.exitCode;
    throw Object.assign(interrupted, { report: finish() });
  }
  if (failure) {
    report.outcome = 'build-failed';
    report.exitCode = failure.exitCode;
    throw Object.assign(failure, { report: finish() });
  }
  if (deployError) {
    report.outcome = 'deploy-failed';
    report.exitCode = deployError.exitCode;
    throw Object.assign(deployError, { report: finish() });
  }
  return finish();
}

function engineLine(caps: DockerCapabilities): string {
  const buildx = caps.hasBuildx ? `, buildx${caps.buildxDriver ? ` (${caps.buildxDriver} driver)` : ''}` : '';
  const store = caps.imageStore ? `, ${caps.imageStore} image store` : '';
  return `client ${caps.clientVersion}, server ${caps.serverVersion}${buildx}${store}`;
}

function printDryRun(plan: Plan, options: Options, reason: string): void {
  const out = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  out(`# dry run: strategy ${plan.strategy} (${reason}), ${plan.builder} builder, branch ${plan.branch ?? '(none)'}; nothing is run`);
  out('# assumed: the most specific cache of each stage exists (the first tag looked for)');
  for (const phase of dryRunCommands(plan)) {
    out(`\n# ${phase.title}`);
    for (const invocation of phase.invocations) out(displayInvocation(options.docker, invocation));
  }
}


/** Fills each stage's time-saved estimate from the history of the cache it used. */
async function estimateSavings(report: RunReport, ops: CacheOps, plan: Plan): Promise<void> {
  await Promise.all(
    report.stages.map(async (stage) => {
      if (!stage.cacheUsed || stage.cachedInstructions.length === 0) return;
      const own = plan.stages.find((s) => s.key === stage.stage)?.historyEntries;
      const durations = await ops.stepDurations(parseImageRef(stage.cacheUsed.ref), own);
      if (durations) stage.savedSeconds = savedSeconds(stage.cachedInstructions, durations);
    }),
  );
}

/** Removes the run-unique local tags; the builds tagged each image with its stable tag too, which keeps it. */
async function keepLocalImages(plan: Plan, built: ReadonlySet<string>, deps: RunDeps): Promise<void> {
  const runTags = plan.stages.filter((stage) => built.has(stage.key)).map((stage) => formatRef(stage.localRef));
  if (runTags.length > 0) await deps.docker.removeTags(runTags);
}
