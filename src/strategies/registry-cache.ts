import { buildkitLabel, countSteps, parseBuildOutput, stageProgress, type BuildStep } from '../engine/build-output.js';
import { type Docker, displayInvocation } from '../engine/docker.js';
import { tail, UserError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatRef, type ImageRef, repositoryOf } from '../plan/image-ref.js';
import { registryBuildInvocation, type CacheCandidate, type Plan, type PlannedStage } from '../plan/plan.js';
import type { CacheOps } from '../registry/cache-ops.js';
import type { PhaseTraffic } from '../report/phase-traffic.js';
import type { RunReport } from '../report/report.js';
import { EarlyCacheExports } from './early-cache-export.js';
import { copyToOtherScopes, exportCache, knownBefore, type KnownBlobs, stageReportOf, type StepSeconds, stepKey } from './registry-cache-export.js';
import { buildkitFetches, fetchedBytes } from '../report/transfers.js';

/**
 * BuildKit's own registry cache, for builders that can export one (plan/strategy.ts).
 *
 * One build of the target with every registry cache found (branch, default branches,
 * unprefixed: BuildKit takes each step from whichever has it) pushes the deploy image
 * itself. Its cache is then exported by a second build of the target, every step a
 * local hit, with --cache-to mode=max: only when a step ran, so a no-change run writes
 * nothing, and never in front of the deploy push. A build that fails exports no cache,
 * so then each stage that finished is exported to its own tag (`_BRANCH__STAGE`),
 * which the next run reads beside the target's.
 */
export interface RegistryCacheContext {
  readonly plan: Plan;
  readonly cli: string;
  readonly report: RunReport;
  readonly docker: Docker;
  readonly ops: CacheOps;
  readonly log: Logger;
  readonly cancel: AbortSignal;
  readonly traffic: PhaseTraffic;
  /** --timeout: how long the deploy push inside the build and each cache export may take. */
  readonly timeoutMs: number;
  timed<T>(name: string, body: () => Promise<T>): Promise<T>;
}

export interface RegistryCacheOutcome {
  readonly failure: UserError | undefined;
  readonly deployError: UserError | undefined;
}

/** The registry caches found for each stage (its own tags and the target's), most specific scope first. */
export type RegistryResolution = ReadonlyMap<string, readonly CacheCandidate[]>;

/** Looks up every stage's registry-cache tags at once; records what was found in the report. */
export async function resolveRegistryCaches(ctx: RegistryCacheContext): Promise<RegistryResolution> {
  const { plan, ops, report, log } = ctx;
  const found = new Map<string, CacheCandidate[]>();
  await Promise.all(
    plan.stages.map(async (stage) => {
      const results = await Promise.all(stage.registryCandidates.map((c) => ops.lookup(c.ref)));
      const stageReport = stageReportOf(report, stage);
      found.set(stage.key, stage.registryCandidates.filter((c, i) => {
        stageReport.lookups.push({ ref: formatRef(c.ref), result: results[i] ?? 'unknown' });
        return results[i] === 'found';
      }));
    }),
  );
  const target = plan.stages[plan.stages.length - 1];
  const targetFound = target ? (found.get(target.key) ?? []) : [];
  for (const stage of plan.stages) {
    // A stage is served by the most specific scope that has its own cache or the target's (which holds every stage).
    const own = found.get(stage.key) ?? [];
    const used = stage.registryCandidates
      .map((c) => own.find((o) => o === c) ?? targetFound.find((t) => t.scope.kind === c.scope.kind && t.scope.branch === c.scope.branch))
      .find((c) => c !== undefined);
    const stageReport = stageReportOf(report, stage);
    if (used) stageReport.cacheUsed = { scope: used.scope.kind, branch: used.scope.branch ?? null, ref: formatRef(used.ref) };
    log.info(`${stage.key}: ${used ? `registry cache ${formatRef(used.ref)} (${used.scope.kind}${used.scope.branch ? ` ${used.scope.branch}` : ''})` : 'no registry cache found'}`);
  }
  return found;
}

