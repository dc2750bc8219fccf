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
  earlierSteps: readonly BuildStep[] = [],
): Promise<BuildOutcome> {
  const { plan, log } = ctx;
  const outcome: BuildOutcome = { built: new Set(), pushes: [], failure: undefined };
  const parallel = plan.builder === 'buildkit' && plan.stages.filter((s) => !skip.has(s.key)).length > 1;
  const finished = new Map<string, Promise<boolean>>();
  let stopped = false;

  const buildOne = async (stage: PlannedStage): Promise<boolean> => {
    const needed = await Promise.all(stage.needs.map((key) => finished.get(key) ?? Promise.resolve(true)));
    if (needed.some((ok) => !ok) || stopped || ctx.cancel.aborted) return false;
    const stageReport = stageReportOf(ctx, stage);
    const invocation = buildInvocation(plan, stage, ctx.resolved, outcome.built);
    const output = parallel ? prefixedLines(`[${stage.key}] `, (text) => log.raw(text)) : { feed: (chunk: string) => log.raw(chunk), flush: () => undefined };
    const result = await ctx.timed(`build ${stage.key}${stage.isTarget ? ' (target)' : ''}`, async () => {
      log.debug(displayInvocation(ctx.cli, invocation));
      return ctx.docker.exec(invocation, { onOutput: output.feed, cancelSignal: ctx.cancel });
    });
    output.flush();
    // A step that ran in an earlier build of this run (the probe) shows as cached here, but was not a cache hit.
    const ranEarlier = new Set(earlierSteps.filter((e) => !e.cached).map((e) => `${e.stage}|${e.instruction}`));
    const steps = parseBuildOutput(result.all, plan.builder).map((step) => (ranEarlier.has(`${step.stage}|${step.instruction}`) ? { ...step, cached: false } : step));
    stageReport.steps = ownSteps(steps, stage, plan.builder);
    stageReport.cachedInstructions = cachedInstructions(steps, stage, plan.builder);
    stageReport.buildSeconds = result.durationMs / 1000;
    stageReport.uncachedStepSeconds = plan.builder === 'buildkit' ? sumUncached(steps, stage, plan.builder) : null;
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
  const label = builder === 'buildkit' ? buildkitLabel(stage) : stage.key;
  return steps.filter((s) => s.stage === label && s.cached).map((s) => s.instruction);
}

function sumUncached(steps: readonly BuildStep[], stage: PlannedStage, builder: BuilderKind): number {
  const label = builder === 'buildkit' ? buildkitLabel(stage) : stage.key;
  return steps.filter((s) => s.stage === label && !s.cached && s.seconds !== undefined).reduce((sum, s) => sum + (s.seconds ?? 0), 0);
}

/**
 * BuildKit on an engine whose inline cache keeps layer links only for the steps a
 * build executed (ENGINE.md: an image rebuilt from cache and pushed again serves
 * only identical builds). So each stage's image must come from the build that
 * executed its changed steps, and an unchanged stage must not be exported (that
 * pulls all its layers) or re-pushed (that thins its cache metadata).
 *
 * First a probe: the target build with every cache found. If no step of the other
 * stages has to run, the probe is the whole build: no pull beyond the target's
 * layers, nothing re-pushed. As soon as a step of another stage starts to run,
 * the probe is stopped, and the stages not already known to be unchanged are
 * built stage by stage (each executing its own steps, its cache pushed while the
 * next one builds).
 */
export async function buildProbeThenStages(ctx: StrategyContext): Promise<BuildOutcome> {
  const { plan, log } = ctx;
  const target = plan.stages[plan.stages.length - 1];
  const others = plan.stages.slice(0, -1);
  const anyMissing = plan.stages.some((s) => (ctx.resolved.get(s.key) ?? []).length === 0);
  if (!target || anyMissing) {
    if (target) log.info('probe skipped: some stage has no cache yet, so it will run; building stage by stage');
    return buildStageByStage(ctx);
  }
  const outcome: BuildOutcome = { built: new Set(), pushes: [], failure: undefined };
  const written: Written = new Map();
  const unchanged = new Set<string>();
  const probe = new AbortController();
  const stopProbe = (): void => probe.abort();
  ctx.cancel.addEventListener('abort', stopProbe);
  let changedStage: string | undefined;
  const byLabel = new Map(others.map((s) => [buildkitLabel(s), s]));

  const settleUnchanged = (stage: PlannedStage, count: StepCount): void => {
    if (unchanged.has(stage.key)) return;
    unchanged.add(stage.key);
    const stageReport = stageReportOf(ctx, stage);
    stageReport.steps = count;
    stageReport.status = 'cached';
    log.info(`stage ${stage.key}: every step cached; its cache is current, nothing to export or push`);
    startCacheWrite(ctx, outcome, written, stage, stageReport, true);
  };
  const watcher = new StageWatcher(
    new Set(byLabel.keys()),
    (label, count) => {
      const stage = byLabel.get(label);
      if (stage && count.cached === count.total && changedStage === undefined) settleUnchanged(stage, count);
    },
    (label) => {
      if (changedStage !== undefined) return;
      changedStage = byLabel.get(label)?.key ?? label;
      log.info(`probe: a step of stage ${changedStage} has to run; stopping the probe to build stage by stage`);
      probe.abort();
    },
  );

  const invocation = buildInvocation(plan, target, ctx.resolved, outcome.built);
  const result = await ctx.timed(`probe: build ${target.key} (target) with every cache`, async () => {
    log.debug(displayInvocation(ctx.cli, invocation));
    return ctx.docker.exec(invocation, {
      onOutput: (chunk) => {
        log.raw(chunk);
        watcher.feed(chunk);
      },
      cancelSignal: probe.signal,
    });
  });
  watcher.close();
  ctx.cancel.removeEventListener('abort', stopProbe);
  if (ctx.cancel.aborted) return outcome;
  const probeSteps = parseBuildOutput(result.all, 'buildkit');
  for (const stage of others) {
    if (unchanged.has(stage.key)) stageReportOf(ctx, stage).cachedInstructions = cachedInstructions(probeSteps, stage, 'buildkit');
  }

  if (changedStage === undefined) {
    const targetReport = stageReportOf(ctx, target);
    const steps = parseBuildOutput(result.all, 'buildkit');
    targetReport.steps = ownSteps(steps, target, 'buildkit');
    targetReport.cachedInstructions = cachedInstructions(steps, target, 'buildkit');
    for (const stage of others) stageReportOf(ctx, stage).cachedInstructions = cachedInstructions(steps, stage, 'buildkit');
    targetReport.buildSeconds = result.durationMs / 1000;
    targetReport.uncachedStepSeconds = sumUncached(steps, target, 'buildkit');
    if (result.exitCode !== 0) {
      targetReport.status = 'failed';
      outcome.failure = buildFailure(ctx, target, invocation, result.exitCode, result.all);
      return outcome;
    }
    // Stages BuildKit did not print were not needed: their caches stand as they are.
    for (const stage of others) if (!unchanged.has(stage.key)) settleUnchanged(stage, watcher.count(buildkitLabel(stage)));
    targetReport.status = 'built';
    outcome.built.add(target.key);
    startCacheWrite(ctx, outcome, written, target, targetReport, false);
    return outcome;
  }
  const rest = await buildStageByStage(ctx, unchanged, written, probeSteps);
  return { built: rest.built, pushes: [...outcome.pushes, ...rest.pushes], failure: rest.failure };
}
