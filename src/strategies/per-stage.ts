import { buildkitLabel, countSteps, parseBuildOutput, type BuildStep, type StepCount } from '../engine/build-output.js';
import type { CacheOps } from '../registry/cache-ops.js';
import type { DeployHandoff } from '../publish/deploy-handoff.js';
import type { Moved, PhaseTraffic } from '../report/phase-traffic.js';
import { buildkitFetches, bytesOfShortIds, fetchedBytes, pullCompleteIds } from '../report/transfers.js';
import { type CacheSources, pushStageCache, sameLayers } from '../publish/cache-push.js';
import { checkpointLabels, CheckpointWatch, earlyPart } from '../engine/checkpoint-watch.js';
import { uploadCheckpoint } from './classic-store/checkpoint.js';
import { type Docker, type DockerInvocation, displayInvocation } from '../engine/docker.js';
import type { RunResult } from '../engine/exec.js';
import { tail, UserError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatRef, type ImageRef } from '../plan/image-ref.js';
import { buildInvocation, type BuilderKind, type CacheCandidate, type Plan, type PlannedStage, type Resolution } from '../plan/plan.js';
import type { RunReport, StageReport } from '../report/report.js';
import { StageWatcher } from '../engine/stage-watch.js';
import type { CacheUploader } from '../publish/cache-uploader.js';
import type { ClassicStoreUploads } from './classic-store/uploads.js';

export interface StrategyContext {
  readonly plan: Plan;
  readonly cli: string;
  readonly report: RunReport;
  readonly resolved: Resolution;
  readonly docker: Docker;
  readonly ops: CacheOps;
  readonly log: Logger;
  readonly cancel: AbortSignal;
  readonly uploader: CacheUploader;
  /** The classic store's early uploads of a stage's dependency layers (classic-store/checkpoint.ts); undefined on the containerd store. */
  readonly early: ClassicStoreUploads | undefined;
  readonly deploys?: DeployHandoff;
  readonly traffic?: PhaseTraffic;
  /** Stages built without inline cache after the engine failed to write it (execBuild). */
  readonly inlineCacheDropped: Set<string>;
  timed<T>(name: string, body: () => Promise<T>): Promise<T>;
}

export interface BuildOutcome {
  /** Stages whose image this run has locally (built or exported). */
  readonly built: Set<string>;
  /** Cache pushes under way. */
  readonly pushes: Promise<void>[];
  failure: UserError | undefined;
}

/**
 * The docker driver on the classic image store (Docker 26-28) sometimes fails a build
 * whose steps were cache hits while it writes the image's inline cache: "failed to find
 * blob sha256:... in layers" ("preparing layers for inline cache"). The image itself is
 * fine; only its cache metadata cannot be written. Such a build runs once more without
 * BUILDKIT_INLINE_CACHE (every step is a local hit by then), and the stage's cache tag
 * is left as it was: an image without inline cache would serve no later build.
 */
const INLINE_BLOB_FAULT = /failed to find blob sha256:[0-9a-f]+ in layers/;

async function execBuild(ctx: StrategyContext, stage: PlannedStage, invocation: DockerInvocation, options: Parameters<Docker['exec']>[1]): Promise<RunResult> {
  const result = await ctx.docker.exec(invocation, options);
  const at = invocation.args.indexOf('BUILDKIT_INLINE_CACHE=1');
  if (result.exitCode === 0 || at < 1 || !INLINE_BLOB_FAULT.test(result.all) || ctx.cancel.aborted) return result;
  const fault = INLINE_BLOB_FAULT.exec(result.all)?.[0] ?? '';
  ctx.log.warn(`BuildKit could not write the inline cache of stage ${stage.key} (${fault}, a fault of the docker driver on the classic image store); built again without it, and its cache tag is left as it was`);
  ctx.inlineCacheDropped.add(stage.key);
  const args = [...invocation.args.slice(0, at - 1), ...invocation.args.slice(at + 1)];
  const again = await ctx.docker.exec({ ...invocation, args }, options);
  return { ...again, all: `${result.all}\n${again.all}` };
}

/** What each stage's cache write ended on (the pushed tag, or the cache kept), by stage key. */
type Written = Map<string, Promise<CacheCandidate | undefined>>;