/** Every registry cache found, each once, scope by scope (most specific first), the target's before the stages': the build's --cache-from list. */
export function cacheSources(plan: Plan, found: RegistryResolution): ImageRef[] {
  const target = plan.stages[plan.stages.length - 1];
  const ordered = [...(target ? [target] : []), ...plan.stages.filter((s) => s !== target)];
  const scopes = target?.registryCandidates.map((c) => c.scope) ?? [];
  return scopes.flatMap((scope) =>
    ordered.flatMap((stage) => (found.get(stage.key) ?? []).filter((c) => c.scope.kind === scope.kind && c.scope.branch === scope.branch).map((c) => c.ref)),
  );
}

/** Bytes the deploy push inside the build sent: each repository's new blobs, once. */
async function deployPushedBytes(ctx: RegistryCacheContext, known: KnownBlobs): Promise<number> {
  let bytes = 0;
  for (const ref of ctx.plan.deploy) bytes += known.take(repositoryOf(ref), await ctx.ops.blobSizes([ref]));
  return bytes;
}

/** The step times of the caches used, the more specific scope's winning. */
async function importedStepSeconds(ctx: RegistryCacheContext, cacheFrom: readonly ImageRef[]): Promise<StepSeconds> {
  const records = await Promise.all(cacheFrom.map((ref) => ctx.ops.cacheStepSeconds(ref)));
  const merged: StepSeconds = new Map();
  for (const record of records.reverse()) for (const [key, seconds] of record) merged.set(key, seconds);
  return merged;
}

