import { earlyExports, type Plan } from '../plan/plan.js';

/**
 * When the target's registry cache is exported. A second build after the deploy push
 * costs a BuildKit session (0.6-0.9 s measured on the bench's source changes, 0.6-1.3 s
 * on its cold runs and dependency changes, where BuildKit's own --cache-to in the build
 * added none); but a --cache-to in the build exports also when no step ran (0.1-0.5 s
 * for nothing). So the export goes in the build unless the inputs recorded with the
 * cache (context-digest.ts) say no step should run. Early exports of dependency parts
 * still go up beside the build (early-cache-export.ts): the build's export comes after
 * its deploy push and finds their blobs in the registry once they are up (a part still
 * going up then is sent by both; the run says so).
 */
export type ExportTiming = { readonly when: 'in-build' | 'after'; readonly why: string };

/** The key of a part's digest: the whole build, or a stage's early-export part. */
export const BUILD_INPUTS = 'build';
export const partKey = (stage: string, part: 'cut' | 'whole'): string => `${stage}:${part}`;

export function targetExportTiming(plan: Plan, recorded: ReadonlyMap<string, string> | undefined, current: ReadonlyMap<string, string | undefined>): ExportTiming {
  const build = current.get(BUILD_INPUTS);
  if (recorded === undefined) return { when: 'in-build', why: 'no record of the inputs of the cache found: steps should run' };
  if (build !== undefined && recorded.get(BUILD_INPUTS) === build) return { when: 'after', why: 'the inputs are those recorded with the cache: no step should run' };
  for (const { stage, part } of earlyExports(plan)) {
    const key = partKey(stage.key, part);
    const now = current.get(key);
    if (now === undefined || recorded.get(key) !== now) return { when: 'in-build', why: `${part === 'cut' ? 'the dependency part of' : 'stage'} ${stage.key} may have changed: it goes up early, the rest in the build` };
  }
  return { when: 'in-build', why: 'only steps after the dependency parts changed' };
}