/** Starts a stage's cache write and records it, so later stages can repair from it. */
function startCacheWrite(ctx: StrategyContext, outcome: BuildOutcome, written: Written, stage: PlannedStage, stageReport: StageReport, knownUnchanged: boolean, sameAs?: CacheCandidate): void {
  const source = sameAs ?? ctx.resolved.get(stage.key)?.[0];
  if (ctx.inlineCacheDropped.has(stage.key) && !knownUnchanged) {
    // The image has no inline cache: it must not become the cache. When every step was a
    // hit, the cache it came from is as good, and the tags this run writes point at it.
    const allCached = stageReport.steps !== null && stageReport.steps.cached === stageReport.steps.total;
    const copies = (async (): Promise<CacheCandidate | undefined> => {
      for (const write of stage.writes) {
        if (!source || !allCached || formatRef(source.ref) === formatRef(write.ref)) {
          stageReport.cachePush.push({ ref: formatRef(write.ref), action: source && allCached ? 'unchanged' : 'skipped', message: 'built without inline cache (engine fault); the cache tag was left as it was' });
          continue;
        }
        const copied = await ctx.ops.copyManifest(source.ref, write.ref);
        stageReport.cachePush.push({ ref: formatRef(write.ref), action: copied.ok ? (copied.message === 'already' ? 'unchanged' : 'copied') : 'failed', ...(copied.ok ? {} : { message: copied.message }) });
      }
      return source;
    })();
    written.set(stage.key, copies);
    outcome.pushes.push(copies.then(() => undefined));
    return;
  }
  const cachesOf = async (keys: readonly string[]): Promise<ImageRef[]> => {
    const refs: ImageRef[] = [];
    for (const key of [stage.key, ...stage.needs]) for (const found of ctx.resolved.get(key) ?? []) refs.push(found.ref);
    for (const key of keys) {
      const done = await written.get(key);
      if (done) refs.push(done.ref);
    }
    const seen = new Set<string>();
    return refs.filter((r) => !seen.has(formatRef(r)) && seen.add(formatRef(r)));
  };
  // The push waits only for the stages whose layers its image holds (FROM chain), so a
  // stage that only copies from another is pushed beside that one's push; the repair
  // after it may use every stage it needs.
  const sources: CacheSources = { forPush: () => cachesOf(stage.layersFrom ?? stage.needs), forRepair: () => cachesOf(stage.needs) };
  const write = pushStageCache(stage, stageReport, source, ctx, knownUnchanged, ctx.plan.builder === 'buildkit' ? sources : undefined);
  written.set(stage.key, write);
  outcome.pushes.push(write.then(() => undefined));
}

/**
 * Starts the early upload of each given stage's dependency layers once its build
 * output shows the stage's checkpoint step DONE (checkpoint.ts).
 */
function checkpointWatches(ctx: StrategyContext, stages: readonly PlannedStage[], built: ReadonlySet<string>, phase: string): (chunk: string) => void {
  // The early upload is a direct upload (docker save, then the registry API): not with --cache-upload engine.
  const early = ctx.early;
  if (!early || early.choice === 'engine') return () => undefined;
  const watches = stages.flatMap((stage) => {
    const part = earlyPart(stage, stages.length > 1);
    const labels = part && stage.writes.length > 0 ? checkpointLabels(ctx.plan, stage, part) : [];
    const cacheRef = stage.writes[0]?.ref;
    if (!part || labels.length === 0 || !cacheRef) return [];
    return [
      new CheckpointWatch(labels, () => {
        if (ctx.cancel.aborted) return;
        const upload = uploadCheckpoint({ ...ctx, early }, stage, new Set(built), part, early.earlyUploadsSoFar(cacheRef)).then((bytes) => {
          const stageReport = stageReportOf(ctx, stage);
          if (bytes !== undefined) stageReport.mbPushed = (stageReport.mbPushed ?? 0) + bytes / 1e6;
          if (bytes !== undefined) ctx.traffic?.addEarlyCacheUpload(phase, bytes);
        });
        early.awaitBeforePush(cacheRef, upload);
      }),
    ];
  });
  return (chunk) => {
    for (const watch of watches) watch.feed(chunk);
  };
}

