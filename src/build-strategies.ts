import { countSteps, parseBuildOutput, type BuildStep, type StepCount } from './build-output.js';
import type { CacheOps } from './cache-ops.js';
import { pushStageCache } from './cache-push.js';
import { type Docker, displayInvocation } from './docker.js';
import { tail, UserError } from './errors.js';
import type { Logger } from './log.js';
import { formatRef, type ImageRef } from './image-ref.js';
import { buildInvocation, type BuilderKind, type CacheCandidate, type Plan, type PlannedStage, type Resolution } from './plan.js';
import type { RunReport, StageReport } from './report.js';
import { StageWatcher } from './stage-watch.js';
import type { UploadChoice } from './upload-choice.js';

export interface StrategyContext {
  readonly plan: Plan;
  readonly cli: string;
  readonly report: RunReport;
  readonly resolved: Resolution;
  readonly docker: Docker;
  readonly ops: CacheOps;
  readonly log: Logger;
  readonly cancel: AbortSignal;
  readonly upload: UploadChoice;
  timed<T>(name: string, body: () => Promise<T>): Promise<T>;
}

export interface BuildOutcome {
  /** Stages whose image this run has locally (built or exported). */
  readonly built: Set<string>;
  /** Cache pushes under way. */
  readonly pushes: Promise<void>[];
  failure: UserError | undefined;
}

/** What each stage's cache write ended on (the pushed tag, or the cache kept), by stage key. */
type Written = Map<string, Promise<CacheCandidate | undefined>>;

/** Starts a stage's cache write and records it, so later stages can repair from it. */
function startCacheWrite(ctx: StrategyContext, outcome: BuildOutcome, written: Written, stage: PlannedStage, stageReport: StageReport, knownUnchanged: boolean): void {
  const sources = async (): Promise<ImageRef[]> => {
    const refs: ImageRef[] = [];
    for (const key of [stage.key, ...stage.needs]) for (const found of ctx.resolved.get(key) ?? []) refs.push(found.ref);
    for (const key of stage.needs) {
      const done = await written.get(key);
      if (done) refs.push(done.ref);
    }
    const seen = new Set<string>();
    return refs.filter((r) => !seen.has(formatRef(r)) && seen.add(formatRef(r)));
  };
  const write = pushStageCache(stage, stageReport, ctx.resolved.get(stage.key)?.[0], ctx, knownUnchanged, ctx.plan.builder === 'buildkit' ? sources : undefined);
  written.set(stage.key, write);
  outcome.pushes.push(write.then(() => undefined));
}

/** BuildKit names unnamed stages stage-N; a one-stage file shows no name at all. */
function buildkitLabel(stage: PlannedStage): string {
  return stage.targetArg ?? `stage-${stage.key}`;
}