export async function buildWithRegistryCache(ctx: RegistryCacheContext, found: RegistryResolution): Promise<RegistryCacheOutcome> {
  const { plan, log, report } = ctx;
  const target = plan.stages[plan.stages.length - 1];
  if (!target) return { failure: undefined, deployError: undefined };
  const cacheFrom = cacheSources(plan, found);
  // Read while the build runs: what the cached steps took when they last ran, and which blobs the registry holds.
  const imported = importedStepSeconds(ctx, cacheFrom);
  const knowing = knownBefore(ctx, cacheFrom);
  const phase = `build ${target.key} (target) with the registry cache${plan.push ? ', deploy push' : ''}`;
  const invocation = registryBuildInvocation(plan, { stage: target, cacheFrom });
  const early = new EarlyCacheExports(ctx, cacheFrom, knowing, phase);
  const feedEarly = early.watcher();
  // The steps may take as long as they take; the push at the end is a registry operation, bounded by --timeout.
  const stop = new AbortController();
  const onCancel = (): void => stop.abort(ctx.cancel.reason);
  ctx.cancel.addEventListener('abort', onCancel, { once: true });
  let pushTimer: NodeJS.Timeout | undefined;
  let pushTimedOut = false;
  const result = await ctx.timed(phase, async () => {
    log.debug(displayInvocation(ctx.cli, invocation, ctx.plan.revealBuildArgs));
    return ctx.docker.exec(invocation, {
      onOutput: (chunk) => {
        log.raw(chunk);
        feedEarly(chunk);
        if (pushTimer === undefined && /^#\d+ pushing layers/m.test(chunk)) {
          pushTimer = setTimeout(() => {
            pushTimedOut = true;
            stop.abort('timeout');
          }, ctx.timeoutMs);
        }
      },
      cancelSignal: stop.signal,
    });
  });
  clearTimeout(pushTimer);
  ctx.cancel.removeEventListener('abort', onCancel);
  const known = await knowing;
  ctx.traffic.add(phase, Promise.all([pulledBytes(ctx, result.all, cacheFrom), result.exitCode === 0 && plan.push ? deployPushedBytes(ctx, known) : 0]).then(([pulled, pushed]) => ({ ...pulled, pushedBytes: pushed })));
  const steps = parseBuildOutput(result.all, 'buildkit', true);
  const progress = stageProgress(result.all);
  const earlier = await imported;
  for (const stage of plan.stages) recordSteps(report, stage, steps, progress.finished.has(labelOf(stage)) || result.exitCode === 0, earlier);
  // The record this run leaves: what it ran, and what it took over from the caches for the rest.
  const stepSeconds: StepSeconds = new Map(earlier);
  for (const step of steps) if (!step.cached && step.seconds !== undefined) stepSeconds.set(stepKey(step.stage, step.instruction), step.seconds);

  let failure: UserError | undefined;
  let deployError: UserError | undefined;
  const targetDone = progress.finished.has(labelOf(target));
  if (result.exitCode === 0) {
    report.deploy = plan.deploy.map((ref) => ({ ref: formatRef(ref), action: plan.push ? 'pushed' : 'tagged' }));
    for (const ref of plan.deploy) log.info(plan.push ? `pushed ${formatRef(ref)}` : `tagged ${formatRef(ref)} (not pushed: --no-push)`);
  } else if (!ctx.cancel.aborted && (pushTimedOut || !result.canceled)) {
    if (targetDone && plan.push && (pushTimedOut || /push|export/i.test(progress.errorText))) {
      const firstTag = plan.deploy[0];
      if (firstTag && !pushTimedOut) ctx.ops.noteRefusedPush(firstTag, progress.errorText);
      const why = pushTimedOut ? `timed out after ${ctx.timeoutMs / 1000}s (--timeout)` : (progress.errorText.split('\n')[0] ?? '');
      report.deploy = plan.deploy.map((ref) => ({ ref: formatRef(ref), action: 'failed', message: why }));
      deployError = new UserError('deployFailed', `the deploy push of ${plan.deploy.map(formatRef).join(', ')} failed`, {
        hint: `check that the registry ${plan.deploy[0]?.domain ?? 'docker.io'} answers and that this job is logged in with push rights (docker login, or --username with --password-stdin)`,
        detail: `${displayInvocation(ctx.cli, invocation)}\n${pushTimedOut ? `${why}\n` : ''}${tail(result.all, 15)}`,
      });
    } else {
      const failed = plan.stages.find((s) => progress.failed.has(labelOf(s))) ?? target;
      stageReportOf(report, failed).status = 'failed';
      failure = new UserError('buildFailed', `the build of stage "${failed.key}" failed (docker buildx build exited ${result.exitCode})`, {
        hint: 'fix the error shown above; the caches of the stages that finished before it were exported',
        detail: `${displayInvocation(ctx.cli, invocation)}\n${tail(result.all, 20)}`,
      });
    }
  }
  if (ctx.cancel.aborted && !targetDone) stageReportOf(report, target).status = 'not-built';

  if (plan.pushCache) {
    await ctx.timed('push caches', async () => {
      // After the early exports (their blobs are not sent twice) and once the deploy push's blobs are counted: the export finds them in the registry.
      await early.settled();
      await ctx.traffic.settled();
      if (result.exitCode === 0 || deployError) await writeTargetCache(ctx, target, found, cacheFrom, steps, stepSeconds, known);
      else await writeFinishedStages(ctx, progress.finished, cacheFrom, stepSeconds, known);
    });
  }
  return { failure, deployError };
}