/**
 * What a build pulled, from its output: BuildKit names each blob it fetched (cache
 * layers without a size, read from the cache images' manifests); the classic builder
 * prints the layers of a FROM image it had to pull (sizes from the base images).
 */
async function pulledByBuild(ctx: StrategyContext, output: string): Promise<Moved> {
  if (ctx.plan.builder === 'buildkit') {
    const fetched = buildkitFetches(output);
    const unsized = [...fetched.values()].some((size) => size === undefined);
    const caches = [...ctx.resolved.values()].flat().map((c) => c.ref);
    return { pulledBytes: fetchedBytes(fetched, unsized ? await ctx.ops.blobSizes(caches) : new Map()) };
  }
  const ids = pullCompleteIds(output);
  if (ids.size === 0) return { pulledBytes: 0 };
  const bases = ctx.plan.stages.flatMap((s) => (s.baseImage ? [s.baseImage] : []));
  return { pulledBytes: bytesOfShortIds(ids, await ctx.ops.blobSizes(bases)) };
}

/** BuildKit names unnamed stages stage-N; a one-stage file shows no name at all. */
/** How a build's output names the stage: its --target name, else BuildKit's stage-N or the classic builder's index. */
function stageLabel(stage: PlannedStage, builder: BuilderKind): string {
  return builder === 'buildkit' ? buildkitLabel(stage) : (stage.targetArg ?? stage.key);
}

function ownSteps(steps: readonly BuildStep[], stage: PlannedStage, builder: BuilderKind): StepCount {
  const label = stageLabel(stage, builder);
  const own = countSteps(steps, label);
  return own.total > 0 ? own : countSteps(steps.filter((s) => s.stage === undefined));
}

function stageReportOf(ctx: StrategyContext, stage: PlannedStage): StageReport {
  const found = ctx.report.stages.find((s) => s.stage === stage.key);
  if (!found) throw new Error(`no report entry for stage ${stage.key}`);
  return found;
}

function buildFailure(ctx: StrategyContext, stage: PlannedStage, invocation: Parameters<typeof displayInvocation>[1], exitCode: number, output: string): UserError {
  return new UserError('buildFailed', `the build of stage "${stage.key}" failed (docker build exited ${exitCode})`, {
    hint: 'fix the error shown above; the caches of the stages finished before it were pushed',
    detail: `${displayInvocation(ctx.cli, invocation)}\n${tail(output, 20)}`,
  });
}

/** Passes output on whole lines, each prefixed with its stage, so parallel builds stay readable. */
function prefixedLines(prefix: string, write: (text: string) => void): { feed: (chunk: string) => void; flush: () => void } {
  let pending = '';
  return {
    feed(chunk) {
      pending += chunk;
      const end = pending.lastIndexOf('\n');
      if (end < 0) return;
      write(pending.slice(0, end + 1).replace(/^(?=.)/gm, prefix));
      pending = pending.slice(end + 1);
    },
    flush() {
      if (pending !== '') write(`${prefix}${pending}\n`);
      pending = '';
    },
  };
}

/**
 * Each stage with --target, in its own build, so that build executes the stage's
 * steps (the engine then writes their inline-cache links). A stage starts when the
 * stages it needs are built; with BuildKit, independent stages build at the same
 * time (as one build of the target would run them), each stage's cache pushed
 * while later stages build. The classic builder goes one stage at a time; it needs
 * the caches pulled and uses nothing but the --cache-from images.
 */
