import { buildkitLabel, countSteps, parseBuildOutput, stageProgress, type BuildStep } from '../engine/build-output.js';
import { type Docker, displayInvocation } from '../engine/docker.js';
import { tail, UserError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatRef, type ImageRef, repositoryOf } from '../plan/image-ref.js';
import { registryBuildInvocation, type CacheCandidate, type Plan, type PlannedStage } from '../plan/plan.js';
import type { CacheOps } from '../registry/cache-ops.js';
import type { PhaseTraffic } from '../report/phase-traffic.js';
import type { RunReport, StageReport } from '../report/report.js';
import { EarlyCacheExports } from './early-cache-export.js';
import { cacheExportError, copyToOtherScopes, exportCache, knownBefore, type KnownBlobs, recordExport, stageReportOf, type StepSeconds, stepKey } from './registry-cache-export.js';
import { type ExportTiming, targetExportTiming } from './export-timing.js';
import { buildkitFetches, fetchedBytes } from '../report/transfers.js';

/**
 * BuildKit's own registry cache, for builders that can export one (plan/strategy.ts).
 *
 * One build of the target with every registry cache found (branch, default branches,
 * unprefixed: BuildKit takes each step from whichever has it) pushes the deploy image
 * itself. Its cache (--cache-to mode=max) is exported after the deploy image, in the
 * same build, unless the inputs recorded with the cache say no step should run: then
 * by a second build of the target, every step a local hit, only when a step ran, so a
 * no-change run writes nothing (export-timing.ts). A build that fails exports no cache,
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
  /** Digests of what the build and its parts read (context-digest.ts): when to export, and recorded with the cache. */
  readonly digests: Promise<ReadonlyMap<string, string | undefined>>;
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

/**
 * Every registry cache found, each once, scope by scope (most specific first), the
 * target's before the stages': the build's --cache-from list. A tag whose manifest is
 * one already listed (`digestOf`, from the lookups) is left out: the default branch's
 * caches are copied to the unprefixed scope, and BuildKit would fetch and merge the
 * same cache twice.
 */