function ownSteps(steps: readonly BuildStep[], stage: PlannedStage, builder: BuilderKind): StepCount {
  const label = builder === 'buildkit' ? buildkitLabel(stage) : stage.key;
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

/**
 * Each stage in dependency order with --target (its own build executes its
 * steps), its cache pushed while the next stage builds. The classic builder needs
 * the caches pulled, and uses nothing but the --cache-from images.
 */
export async function buildStageByStage(
  ctx: StrategyContext,
  skip: ReadonlySet<string> = new Set(),
  written: Written = new Map(),
): Promise<BuildOutcome> {
  const { plan, log } = ctx;
  const outcome: BuildOutcome = { built: new Set(), pushes: [], failure: undefined };
  for (const stage of plan.stages) {
    if (ctx.cancel.aborted) break;
    if (skip.has(stage.key)) continue;
    const stageReport = stageReportOf(ctx, stage);
    const invocation = buildInvocation(plan, stage, ctx.resolved, outcome.built);
    const result = await ctx.timed(`build ${stage.key}${stage.isTarget ? ' (target)' : ''}`, async () => {
      log.debug(displayInvocation(ctx.cli, invocation));
      return ctx.docker.exec(invocation, { onOutput: (chunk) => log.raw(chunk), cancelSignal: ctx.cancel });
    });
    const steps = parseBuildOutput(result.all, plan.builder);
    stageReport.steps = ownSteps(steps, stage, plan.builder);
    stageReport.cachedInstructions = cachedInstructions(steps, stage, plan.builder);
    stageReport.buildSeconds = result.durationMs / 1000;
    stageReport.uncachedStepSeconds = plan.builder === 'buildkit' ? sumUncached(steps, stage, plan.builder) : null;
    if (result.exitCode !== 0) {
      stageReport.status = 'failed';
      if (!result.canceled && !ctx.cancel.aborted) outcome.failure = buildFailure(ctx, stage, invocation, result.exitCode, result.all);
      break;
    }
    stageReport.status = 'built';
    outcome.built.add(stage.key);
    startCacheWrite(ctx, outcome, written, stage, stageReport, false);
  }
  return outcome;
}

function cachedInstructions(steps: readonly BuildStep[], stage: PlannedStage, builder: BuilderKind): string[] {
  const label = builder === 'buildkit' ? buildkitLabel(stage) : stage.key;
  return steps.filter((s) => s.stage === label && s.cached).map((s) => s.instruction);
}

function sumUncached(steps: readonly BuildStep[], stage: PlannedStage, builder: BuilderKind): number {
  const label = builder === 'buildkit' ? buildkitLabel(stage) : stage.key;
  return steps.filter((s) => s.stage === label && !s.cached && s.seconds !== undefined).reduce((sum, s) => sum + (s.seconds ?? 0), 0);
}

/** Seconds of a stage's own steps in a build's output (BuildKit prints DONE times). */
function stageSeconds(steps: readonly BuildStep[], stage: PlannedStage): number {
  const label = buildkitLabel(stage);
  return steps.filter((s) => s.stage === label && s.seconds !== undefined).reduce((sum, s) => sum + (s.seconds ?? 0), 0);
}

/**
 * BuildKit: one build of the target with every cache found, so BuildKit runs
 * independent stages in parallel and pulls only the layers a step that must run
 * reads (an unchanged run pulls nothing). Each other stage gets its image for its
 * cache from its own `--target STAGE` build, run beside the target build: BuildKit
 * shares the steps both builds need, so nothing runs twice. That build starts at
 * once for a stage without any cache, and for the others as soon as the target
 * build's output shows one of the stage's steps running (stage-watch.ts); a stage
 * whose steps all come from the cache is unchanged: not exported (that pulls all
 * its layers) and not re-pushed (on this project's engine that thins the cache
 * metadata, ENGINE.md), its cache tags copied in the registry where needed.
 * Why not export after the target build: on the 20.10 engine an image whose steps
 * were all local cache hits carries inline-cache records without layer links
 * (seen: 3 of 5 links lost), which serve only identical builds. Links lost for
 * steps that were registry hits are restored from the images the hits came from
 * (inline-cache.ts). Stages the target does not need (--stages) are built on
 * their own afterwards.
 */
export async function buildTargetThenExport(ctx: StrategyContext): Promise<BuildOutcome> {
  const { plan, log } = ctx;
  const target = plan.stages[plan.stages.length - 1];
  const outcome: BuildOutcome = { built: new Set(), pushes: [], failure: undefined };
  if (!target) return outcome;
  const others = plan.stages.slice(0, -1);
  const written: Written = new Map();
  const settled = new Set<string>();
  const exports: Promise<void>[] = [];
  const byLabel = new Map(others.map((s) => [buildkitLabel(s), s]));
  /** Steps each stage's own build executed. */
  const ranInStageBuild = new Map<string, Set<string>>();

  const settleUnchanged = (stage: PlannedStage, count: StepCount): void => {
    settled.add(stage.key);
    const stageReport = stageReportOf(ctx, stage);
    stageReport.steps = count;
    stageReport.status = 'cached';
    log.info(`stage ${stage.key}: every step cached; its cache is current, nothing to export or push`);
    startCacheWrite(ctx, outcome, written, stage, stageReport, true);
  };
  const buildStage = async (stage: PlannedStage): Promise<void> => {
    const stageReport = stageReportOf(ctx, stage);
    const invocation = buildInvocation(plan, stage, ctx.resolved, new Set());
    const result = await ctx.timed(`build ${stage.key} for its cache`, async () => {
      log.debug(displayInvocation(ctx.cli, invocation));
      return ctx.docker.exec(invocation, { cancelSignal: ctx.cancel });
    });
    if (result.exitCode !== 0) {
      stageReport.status = 'failed';
      if (!result.canceled && !ctx.cancel.aborted) log.warn(`could not build the image of stage ${stage.key} for its cache (docker build --target ${stage.targetArg ?? stage.key} exited ${result.exitCode}); its cache is not written this run`);
      return;
    }
    stageReport.status = 'built';
    const ownBuild = parseBuildOutput(result.all, 'buildkit');
    stageReport.steps = ownSteps(ownBuild, stage, 'buildkit');
    ranInStageBuild.set(stage.key, new Set(ownBuild.filter((s) => !s.cached).map((s) => `${s.stage}|${s.instruction}`)));
    outcome.built.add(stage.key);
    startCacheWrite(ctx, outcome, written, stage, stageReport, false);
  };
  const startStage = (stage: PlannedStage, why: string): void => {
    if (settled.has(stage.key)) return;
    settled.add(stage.key);
    log.info(`stage ${stage.key}: ${why}; building its image for its cache beside the target build`);
    exports.push(buildStage(stage));
  };
  for (const stage of others) if ((ctx.resolved.get(stage.key) ?? []).length === 0 && stage.targetArg !== undefined) startStage(stage, 'no cache yet');
  const watcher = new StageWatcher(
    new Set(byLabel.keys()),
    (label, count) => {
      const stage = byLabel.get(label);
      if (!stage || settled.has(stage.key)) return;
      if (count.cached === count.total) settleUnchanged(stage, count);
      else startStage(stage, 'a step ran');
    },
    (label) => {
      const stage = byLabel.get(label);
      if (stage) startStage(stage, 'a step has to run');
    },
  );

  const invocation = buildInvocation(plan, target, ctx.resolved, new Set());
  const result = await ctx.timed(`build ${target.key} (target) with every cache`, async () => {
    log.debug(displayInvocation(ctx.cli, invocation));
    return ctx.docker.exec(invocation, {
      onOutput: (chunk) => {
        log.raw(chunk);
        watcher.feed(chunk);
      },
      cancelSignal: ctx.cancel,
    });
  });
  watcher.close();
  await Promise.all(exports);
  const steps = parseBuildOutput(result.all, 'buildkit');
  for (const stage of others) {
    const stageReport = stageReportOf(ctx, stage);
    stageReport.cachedInstructions = cachedInstructions(steps, stage, 'buildkit');
    if (settled.has(stage.key) && stageReport.status !== 'cached') {
      // The two builds share the steps: a step ran if either build ran it.
      const ran = ranInStageBuild.get(stage.key) ?? new Set<string>();
      const merged = steps.map((s) => (ran.has(`${s.stage}|${s.instruction}`) ? { ...s, cached: false } : s));
      const own = countSteps(merged, buildkitLabel(stage));
      if (own.total > 0) stageReport.steps = own;
      stageReport.cachedInstructions = cachedInstructions(merged, stage, 'buildkit');
      stageReport.buildSeconds = stageSeconds(steps, stage);
      stageReport.uncachedStepSeconds = sumUncached(steps, stage, 'buildkit');
    }
  }
  const targetReport = stageReportOf(ctx, target);
  targetReport.steps = ownSteps(steps, target, 'buildkit');
  targetReport.cachedInstructions = cachedInstructions(steps, target, 'buildkit');
  targetReport.buildSeconds = result.durationMs / 1000;
  targetReport.uncachedStepSeconds = sumUncached(steps, target, 'buildkit');
  if (ctx.cancel.aborted) return outcome;
  if (result.exitCode !== 0) {
    targetReport.status = 'failed';
    if (!result.canceled) outcome.failure = buildFailure(ctx, target, invocation, result.exitCode, result.all);
    return outcome;
  }
  targetReport.status = 'built';
  outcome.built.add(target.key);
  startCacheWrite(ctx, outcome, written, target, targetReport, false);
  // Stages the target did not need were not built: build them now, each on its own.
  const rest = others.filter((s) => !settled.has(s.key));
  if (rest.length === 0) return outcome;
  log.info(`building the stages the target does not need: ${rest.map((s) => s.key).join(', ')}`);
  const skip = new Set([...settled, target.key]);
  const more = await buildStageByStage(ctx, skip, written);
  return { built: new Set([...outcome.built, ...more.built]), pushes: [...outcome.pushes, ...more.pushes], failure: more.failure };
}
