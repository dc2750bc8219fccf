import type { CacheOps } from '../registry/cache-ops.js';
import type { DeployHandoff } from './deploy-handoff.js';
import type { Docker } from '../engine/docker.js';
import { formatRef, type ImageRef } from '../plan/image-ref.js';
import type { Logger } from '../log.js';
import type { CacheCandidate, PlannedStage } from '../plan/plan.js';
import type { StageReport } from '../report/report.js';
import { classifyFailure } from '../registry/retry.js';
import { firstLine } from '../errors.js';
import type { CacheUploader } from './cache-uploader.js';

/** Whether two layer lists (diff IDs) are the same image content. */
export function sameLayers(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return a !== undefined && b !== undefined && a.length > 0 && a.length === b.length && a.every((d, i) => d === b[i]);
}

export interface CachePushDeps {
  readonly docker: Docker;
  readonly ops: CacheOps;
  readonly log: Logger;
  /** How cache images reach the registry (docker push; on 20.10 also the direct upload). */
  readonly uploader: CacheUploader;
  /** The deploy pushes of this run: the target's cache builds on them (deploy-handoff.ts). */
  readonly deploys?: DeployHandoff;
}

/** Cache images a stage's push builds on. */
export interface CacheSources {
  /** Those that may hold the image's layers (the registry then has them). */
  forPush(): Promise<readonly ImageRef[]>;
  /** Those whose inline-cache records may restore the links a rebuilt stage lost. */
  forRepair(): Promise<readonly ImageRef[]>;
}

/**
 * Writes a stage's cache tags. The registry already has the stage when it came out
 * with the same layers as the cache it was built from (or was not rebuilt at all):
 * then a tag is left alone (same tag) or pointed at that cache by a manifest copy,
 * so nothing is re-uploaded and the original, fuller cache metadata is kept.
 * Otherwise the first tag is pushed and the others are manifest copies of it.
 */
export async function pushStageCache(
  stage: PlannedStage,
  stageReport: StageReport,
  source: CacheCandidate | undefined,
  deps: CachePushDeps,
  knownUnchanged = false,
  repairSources?: CacheSources,
): Promise<CacheCandidate | undefined> {
  const { ops, log, docker } = deps;
  if (stage.writes.length === 0) return undefined;
  const local = formatRef(stage.localRef);
  let unchanged = knownUnchanged && source !== undefined;
  // Read once: the unchanged check and the uploader choice both need the local layers.
  let localLayers: string[] | undefined;
  if (!unchanged && source) {
    const [local_, remoteLayers] = await Promise.all([docker.diffIds(local), ops.remoteDiffIds(source.ref)]);
    localLayers = local_;
    unchanged = sameLayers(localLayers, remoteLayers);
  }
  let pushedAs: CacheCandidate | undefined;
  type Entry = StageReport['cachePush'][number];
  const writeOne = async (write: CacheCandidate): Promise<Entry> => {
    const ref = formatRef(write.ref);
    if (ops.isDown(write.ref) || ops.cannotPush(write.ref)) {
      return { ref, action: 'skipped', message: ops.isDown(write.ref) ? 'registry unreachable' : 'no push rights' };
    }
    if (deps.deploys?.isDeployTag(write.ref)) return { ref, action: 'deployed', message: 'a deploy tag: the deploy push writes it' };
    const copyFrom = unchanged ? source : pushedAs;
    if (copyFrom && ref === formatRef(copyFrom.ref)) return { ref, action: 'unchanged' };
    if (copyFrom) {
      const copied = await ops.copyManifest(copyFrom.ref, write.ref);
      if (copied.ok) {
        const already = copied.message === 'already';
        if (!already) log.info(`cache ${ref}: tagged in the registry from ${formatRef(copyFrom.ref)} (no upload)`);
        return { ref, action: already ? 'unchanged' : 'copied' };
      }
      log.debug(`manifest copy to ${ref} failed (${copied.message}); pushing instead`);
      if (unchanged && !(await hasLocalImage(docker, local))) {
        log.warn(`could not tag the cache ${ref}: ${firstLine(copied.message)}`);
        return { ref, action: 'failed', message: firstLine(copied.message) };
      }
    }
    const first = !pushedAs;
    const repair = repairSources && first ? { sources: () => repairSources.forRepair(), base: stage.baseImage } : undefined;
    // The same image on its way up as the deploy tag, into this repository: copied once it is there.
    const deployed = first ? await deps.deploys?.pushedInto(local, write.ref) : undefined;
    const copied = deployed ? await deps.uploader.copy(deployed, write.ref, repair) : undefined;
    if (deployed && copied && !copied.ok) log.debug(`manifest copy of the deploy tag to ${ref} failed (${firstLine(copied.message)}); pushing instead`);
    // A push builds on the caches of the stages below (it may wait for their writes); a copy needs none.
    const pushing = async () => deps.uploader.push(local, write.ref, repairSources ? await repairSources.forPush() : source ? [source.ref] : [], localLayers, repair);
    const pushed = copied?.ok ? { ...copied, uploader: 'deploy' as const } : await pushing();
    if (!pushed.ok) {
      log.warn(`could not push the cache ${ref}: ${firstLine(pushed.message)} (the build goes on; the next run may be slower)`);
      return { ref, action: 'failed', message: firstLine(pushed.message) };
    }
    const how = { direct: 'direct upload', engine: 'docker push', deploy: `manifest copy of the deploy push ${deployed ? formatRef(deployed) : ''}` }[pushed.uploader];
    log.info(`cache ${ref}: pushed${pushed.uploader === 'engine' ? '' : ` (${how})`}`);
    if (first) {
      // Added to what an early upload of the stage's dependency layers sent (checkpoint.ts).
      if (pushed.uploadedBytes !== undefined) stageReport.mbPushed = (stageReport.mbPushed ?? 0) + pushed.uploadedBytes / 1e6;
      if (pushed.repaired > 0) log.info(`cache ${ref}: restored ${pushed.repaired} inline-cache link(s) the engine dropped`);
    }
    pushedAs ??= write;
    return { ref, action: 'pushed', message: how };
  };
  // Until one tag holds the image, one write at a time (a push refused for its tag lets the
  // next tag try); after that every other tag is a manifest copy of it, all at once. A push
  // that failed on the way (timeouts, resets, 5xx) would fail the same for the next tag: the
  // same layers go to the same registry, so those are not tried.
  const entries: Entry[] = [];
  let next = 0;
  let failedOnTheWay: Entry | undefined;
  while (next < stage.writes.length && !unchanged && !pushedAs && !failedOnTheWay) {
    const entry = await writeOne(stage.writes[next++] as CacheCandidate);
    entries.push(entry);
    if (entry.action === 'failed' && classifyFailure(entry.message ?? '') !== 'permanent') failedOnTheWay = entry;
  }
  if (failedOnTheWay) {
    for (const write of stage.writes.slice(next)) {
      log.info(`cache ${formatRef(write.ref)}: not tried (the push of ${failedOnTheWay.ref} just failed on the way; this one sends the same layers)`);
      entries.push({ ref: formatRef(write.ref), action: 'skipped', message: `the push of ${failedOnTheWay.ref} failed` });
    }
  } else entries.push(...(await Promise.all(stage.writes.slice(next).map(writeOne))));
  stageReport.cachePush.push(...entries);
  return unchanged ? source : pushedAs;
}

async function hasLocalImage(docker: Docker, ref: string): Promise<boolean> {
  return (await docker.imageId(ref)) !== undefined;
}
