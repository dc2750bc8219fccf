import { countSteps, parseBuildOutput, type BuildStep, type StepCount } from './build-output.js';
import type { CacheOps } from './cache-ops.js';
import { pushStageCache } from './cache-push.js';
import { type Docker, displayInvocation } from './docker.js';
import { tail, UserError } from './errors.js';
import type { Logger } from './log.js';
import { buildInvocation, type BuilderKind, type Plan, type PlannedStage, type Resolution } from './plan.js';
import type { RunReport, StageReport } from './report.js';
import { StageWatcher } from './stage-watch.js';

export interface StrategyContext {
  readonly plan: Plan;
  readonly cli: string;
  readonly report: RunReport;
  readonly resolved: Resolution;
  readonly docker: Docker;
  readonly ops: CacheOps;
  readonly log: Logger;
  readonly cancel: AbortSignal;
  timed<T>(name: string, body: () => Promise<T>): Promise<T>;
}

export interface BuildOutcome {
  /** Stages whose image this run has locally (built or exported). */
  readonly built: Set<string>;
  /** Cache pushes under way. */
  readonly pushes: Promise<void>[];
  failure: UserError | undefined;
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
 * Classic builder: each stage in dependency order with --target, its cache
 * pushed while the next stage builds. The classic builder needs the caches
 * pulled, and uses nothing but the --cache-from images.
 */
export async function buildStageByStage(ctx: StrategyContext): Promise<BuildOutcome> {
  const { plan, log } = ctx;
  const outcome: BuildOutcome = { built: new Set(), pushes: [], failure: undefined };
  for (const stage of plan.stages) {
    if (ctx.cancel.aborted) break;
    const stageReport = stageReportOf(ctx, stage);
    const invocation = buildInvocation(plan, stage, ctx.resolved, outcome.built);
    const result = await ctx.timed(`build ${stage.key}${stage.isTarget ? ' (target)' : ''}`, async () => {
      log.debug(displayInvocation(ctx.cli, invocation));
      return ctx.docker.exec(invocation, { onOutput: (chunk) => log.raw(chunk), cancelSignal: ctx.cancel });
    });
    const steps = parseBuildOutput(result.all, plan.builder);
    stageReport.steps = ownSteps(steps, stage, plan.builder);
    stageReport.buildSeconds = result.durationMs / 1000;
    stageReport.uncachedStepSeconds = plan.builder === 'buildkit' ? sumUncached(steps, stage, plan.builder) : null;
    if (result.exitCode !== 0) {
      stageReport.status = 'failed';
      if (!result.canceled && !ctx.cancel.aborted) outcome.failure = buildFailure(ctx, stage, invocation, result.exitCode, result.all);
      break;
    }
    stageReport.status = 'built';
    outcome.built.add(stage.key);
    outcome.pushes.push(pushStageCache(stage, stageReport, ctx.resolved.get(stage.key)?.[0], ctx));
  }
  return outcome;
}

function sumUncached(steps: readonly BuildStep[], stage: PlannedStage, builder: BuilderKind): number {
  const label = builder === 'buildkit' ? buildkitLabel(stage) : stage.key;
  return steps.filter((s) => s.stage === label && !s.cached && s.seconds !== undefined).reduce((sum, s) => sum + (s.seconds ?? 0), 0);
}

/**
 * BuildKit: build the target once, with every cache found. BuildKit builds the
 * stages it needs and, with inline caches, pulls only the layers it must. As each
 * other stage finishes (seen in the streamed output), a stage with any step that
 * ran is exported from the local cache with --target and pushed while the rest
 * still builds; a stage whose steps were all cached is already in the registry,
 * so it is not exported (which would pull all its layers) and its tags are only
 * pointed at the cache it came from.
 */
export async function buildTargetFirst(ctx: StrategyContext): Promise<BuildOutcome> {
  const { plan, log } = ctx;
  const outcome: BuildOutcome = { built: new Set(), pushes: [], failure: undefined };
  const target = plan.stages[plan.stages.length - 1];
  if (!target) return outcome;
  const others = plan.stages.slice(0, -1);
  const byLabel = new Map(others.map((s) => [buildkitLabel(s), s]));
  const exports: Promise<void>[] = [];
  const settled = new Set<string>();

  const settle = (stage: PlannedStage, count: StepCount): void => {
    if (settled.has(stage.key)) return;
    settled.add(stage.key);
    const stageReport = stageReportOf(ctx, stage);
    stageReport.steps = count;
    const found = ctx.resolved.get(stage.key)?.[0];
    if (found && count.cached === count.total) {
      stageReport.status = 'cached';
      log.info(`stage ${stage.key}: every step cached; its cache ${found.ref.tag} is current, nothing to export`);
      outcome.pushes.push(pushStageCache(stage, stageReport, found, ctx, true));
      return;
    }
    exports.push(exportStage(ctx, stage, stageReport, outcome));
  };

  const watcher = new StageWatcherAdapter(byLabel, settle);
  const invocation = buildInvocation(plan, target, ctx.resolved, outcome.built);
  const targetReport = stageReportOf(ctx, target);
  const result = await ctx.timed(`build ${target.key} (target, with ${others.length} stage${others.length === 1 ? '' : 's'} it needs)`, async () => {
    log.debug(displayInvocation(ctx.cli, invocation));
    return ctx.docker.exec(invocation, {
      onOutput: (chunk) => {
        log.raw(chunk);
        watcher.feed(chunk);
      },
      cancelSignal: ctx.cancel,
    });
  });
  const steps = parseBuildOutput(result.all, 'buildkit');
  targetReport.steps = ownSteps(steps, target, 'buildkit');
  targetReport.buildSeconds = result.durationMs / 1000;
  targetReport.uncachedStepSeconds = sumUncached(steps, target, 'buildkit');
  for (const stage of others) {
    const stageReport = stageReportOf(ctx, stage);
    stageReport.uncachedStepSeconds = sumUncached(steps, stage, 'buildkit');
  }

  if (result.exitCode !== 0) {
    targetReport.status = 'failed';
    if (!result.canceled && !ctx.cancel.aborted) outcome.failure = buildFailure(ctx, target, invocation, result.exitCode, result.all);
    await Promise.all(exports);
    return outcome;
  }
  // Stages BuildKit did not print (fully cached deep dependencies) are settled by what is known.
  for (const stage of others) settle(stage, watcher.count(stage));
  targetReport.status = 'built';
  outcome.built.add(target.key);
  outcome.pushes.push(pushStageCache(target, targetReport, ctx.resolved.get(target.key)?.[0], ctx));
  await ctx.timed('export changed stages', () => Promise.all(exports));
  return outcome;
}

const EXPORT_TIMEOUT_MS = 300_000;

/** Exports one stage from the local build cache (a quick --target build) and starts its push. */
async function exportStage(ctx: StrategyContext, stage: PlannedStage, stageReport: StageReport, outcome: BuildOutcome): Promise<void> {
  const invocation = buildInvocation(ctx.plan, stage, ctx.resolved, outcome.built);
  ctx.log.info(`stage ${stage.key} finished with ${stageReport.steps ? stageReport.steps.total - stageReport.steps.cached : '?'} step(s) run: exporting and pushing its cache while the build goes on`);
  ctx.log.debug(displayInvocation(ctx.cli, invocation));
  const started = Date.now();
  // Not cancelled by SIGTERM: the stage is finished, and its export from the local cache is quick.
  const result = await ctx.docker.exec(invocation, { timeoutMs: EXPORT_TIMEOUT_MS });
  stageReport.buildSeconds = (Date.now() - started) / 1000;
  if (result.exitCode !== 0) {
    if (!result.canceled && !ctx.cancel.aborted) ctx.log.warn(`could not export stage ${stage.key} for its cache (exit ${result.exitCode}): ${tail(result.all, 1)}`);
    stageReport.status = 'failed';
    return;
  }
  stageReport.status = 'built';
  outcome.built.add(stage.key);
  outcome.pushes.push(pushStageCache(stage, stageReport, ctx.resolved.get(stage.key)?.[0], ctx));
}


/** Maps BuildKit's stage labels to planned stages for the watcher. */
class StageWatcherAdapter {
  private readonly watcher: StageWatcher;
  constructor(
    private readonly byLabel: ReadonlyMap<string, PlannedStage>,
    settle: (stage: PlannedStage, count: StepCount) => void,
  ) {
    this.watcher = new StageWatcher(new Set(byLabel.keys()), (label, count) => {
      const stage = byLabel.get(label);
      if (stage) settle(stage, count);
    });
  }
  feed(chunk: string): void {
    this.watcher.feed(chunk);
  }
  count(stage: PlannedStage): StepCount {
    for (const [label, s] of this.byLabel) if (s === stage) return this.watcher.count(label);
    return { cached: 0, total: 0 };
  }
}

