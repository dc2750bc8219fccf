import type { CacheOps } from './cache-ops.js';
import { firstLine } from '../errors.js';
import { formatRef, type ImageRef } from '../plan/image-ref.js';
import type { Logger } from '../log.js';
import type { CacheCandidate, Plan } from '../plan/plan.js';
import type { Moved } from '../report/phase-traffic.js';
import type { RunReport } from '../report/report.js';
import { bytesOfShortIds, pullCompleteIds } from '../report/transfers.js';

/** Looks up every candidate of every stage at once; each stage keeps the ones found, most specific first. */
export async function resolve(plan: Plan, ops: CacheOps, report: RunReport, log: Logger): Promise<Map<string, CacheCandidate[]>> {
  const resolved = new Map<string, CacheCandidate[]>();
  await Promise.all(
    plan.stages.map(async (stage, i) => {
      const lookups = await Promise.all(stage.candidates.map((c) => ops.lookup(c.ref)));
      const stageReport = report.stages[i];
      const found: CacheCandidate[] = [];
      for (const [j, candidate] of stage.candidates.entries()) {
        let result = lookups[j] ?? 'unknown';
        if (result === 'unknown' && found.length === 0 && !ops.isDown(candidate.ref)) {
          // The API could not tell (auth scheme, proxy): a pull answers for sure.
          result = (await ops.pull(candidate.ref)).ok ? 'found' : 'unknown';
        }
        stageReport?.lookups.push({ ref: formatRef(candidate.ref), result });
        if (result === 'found') found.push(candidate);
      }
      resolved.set(stage.key, found);
      const hit = found[0];
      if (stageReport && hit) stageReport.cacheUsed = { scope: hit.scope.kind, branch: hit.scope.branch ?? null, ref: formatRef(hit.ref) };
      log.info(`${stage.key}: ${hit ? `cache ${formatRef(hit.ref)} (${hit.scope.kind}${hit.scope.branch ? ` ${hit.scope.branch}` : ''})${found.length > 1 ? `, and ${found.length - 1} more scope(s) as extra sources` : ''}` : 'no cache found'}`);
    }),
  );
  return resolved;
}

/** The classic builder reads caches from local images: pull the most specific one of each stage. */
export async function pullResolved(plan: Plan, resolved: Map<string, CacheCandidate[]>, ops: CacheOps, report: RunReport, log: Logger, onPulled?: (moved: Promise<Moved>) => void): Promise<void> {
  // docker pull says which layers it downloaded ("Pull complete", by compressed digest); the manifests have their sizes.
  // Counted once over all the pulls: two pulls at once of a shared layer can both say so.
  const downloaded = new Set<string>();
  const pulledRefs: ImageRef[] = [];
  await Promise.all(
    plan.stages.map(async (stage, i) => {
      const hit = resolved.get(stage.key)?.[0];
      if (!hit) return;
      const result = await ops.pull(hit.ref);
      for (const id of pullCompleteIds(result.output ?? '')) downloaded.add(id);
      pulledRefs.push(hit.ref);
      if (result.ok) {
        resolved.set(stage.key, [hit]);
        return;
      }
      log.warn(`could not pull the cache ${formatRef(hit.ref)}: ${firstLine(result.message)}; building ${stage.key} without it`);
      resolved.set(stage.key, []);
      const stageReport = report.stages[i];
      if (stageReport) stageReport.cacheUsed = null;
    }),
  );
  onPulled?.(downloaded.size === 0 ? Promise.resolve({ pulledBytes: 0 }) : ops.blobSizes(pulledRefs).then((sizes) => ({ pulledBytes: bytesOfShortIds(downloaded, sizes) })));
}