export function cacheSources(plan: Plan, found: RegistryResolution, digestOf: (ref: ImageRef) => string | undefined = () => undefined): ImageRef[] {
  const target = plan.stages[plan.stages.length - 1];
  const ordered = [...(target ? [target] : []), ...plan.stages.filter((s) => s !== target)];
  const scopes = target?.registryCandidates.map((c) => c.scope) ?? [];
  const all = scopes.flatMap((scope) =>
    ordered.flatMap((stage) => (found.get(stage.key) ?? []).filter((c) => c.scope.kind === scope.kind && c.scope.branch === scope.branch).map((c) => c.ref)),
  );
  const seen = new Set<string>();
  return all.filter((ref) => {
    const key = digestOf(ref) ?? formatRef(ref);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
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
  const cacheFrom = cacheSources(plan, found, (ref) => ctx.ops.digestAtLookup(ref));
  // Read while the build runs: what the cached steps took when they last ran, and which blobs the registry holds.
  const imported = importedStepSeconds(ctx, cacheFrom);
  const knowing = knownBefore(ctx, cacheFrom);
  // The decision waits for the digests only briefly (a large context): without them the export goes after the build.
  const timing = await exportTiming(ctx, target, found, await settledWithin(ctx.digests, DIGEST_WAIT_MS, new Map()));
  const inBuild = timing.when === 'in-build' ? target.registryWrites[0]?.ref : undefined;
  if (plan.pushCache) log.info(`cache export: ${inBuild ? 'in the build, after the deploy image' : 'after the build'} (${timing.why})`);
  const phase = `build ${target.key} (target) with the registry cache${plan.push ? ', deploy push' : ''}${inBuild ? ', cache export' : ''}`;
  const invocation = registryBuildInvocation(plan, { stage: target, cacheFrom, cacheToInBuild: inBuild });
  const early = new EarlyCacheExports(ctx, cacheFrom, knowing, phase);
  const feedEarly = early.watcher();
  // The steps may take as long as they take; the push at the end is a registry operation, bounded by --timeout, and so is the cache export in the build.
  const stop = new AbortController();
  const onCancel = (): void => stop.abort(ctx.cancel.reason);
  ctx.cancel.addEventListener('abort', onCancel, { once: true });
  let pushTimer: NodeJS.Timeout | undefined;
  let pushTimedOut = false;
  let cacheTimer: NodeJS.Timeout | undefined;
  let cacheTimedOut = false;
  // BuildKit exports the cache after the image: once it starts, the deploy image is in the registry.
  let exportingCache = false;
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
        if (inBuild && !exportingCache && /^#\d+ exporting cache to registry/m.test(chunk)) {
          exportingCache = true;
          const still = early.running();
          if (still.length > 0) log.info(`the early cache export of ${still.join(', ')} still runs as the build exports its cache: layers it has not sent yet may go up twice`);
          clearTimeout(pushTimer);
          cacheTimer = setTimeout(() => {
            cacheTimedOut = true;
            stop.abort('timeout');
          }, ctx.timeoutMs);
        }
      },
      cancelSignal: stop.signal,
    });
  });
  clearTimeout(cacheTimer);
  clearTimeout(pushTimer);
  ctx.cancel.removeEventListener('abort', onCancel);
  // A build stopped while it exported its cache (--timeout, SIGTERM) has built and pushed the deploy image.
  const built = result.exitCode === 0 || exportingCache;
  const known = await knowing;
  ctx.traffic.add(phase, Promise.all([pulledBytes(ctx, result.all, cacheFrom), built && plan.push ? deployPushedBytes(ctx, known) : 0]).then(([pulled, pushed]) => ({ ...pulled, pushedBytes: pushed })));
  const steps = parseBuildOutput(result.all, 'buildkit', true);
  const progress = stageProgress(result.all);
  const earlier = await imported;
  for (const stage of plan.stages) recordSteps(report, stage, steps, progress.finished.has(labelOf(stage)) || built, earlier);
  // The record this run leaves: what it ran, and what it took over from the caches for the rest.
  const stepSeconds: StepSeconds = new Map(earlier);
  for (const step of steps) if (!step.cached && step.seconds !== undefined) stepSeconds.set(stepKey(step.stage, step.instruction), step.seconds);

  let failure: UserError | undefined;
  let deployError: UserError | undefined;
  const targetDone = progress.finished.has(labelOf(target)) || built;
  if (built) {
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
      const inBuildExport = inBuild ? { ref: inBuild, error: inBuildExportError(result, { exportingCache, cacheTimedOut, timeoutMs: ctx.timeoutMs }) } : undefined;
      const recorded = new Map([...(await ctx.digests)].filter((e): e is [string, string] => e[1] !== undefined));
      if (built || deployError) await writeTargetCache(ctx, { target, found, cacheFrom, steps, stepSeconds, known, inBuild: inBuildExport, inputs: recorded, phase });
      else await writeFinishedStages(ctx, progress.finished, cacheFrom, stepSeconds, known);
    });
  }
  return { failure, deployError };
}

/** How long the build waits for the input digests once the caches are resolved. */
const DIGEST_WAIT_MS = 300;