/** The target's registry cache: exported when a step ran; otherwise kept, or copied from the scope it came from. */
async function writeTargetCache(ctx: RegistryCacheContext, target: PlannedStage, found: RegistryResolution, cacheFrom: readonly ImageRef[], steps: readonly BuildStep[], stepSeconds: StepSeconds, known: KnownBlobs): Promise<void> {
  const [first, ...others] = target.registryWrites;
  if (!first) return void ctx.log.info('no cache scope to write');
  const stageReport = stageReportOf(ctx.report, target);
  const targetFound = found.get(target.key) ?? [];
  const anyRan = steps.some((s) => !s.cached);
  const own = targetFound.find((c) => formatRef(c.ref) === formatRef(first.ref));
  const source = anyRan ? undefined : (own ?? targetFound[0]);
  let written: ImageRef | undefined;
  if (source && own) {
    stageReport.cachePush.push({ ref: formatRef(first.ref), action: 'unchanged' });
    ctx.log.info(`${formatRef(first.ref)}: every step was cached from it; nothing to export`);
    written = first.ref;
  } else if (source) {
    const copied = await ctx.ops.copyManifest(source.ref, first.ref);
    stageReport.cachePush.push({ ref: formatRef(first.ref), action: copied.ok ? 'copied' : 'failed', ...(copied.ok ? {} : { message: copied.message }) });
    written = copied.ok ? first.ref : undefined;
  } else {
    written = (await exportCache(ctx, target, first.ref, cacheFrom, stepSeconds, known)) !== undefined ? first.ref : undefined;
  }
  await copyToOtherScopes(ctx, stageReport, written, others);
}

/** After a failed build: each finished stage that no other finished stage contains, to its own tag. */
async function writeFinishedStages(ctx: RegistryCacheContext, finished: ReadonlySet<string>, cacheFrom: readonly ImageRef[], stepSeconds: StepSeconds, known: KnownBlobs): Promise<void> {
  const { plan } = ctx;
  const done = plan.stages.filter((s) => !s.isTarget && s.targetArg !== undefined && finished.has(labelOf(s)));
  const outermost = done.filter((s) => !done.some((other) => other !== s && other.needs.includes(s.key)));
  if (outermost.length === 0) return void ctx.log.info('no stage finished: no cache to write');
  await Promise.all(
    outermost.map(async (stage) => {
      const [first, ...others] = stage.registryWrites;
      if (!first) return;
      const sent = await exportCache(ctx, stage, first.ref, cacheFrom, stepSeconds, known);
      await copyToOtherScopes(ctx, stageReportOf(ctx.report, stage), sent !== undefined ? first.ref : undefined, others);
    }),
  );
}

/** Bytes the build fetched: cache layers (sized from the cache manifests) and FROM image blobs (sized by their lines). */
async function pulledBytes(ctx: RegistryCacheContext, output: string, cacheFrom: readonly ImageRef[]): Promise<{ pulledBytes: number }> {
  const fetched = buildkitFetches(output);
  const unsized = [...fetched.values()].some((size) => size === undefined);
  const sizes = unsized ? await ctx.ops.blobSizes(cacheFrom) : new Map<string, number>();
  return { pulledBytes: fetchedBytes(fetched, sizes) };
}

const labelOf = buildkitLabel;

function recordSteps(report: RunReport, stage: PlannedStage, steps: readonly BuildStep[], finished: boolean, earlier: StepSeconds): void {
  const stageReport = stageReportOf(report, stage);
  // A one-stage Dockerfile's steps carry no stage label.
  const own = steps.filter((s) => s.stage === labelOf(stage) || (s.stage === undefined && stage.isTarget));
  const counted = countSteps(own);
  const ran = own.some((s) => !s.cached);
  // BuildKit prints only the cached steps it visits: a stage with nothing to run counts all its steps.
  stageReport.steps = !ran && stage.ownSteps !== undefined && (finished || counted.total === 0) ? { cached: stage.ownSteps, total: stage.ownSteps } : counted;
  stageReport.cachedInstructions = own.filter((s) => s.cached).map((s) => s.instruction);
  const saved = own.filter((s) => s.cached).map((s) => earlier.get(stepKey(s.stage, s.instruction)));
  stageReport.savedSeconds = saved.some((v) => v !== undefined) ? saved.reduce<number>((sum, v) => sum + (v ?? 0), 0) : null;
  stageReport.uncachedStepSeconds = own.reduce((sum, s) => sum + (s.cached ? 0 : (s.seconds ?? 0)), 0);
  stageReport.buildSeconds = ran ? stageReport.uncachedStepSeconds : null;
  stageReport.status = finished ? (ran ? 'built' : 'cached') : 'not-built';
}

