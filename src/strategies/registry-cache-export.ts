import { displayInvocation } from '../engine/docker.js';
import { tail } from '../errors.js';
import { formatRef, type ImageRef, repositoryOf } from '../plan/image-ref.js';
import { registryBuildInvocation, type CacheCandidate, type PlannedStage } from '../plan/plan.js';
import { normaliseInstruction } from '../report/history.js';
import type { RunReport, StageReport } from '../report/report.js';
import type { RegistryCacheContext } from './registry-cache.js';

/** Writing registry caches: the export build, copies to other scopes, and what each sent. */

/**
 * The blobs each repository is known to hold, to tell what a push inside BuildKit
 * sent (it prints no sizes, and does not say which blobs the registry had): the
 * caches it read, then what this run pushed. A fresh engine uploads the base image's
 * layers into a repository that lacks them (measured: 1.07 MB of busybox on a cold
 * run); an engine that kept the base's source labels can mount them instead, and
 * then the report counts them although nothing was sent.
 */
export class KnownBlobs {
  private readonly byRepo = new Map<string, Set<string>>();

  add(repository: string, digests: Iterable<string>): void {
    const known = this.byRepo.get(repository) ?? new Set<string>();
    for (const digest of digests) known.add(digest);
    this.byRepo.set(repository, known);
  }

  /** Bytes of the blobs the repository did not hold before; it holds them from now on. */
  take(repository: string, sizes: ReadonlyMap<string, number>): number {
    const known = this.byRepo.get(repository) ?? new Set<string>();
    let bytes = 0;
    for (const [digest, size] of sizes) if (!known.has(digest)) bytes += size;
    this.add(repository, sizes.keys());
    return bytes;
  }
}

export async function knownBefore(ctx: RegistryCacheContext, cacheFrom: readonly ImageRef[]): Promise<KnownBlobs> {
  const known = new KnownBlobs();
  await Promise.all(cacheFrom.map(async (ref) => known.add(repositoryOf(ref), (await ctx.ops.blobSizes([ref])).keys())));
  return known;
}

/** Step times, by stage label and instruction, as the helper records them in a registry cache. */
export type StepSeconds = Map<string, number>;

export function stepKey(label: string | undefined, instruction: string): string {
  return `${label ?? ''} ${normaliseInstruction(instruction)}`;
}

export async function copyToOtherScopes(ctx: RegistryCacheContext, stageReport: StageReport, written: ImageRef | undefined, others: readonly CacheCandidate[]): Promise<void> {
  for (const other of others) {
    if (!written) {
      stageReport.cachePush.push({ ref: formatRef(other.ref), action: 'skipped' });
      continue;
    }
    const copied = await ctx.ops.copyManifest(written, other.ref);
    stageReport.cachePush.push({ ref: formatRef(other.ref), action: copied.ok ? (copied.message === 'already' ? 'unchanged' : 'copied') : 'failed', ...(copied.ok ? {} : { message: copied.message }) });
    if (!copied.ok) ctx.log.warn(`could not copy the cache ${formatRef(written)} to ${formatRef(other.ref)}: ${copied.message}`);
  }
}

/** What an export build is for, besides the stage and tag. */
export interface ExportOptions {
  /** A cut copy of the Dockerfile (the stage's dependency part), built in its place. */
  readonly dockerfile?: string | undefined;
  /** Said in the log and the report: why this export ran when it did. */
  readonly note?: string | undefined;
  readonly cancelSignal?: AbortSignal | undefined;
  /** An early export: a failure is said in passing, not recorded as a failed cache write (the target's export sends those layers). */
  readonly early?: boolean | undefined;
  /** The digests of what this run's build read, recorded with the target's cache (export-timing.ts). */
  readonly inputs?: ReadonlyMap<string, string> | undefined;
}