export async function buildStageByStage(
  ctx: StrategyContext,
  skip: ReadonlySet<string> = new Set(),
  written: Written = new Map(),
  /** Set to export stages a build of this run already ran: the steps as that build reported them. */
  earlierSteps: readonly BuildStep[] = [],
  exportOnly = false,
): Promise<BuildOutcome> {
  const { plan, log } = ctx;
  const outcome: BuildOutcome = { built: new Set(), pushes: [], failure: undefined };
  const parallel = plan.builder === 'buildkit' && plan.stages.filter((s) => !skip.has(s.key)).length > 1;
  const finished = new Map<string, Promise<boolean>>();
  let stopped = false;

  // A stage waits for the whole build of the stages it needs, image and inline-cache
  // export included. Tried: starting it once their last step was done (0.4 s sooner
  // after a fresh 100 MB layer), but two builds exporting the inline cache of shared
  // steps at once crashed the 20.10 engine ("concurrent map writes" in BuildKit's
  // remotecache LinkFrom) twice in about 130 cold runs of the test app.
  const buildOne = async (stage: PlannedStage): Promise<boolean> => {
    const needed = await Promise.all(stage.needs.map((key) => finished.get(key) ?? Promise.resolve(true)));
    if (needed.some((ok) => !ok) || stopped || ctx.cancel.aborted) return false;
    const stageReport = stageReportOf(ctx, stage);
    const invocation = buildInvocation(plan, stage, ctx.resolved, outcome.built, exportOnly);
    const output = parallel ? prefixedLines(`[${stage.key}] `, (text) => log.raw(text)) : { feed: (chunk: string) => log.raw(chunk), flush: () => undefined };
    const phase = `${exportOnly ? 'export' : 'build'} ${stage.key}${stage.isTarget ? ' (target)' : ''}`;
    const watch = exportOnly ? () => undefined : checkpointWatches(ctx, [stage], outcome.built, phase);
    const result = await ctx.timed(phase, async () => {
      log.debug(displayInvocation(ctx.cli, invocation, ctx.plan.revealBuildArgs));
      return execBuild(ctx, stage, invocation, {
        onOutput: (chunk) => {
          output.feed(chunk);
          watch(chunk);
        },
        cancelSignal: ctx.cancel,
      });
    });
    output.flush();
    ctx.traffic?.add(phase, pulledByBuild(ctx, result.all));
    // An export re-reads steps the target build ran: their counts and times are that build's.
    const steps = exportOnly ? earlierSteps : parseBuildOutput(result.all, plan.builder);
    stageReport.steps = ownSteps(steps, stage, plan.builder);
    stageReport.cachedInstructions = cachedInstructions(steps, stage, plan.builder);
    stageReport.buildSeconds = exportOnly ? stepSeconds(steps, stage, plan.builder) : result.durationMs / 1000;
    stageReport.uncachedStepSeconds = plan.builder === 'buildkit' ? sumUncached(steps, stage, plan.builder) : null;
    if (result.exitCode !== 0 && exportOnly) {
      // The stage was built (by the target build); only its cache is lost, which is best-effort.
      stageReport.status = 'built';
      stageReport.cachePush.push({ ref: formatRef(stage.localRef), action: 'failed', message: `export failed (docker build exited ${result.exitCode})` });
      log.warn(`could not export stage ${stage.key} for its cache (docker build exited ${result.exitCode}); the next run may be slower`);
      return false;
    }
    if (result.exitCode !== 0) {
      stageReport.status = 'failed';
      stopped = true;
      if (!result.canceled && !ctx.cancel.aborted) outcome.failure ??= buildFailure(ctx, stage, invocation, result.exitCode, result.all);
      return false;
    }
    stageReport.status = 'built';
    outcome.built.add(stage.key);
    startCacheWrite(ctx, outcome, written, stage, stageReport, false);
    return true;
  };

  // plan.stages is in dependency order, so a stage's needs are registered before it.
  for (const stage of plan.stages) {
    if (skip.has(stage.key)) continue;
    const build = buildOne(stage);
    finished.set(stage.key, build);
    if (!parallel && !(await build)) break;
  }
  await Promise.all(finished.values());
  return outcome;
}

function cachedInstructions(steps: readonly BuildStep[], stage: PlannedStage, builder: BuilderKind): string[] {
  const label = stageLabel(stage, builder);
  return steps.filter((s) => s.stage === label && s.cached).map((s) => s.instruction);
}

/** The time a stage's own steps took in a build of several stages (its share of that build). */
function stepSeconds(steps: readonly BuildStep[], stage: PlannedStage, builder: BuilderKind): number {
  const label = stageLabel(stage, builder);
  return steps.filter((s) => s.stage === label).reduce((sum, s) => sum + (s.seconds ?? 0), 0);
}