/** `pending`'s value, or `fallback` if it has not settled within `ms`. */
async function settledWithin<T>(pending: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([pending, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** What went wrong with the cache export inside the build; undefined when BuildKit wrote it. */
function inBuildExportError(result: { exitCode: number; all: string }, state: { exportingCache: boolean; cacheTimedOut: boolean; timeoutMs: number }): string | undefined {
  if (state.cacheTimedOut) return `timed out after ${state.timeoutMs / 1000}s (--timeout)`;
  if (!state.exportingCache) return 'the build stopped before it';
  // Stopped during the export (SIGTERM): the cache tag may still be the old one.
  if (result.exitCode !== 0) return 'the build was stopped during it';
  return cacheExportError(result.all);
}

interface TargetCacheWrite {
  readonly target: PlannedStage;
  readonly found: RegistryResolution;
  readonly cacheFrom: readonly ImageRef[];
  readonly steps: readonly BuildStep[];
  readonly stepSeconds: StepSeconds;
  readonly known: KnownBlobs;
  /** The export the build itself made (--cache-to in it), and what went wrong with it. */
  readonly inBuild: { readonly ref: ImageRef; readonly error: string | undefined } | undefined;
  /** This run's input digests, recorded with the cache. */
  readonly inputs: ReadonlyMap<string, string>;
  /** The build's phase: an export made in the build counts there. */
  readonly phase: string;
}

/**
 * The target's registry cache: the build's own export when it made one; otherwise
 * exported when a step ran, or kept, or copied from the scope it came from.
 */
async function writeTargetCache(ctx: RegistryCacheContext, write: TargetCacheWrite): Promise<void> {
  const { target, found, cacheFrom, steps, stepSeconds, known, inBuild, inputs } = write;
  const [first, ...others] = target.registryWrites;
  if (!first) return void ctx.log.info('no cache scope to write');
  const stageReport = stageReportOf(ctx.report, target);
  const targetFound = found.get(target.key) ?? [];
  const anyRan = steps.some((s) => !s.cached);
  const own = targetFound.find((c) => formatRef(c.ref) === formatRef(first.ref));
  const source = anyRan ? undefined : (own ?? targetFound[0]);
  let written: ImageRef | undefined;
  if (inBuild && inBuild.error === undefined) {
    const bytes = await recordExport(ctx, target, inBuild.ref, stepSeconds, known, { note: 'exported in the build, after the deploy image', inputs });
    ctx.traffic.addEarlyCacheUpload(write.phase, bytes);
    written = inBuild.ref;
  } else if (inBuild && !anyRan && source) {
    ctx.log.warn(`the cache export in the build failed (${inBuild.error}); every step was cached, so the cache it came from is kept`);
    written = await keepOrCopy(ctx, stageReport, first.ref, source, own);
  } else if (inBuild && /timed out/.test(inBuild.error ?? '')) {
    stageReport.cachePush.push({ ref: formatRef(first.ref), action: 'failed', message: inBuild.error });
    ctx.log.warn(`could not export the registry cache ${formatRef(first.ref)} (${inBuild.error}); the build goes on, the next run may be slower`);
  } else if (source) {
    written = await keepOrCopy(ctx, stageReport, first.ref, source, own);
  } else {
    if (inBuild) ctx.log.info(`the cache export in the build failed (${inBuild.error}); exporting it again by itself`);
    written = (await exportCache(ctx, target, first.ref, cacheFrom, stepSeconds, known, { inputs })) !== undefined ? first.ref : undefined;
  }
  await copyToOtherScopes(ctx, stageReport, written, others);
}

/** No step ran: the branch's own cache stays as it is, or becomes a copy of the one that served the build. */
async function keepOrCopy(ctx: RegistryCacheContext, stageReport: StageReport, to: ImageRef, source: CacheCandidate, own: CacheCandidate | undefined): Promise<ImageRef | undefined> {
  if (own) {
    stageReport.cachePush.push({ ref: formatRef(to), action: 'unchanged' });
    ctx.log.info(`${formatRef(to)}: every step was cached from it; nothing to export`);
    return to;
  }
  const copied = await ctx.ops.copyManifest(source.ref, to);
  stageReport.cachePush.push({ ref: formatRef(to), action: copied.ok ? 'copied' : 'failed', ...(copied.ok ? {} : { message: copied.message }) });
  return copied.ok ? to : undefined;
}

/** When the target's cache is exported (export-timing.ts), from the inputs recorded with the most specific cache found for it. */
async function exportTiming(ctx: RegistryCacheContext, target: PlannedStage, found: RegistryResolution, digests: ReadonlyMap<string, string | undefined>): Promise<ExportTiming> {
  const write = target.registryWrites[0];
  if (!ctx.plan.pushCache || !write) return { when: 'after', why: 'no cache is written' };
  if (ctx.ops.isDown(write.ref) || ctx.ops.cannotPush(write.ref)) return { when: 'after', why: 'the cache registry cannot take it' };
  const best = (found.get(target.key) ?? [])[0];
  const recorded = best ? await ctx.ops.cacheInputs(best.ref) : undefined;
  return targetExportTiming(ctx.plan, recorded, digests);
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