/** The first error or warning BuildKit printed after "exporting cache to registry" (with ignore-error the build still exits 0). */
export function cacheExportError(output: string): string | undefined {
  return /^#\d+ (?:ERROR|WARN(?:ING)?):? .*$/m.exec(output.split(/exporting cache to registry/).slice(1).join('\n'))?.[0];
}

/**
 * One export build (every step a local hit). Best effort: a cache that cannot be
 * written only warns. Returns the bytes it sent, or undefined when it failed.
 */
export async function exportCache(ctx: RegistryCacheContext, stage: PlannedStage, to: ImageRef, cacheFrom: readonly ImageRef[], stepSeconds: StepSeconds, known: KnownBlobs, options: ExportOptions = {}): Promise<number | undefined> {
  const stageReport = stageReportOf(ctx.report, stage);
  if (ctx.ops.isDown(to) || ctx.ops.cannotPush(to)) {
    stageReport.cachePush.push({ ref: formatRef(to), action: 'skipped', message: ctx.ops.isDown(to) ? 'registry unreachable' : 'no push rights' });
    return undefined;
  }
  const invocation = registryBuildInvocation(ctx.plan, { stage, cacheFrom, cacheTo: to, dockerfile: options.dockerfile });
  ctx.log.debug(displayInvocation(ctx.cli, invocation, ctx.plan.revealBuildArgs));
  const result = await ctx.docker.exec(invocation, { onOutput: (chunk) => ctx.log.raw(chunk), timeoutMs: ctx.timeoutMs, cancelSignal: options.cancelSignal });
  const exportError = cacheExportError(result.all);
  if (result.exitCode !== 0 || exportError) {
    const why = exportError ?? (result.timedOut ? `timed out after ${ctx.timeoutMs / 1000}s (--timeout)` : `docker buildx build exited ${result.exitCode}: ${tail(result.all, 1)}`);
    if (options.early) {
      ctx.log.info(`early export of ${stage.key} to ${formatRef(to)} failed (${why}); the target's cache export sends those layers`);
      return undefined;
    }
    stageReport.cachePush.push({ ref: formatRef(to), action: 'failed', message: why });
    ctx.log.warn(`could not export the registry cache ${formatRef(to)}${options.note ? ` (${options.note})` : ''} (${why}); the build goes on, the next run may be slower`);
    return undefined;
  }
  return recordExport(ctx, stage, to, stepSeconds, known, options);
}

/** After an export wrote `to`: what it sent, the step times and inputs in its index, the report. Returns the bytes sent. */
export async function recordExport(ctx: RegistryCacheContext, stage: PlannedStage, to: ImageRef, stepSeconds: StepSeconds, known: KnownBlobs, options: Pick<ExportOptions, 'note' | 'inputs'>): Promise<number> {
  const stageReport = stageReportOf(ctx.report, stage);
  // The export rewrote `to`: what this run read of it before is stale.
  ctx.ops.forget(to);
  const [bytes] = await Promise.all([
    ctx.ops.blobSizes([to]).then((sizes) => known.take(repositoryOf(to), sizes)),
    // Before any copy of it to another scope, so that the copies carry the step times too.
    stepSeconds.size > 0 || (options.inputs?.size ?? 0) > 0 ? ctx.ops.recordCacheStepSeconds(to, stepSeconds, options.inputs) : undefined,
  ]);
  stageReport.mbPushed = (stageReport.mbPushed ?? 0) + bytes / 1e6;
  stageReport.cachePush.push({ ref: formatRef(to), action: 'pushed', ...(options.note ? { message: options.note } : {}) });
  ctx.log.info(`exported the registry cache of ${stage.key} to ${formatRef(to)}${options.note ? ` (${options.note})` : ''}`);
  return bytes;
}

export function stageReportOf(report: RunReport, stage: PlannedStage): StageReport {
  const found = report.stages.find((s) => s.stage === stage.key);
  if (!found) throw new Error(`no report entry for stage ${stage.key}`);
  return found;
}