function sumUncached(steps: readonly BuildStep[], stage: PlannedStage, builder: BuilderKind): number {
  const label = stageLabel(stage, builder);
  return steps.filter((s) => s.stage === label && !s.cached && s.seconds !== undefined).reduce((sum, s) => sum + (s.seconds ?? 0), 0);
}

/**
 * BuildKit on an engine whose inline cache keeps layer links only for the steps
 * this engine executed (ENGINE.md: an image rebuilt from a registry cache and
 * pushed again serves only identical builds). An unchanged stage must not be
 * exported (that pulls all its layers) or re-pushed (that thins its cache).
 *
 * The target build runs once with every cache found (the probe). When no step of
 * the other stages runs, it is the whole build: no pull beyond the target's
 * layers, nothing re-pushed. When some do, it goes on as the full build (BuildKit
 * runs independent stages at once), and afterwards each changed stage's image is
 * exported with its own --target build, whose steps are all local hits. Measured
 * on the 20.10 engine: such an image keeps the links of the steps this engine
 * executed; the links of registry-cache hits are written back after the push from
 * the images they came from (cache-push.ts). Not done: a stage build beside the
 * running target build (it shares the running steps, and in 1 of 3 bench runs the
 * stage image lost 3 of 5 links).
 */
export async function buildTargetThenExport(ctx: StrategyContext): Promise<BuildOutcome> {
  const { plan, log } = ctx;
  const target = plan.stages[plan.stages.length - 1];
  const others = plan.stages.slice(0, -1);
  const anyMissing = plan.stages.some((s) => (ctx.resolved.get(s.key) ?? []).length === 0);
  if (!target || anyMissing) {
    if (target) log.info('some stage has no cache yet: building stage by stage, each stage in its own build');
    return buildStageByStage(ctx);
  }
  const outcome: BuildOutcome = { built: new Set(), pushes: [], failure: undefined };
  const written: Written = new Map();
  const unchanged = new Set<string>();
  const changed = new Set<string>();
  const byLabel = new Map(others.map((s) => [buildkitLabel(s), s]));

  const settleUnchanged = (stage: PlannedStage, count: StepCount): void => {
    if (unchanged.has(stage.key) || changed.has(stage.key)) return;
    unchanged.add(stage.key);
    const stageReport = stageReportOf(ctx, stage);
    // BuildKit prints only the cached steps it visited (1, 2 or all 3 of a stage in repeated
    // no-change runs); every step of a stage with nothing to run was a hit, so all are counted.
    const all = stage.ownSteps;
    stageReport.steps = all !== undefined && all >= count.total ? { cached: all, total: all } : count;
    stageReport.status = 'cached';
    log.info(`stage ${stage.key}: every step cached; its cache is current, nothing to export or push`);
    startCacheWrite(ctx, outcome, written, stage, stageReport, true);
  };
  const watcher = new StageWatcher(
    new Set(byLabel.keys()),
    (label, count) => {
      const stage = byLabel.get(label);
      if (stage && count.cached === count.total) settleUnchanged(stage, count);
    },
    (label) => {
      const key = byLabel.get(label)?.key ?? label;
      if (changed.has(key) || unchanged.has(key)) return;
      changed.add(key);
      log.info(`a step of stage ${key} runs; the build goes on, and the stage's image is exported from it afterwards`);
    },
  );

  const invocation = buildInvocation(plan, target, ctx.resolved, outcome.built, false, !plan.deferTargetInlineCache);
  const phase = `build ${target.key} (target) with every cache`;
  const watchCheckpoints = checkpointWatches(ctx, plan.stages, outcome.built, phase);
  const result = await ctx.timed(phase, async () => {
    log.debug(displayInvocation(ctx.cli, invocation, ctx.plan.revealBuildArgs));
    return execBuild(ctx, target, invocation, {
      onOutput: (chunk) => {
        log.raw(chunk);
        watcher.feed(chunk);
        watchCheckpoints(chunk);
      },
      cancelSignal: ctx.cancel,
    });
  });
  ctx.traffic?.add(phase, pulledByBuild(ctx, result.all));
  watcher.close();
  if (ctx.cancel.aborted) return outcome;
  const steps = parseBuildOutput(result.all, 'buildkit');
  const targetReport = stageReportOf(ctx, target);
  targetReport.steps = ownSteps(steps, target, 'buildkit');
  targetReport.buildSeconds = result.durationMs / 1000;
  targetReport.uncachedStepSeconds = sumUncached(steps, target, 'buildkit');
  for (const stage of plan.stages) stageReportOf(ctx, stage).cachedInstructions = cachedInstructions(steps, stage, 'buildkit');

  // Stages BuildKit did not print were not needed: their caches stand as they are.
  const finished = others.filter((s) => watcher.hasFinished(buildkitLabel(s)));
  if (result.exitCode === 0) for (const stage of others) if (!changed.has(stage.key)) settleUnchanged(stage, watcher.count(buildkitLabel(stage)));
  const toExport = others.filter((s) => !unchanged.has(s.key) && (result.exitCode === 0 || finished.includes(s)));
  const skip = new Set(plan.stages.filter((s) => !toExport.includes(s)).map((s) => s.key));

  if (result.exitCode === 0) {
    targetReport.status = 'built';
    outcome.built.add(target.key);
    const current = plan.deferTargetInlineCache ? await deferredInlineCache(ctx, target) : undefined;
    startCacheWrite(ctx, outcome, written, target, targetReport, current !== undefined, current);
  } else {
    const failedLabel = watcher.failedStage();
    const failed = (failedLabel !== undefined ? byLabel.get(failedLabel) : undefined) ?? target;
    const failedReport = stageReportOf(ctx, failed);
    failedReport.steps = ownSteps(steps, failed, 'buildkit');
    failedReport.status = 'failed';
    outcome.failure = buildFailure(ctx, failed, invocation, result.exitCode, result.all);
  }
  if (toExport.length === 0) return outcome;
  // The deploy push can start meanwhile: the exports only feed cache pushes.
  const exporting = buildStageByStage(ctx, skip, written, steps, true).then(async (rest) => {
    for (const key of rest.built) outcome.built.add(key);
    await Promise.all(rest.pushes);
  });
  outcome.pushes.push(exporting);
  return outcome;
}

/**
 * With plan.deferTargetInlineCache the target was built without inline cache. The docker driver
 * on the classic store faults while it writes the inline cache of a build whose steps
 * came from several cache images sharing layers ("failed to find blob ... in layers";
 * docs/engines.md: 7 of 8 no-change runs of the test app). When the image has the
 * layers of a cache found, that cache is current: its tags are kept or copied and
 * nothing is built again. Otherwise the target is built once more, every step a local
 * hit and no --cache-from, with inline cache: the image its cache tags get.
 * Returns the cache that holds the image; undefined once rebuilt (a rebuild that could
 * not write the inline cache marks the target in inlineCacheDropped).
 */
async function deferredInlineCache(ctx: StrategyContext, target: PlannedStage): Promise<CacheCandidate | undefined> {
  const found = ctx.resolved.get(target.key) ?? [];
  const local = await ctx.docker.diffIds(formatRef(target.localRef));
  const remote = await Promise.all(found.map((c) => ctx.ops.remoteDiffIds(c.ref)));
  const same = found.find((_, i) => sameLayers(local, remote[i]));
  if (same) {
    ctx.log.info(`${target.key}: the image has the layers of ${formatRef(same.ref)}; its cache is current`);
    return same;
  }
  const invocation = buildInvocation(ctx.plan, target, ctx.resolved, new Set(), true);
  const result = await ctx.timed(`export ${target.key} (target) with its inline cache`, async () => {
    ctx.log.debug(displayInvocation(ctx.cli, invocation, ctx.plan.revealBuildArgs));
    return execBuild(ctx, target, invocation, { onOutput: (chunk) => ctx.log.raw(chunk), cancelSignal: ctx.cancel });
  });
  if (result.exitCode !== 0 && !ctx.inlineCacheDropped.has(target.key)) {
    ctx.log.warn(`could not write the inline cache of ${target.key} (docker build exited ${result.exitCode}); its cache tags are left as they were`);
    ctx.inlineCacheDropped.add(target.key);
  }
  return undefined;
}
