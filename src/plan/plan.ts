import type { StageCheckpoint } from '../dockerfile/dockerfile.js';
import type { DockerInvocation } from '../engine/docker.js';
import { branchToken, cacheTag, formatRef, type ImageRef, registryCacheTag, withTag } from './image-ref.js';
import type { StrategyKind } from './strategy.js';
import { withDockerfile } from '../dockerfile/copy.js';
import { type EarlyPart, registryEarlyPart } from '../engine/checkpoint-watch.js';

export type BuilderKind = 'classic' | 'buildkit';

/** Where a cache tag sits in the fallback order. */
export interface Scope {
  readonly kind: 'branch' | 'default' | 'unprefixed';
  /** The branch, for branch and default scopes. */
  readonly branch: string | undefined;
}

export interface CacheCandidate {
  readonly scope: Scope;
  readonly ref: ImageRef;
}

export interface PlannedStage {
  /** Stage name, or index for an unnamed stage. */
  readonly key: string;
  readonly isTarget: boolean;
  /** Passed as --target; undefined only for an unnamed last stage. */
  readonly targetArg: string | undefined;
  /** Caches to look for, most specific first. */
  readonly candidates: readonly CacheCandidate[];
  /** Cache tags this run writes when it builds the stage. */
  readonly writes: readonly CacheCandidate[];
  /**
   * The same scopes for BuildKit's registry cache (registry-cache strategy): the target's
   * holds every stage (mode=max); a stage's own is written only when a later stage failed.
   */
  readonly registryCandidates: readonly CacheCandidate[];
  readonly registryWrites: readonly CacheCandidate[];
  /** Run-unique local tag, so concurrent runs on one engine never clobber each other. */
  readonly localRef: ImageRef;
  /** The stable local tag the image keeps after the run (for later local builds); the run tag is removed. */
  readonly keptRef: ImageRef;
  /** Keys of the planned stages this one needs, directly or not. */
  readonly needs: readonly string[];
  /**
   * Keys of the planned stages down its FROM chain: their layers are in this stage's
   * image. undefined when unknown (--stages): then any of `needs` may be.
   */
  readonly layersFrom: readonly string[] | undefined;
  /** The image at the bottom of its FROM chain, when known (anchors inline-cache repair). */
  readonly baseImage: ImageRef | undefined;
  /** The stage cut before its source steps, when it has that shape (dockerfile.ts stageCheckpoint). */
  readonly checkpoint: StageCheckpoint | undefined;
  /** How many steps BuildKit shows for the stage, when known. */
  readonly buildkitSteps: number | undefined;
  /** Its steps as the report counts them (BuildKit's, without FROM), when known. */
  readonly ownSteps: number | undefined;
  /** How many history entries its own instructions leave at least (dockerfile.ts stageHistoryEntries). */
  readonly historyEntries: number | undefined;
}

export type CacheCompression = 'zstd' | 'gzip' | 'uncompressed';

export interface Plan {
  readonly builder: BuilderKind;
  readonly strategy: StrategyKind;
  /** A buildx builder named by the user (--builder NAME, BUILDX_BUILDER). */
  readonly buildxBuilder: string | undefined;
  /** How the registry cache's new layers are compressed (--cache-compression). */
  readonly cacheCompression: CacheCompression;
  /**
   * Inline strategy on buildx's BuildKit (Docker 26+, classic store): the target is
   * built without inline cache, which is written afterwards only when needed
   * (per-stage.ts deferredInlineCache).
   */
  readonly deferTargetInlineCache: boolean;
  /** Build arguments whose values --verbose may print (--show-build-arg); every other value prints as ***. */
  readonly revealBuildArgs: ReadonlySet<string>;
  readonly stages: readonly PlannedStage[];
  /** IMAGE:TAG and the extra tags. */
  readonly deploy: readonly ImageRef[];
  readonly push: boolean;
  readonly pushCache: boolean;
  readonly updateSharedCache: boolean;
  readonly branch: string | undefined;
  /** docker build arguments from the user, context excluded. */
  readonly passthrough: readonly string[];
  readonly context: string;
  readonly notes: readonly string[];
}

export interface StageInput {
  readonly key: string;
  /** Whether the stage has a name in the user's Dockerfile. */
  readonly named: boolean;
  /** The name --target uses for an unnamed stage, given in a copy of the Dockerfile; without it, such a stage is not built alone. */
  readonly targetName?: string | undefined;
  /** Keys of stages it needs directly. */
  readonly deps: readonly string[];
  /** Key of the stage it is built FROM; null when FROM is an image; undefined when unknown. */
  readonly baseStage?: string | null | undefined;
  /** True for the Dockerfile's last stage. */
  readonly isLast: boolean;
  /** The image at the bottom of the stage's FROM chain (through other stages), when known. */
  readonly baseImage?: ImageRef | undefined;
  readonly checkpoint?: StageCheckpoint | undefined;
  readonly buildkitSteps?: number | undefined;
  readonly ownSteps?: number | undefined;
  readonly historyEntries?: number | undefined;
}

export interface PlanInput {
  readonly image: ImageRef;
  readonly extraTags: readonly ImageRef[];
  readonly cacheRepo: Pick<ImageRef, 'domain' | 'path'>;
  /** Stages to build, dependencies first; the last one is the target. */
  readonly stages: readonly StageInput[];
  readonly branch: string | undefined;
  readonly defaultBranches: readonly string[];
  /** undefined: write shared tags only on a default branch. */
  readonly updateSharedCache: boolean | undefined;
  readonly push: boolean;
  readonly pushCache: boolean;
  readonly builder: BuilderKind;
  /** Default: inline for BuildKit, classic for the classic builder. */
  readonly strategy?: StrategyKind | undefined;
  readonly buildxBuilder?: string | undefined;
  readonly cacheCompression?: CacheCompression | undefined;
  readonly deferTargetInlineCache?: boolean | undefined;
  readonly revealBuildArgs?: readonly string[] | undefined;
  readonly runId: string;
  readonly passthrough: readonly string[];
  readonly context: string;
}

const LOCAL_DOMAIN = 'drc.local';

/** Pure: what the run will build, look for, and push. No I/O. */
export function makePlan(input: PlanInput): Plan {
  const notes: string[] = [];
  const target = input.stages[input.stages.length - 1];
  if (target === undefined) throw new Error('makePlan needs at least one stage');

  const branchScope: Scope | undefined = input.branch === undefined ? undefined : { kind: 'branch', branch: input.branch };
  const defaults = input.defaultBranches.filter((b) => b !== input.branch).map((branch): Scope => ({ kind: 'default', branch }));
  const unprefixed: Scope = { kind: 'unprefixed', branch: undefined };
  const readScopes = [...(branchScope ? [branchScope] : []), ...defaults, unprefixed];

  const onDefault = input.branch !== undefined && input.defaultBranches.includes(input.branch);
  const updateShared = input.updateSharedCache ?? onDefault;
  const writeScopes: Scope[] = [];
  if (input.pushCache) {
    if (branchScope) writeScopes.push(branchScope);
    if (updateShared) writeScopes.push(unprefixed);
  }
  if (input.branch === undefined) notes.push('no branch is known (tag build or detached HEAD): branch caches are neither read nor written');
  if (input.pushCache && !updateShared && input.branch !== undefined) {
    notes.push(`"${input.branch}" is not a default branch (${input.defaultBranches.join(', ')}): default-branch and unprefixed caches are read, not written`);
  }

  const tokenOf = (scope: Scope): string | null => (scope.branch === undefined ? null : branchToken(scope.branch));
  const refFor = (scope: Scope, key: string, isTarget: boolean): CacheCandidate => ({
    scope,
    ref: withTag(input.cacheRepo, cacheTag(tokenOf(scope), key, isTarget)),
  });
  const registryRefFor = (scope: Scope, key: string, isTarget: boolean): CacheCandidate => ({
    scope,
    ref: withTag(input.cacheRepo, registryCacheTag(tokenOf(scope), key, isTarget)),
  });

  const byKey = new Map(input.stages.map((s) => [s.key, s]));
  const planned = input.stages.filter((s) => s === target || s.named || s.targetName !== undefined);
  for (const stage of input.stages.filter((s) => s !== target && !s.named)) {
    notes.push(
      stage.targetName === undefined
        ? `stage ${stage.key} has no name, so docker cannot build it alone: it is built inside the stages that use it, not cached on its own`
        : `stage ${stage.key} has no name: the builds use a temporary copy of the Dockerfile that names it ${stage.targetName}, so it is built and cached on its own`,
    );
  }
  const closure = (key: string, seen = new Set<string>()): Set<string> => {
    for (const dep of byKey.get(key)?.deps ?? []) {
      if (seen.has(dep)) continue;
      seen.add(dep);
      closure(dep, seen);
    }
    return seen;
  };

  // Unnamed stages are not planned, but their layers still pass through to the stages built FROM them.
  const fromChain = (stage: StageInput): string[] | undefined => {
    const keys: string[] = [];
    for (let current = stage; current.baseStage !== null; ) {
      const base = current.baseStage === undefined ? undefined : byKey.get(current.baseStage);
      if (!base || keys.length > input.stages.length) return undefined;
      keys.push(base.key);
      current = base;
    }
    return keys.filter((k) => planned.some((s) => s.key === k));
  };

  const stages = planned.map((stage): PlannedStage => {
    const isTarget = stage === target;
    return {
      key: stage.key,
      isTarget,
      targetArg: stage.targetName ?? (stage.named ? stage.key : undefined),
      candidates: readScopes.map((scope) => refFor(scope, stage.key, isTarget)),
      writes: writeScopes.map((scope) => refFor(scope, stage.key, isTarget)),
      registryCandidates: readScopes.map((scope) => registryRefFor(scope, stage.key, isTarget)),
      registryWrites: writeScopes.map((scope) => registryRefFor(scope, stage.key, isTarget)),
      localRef: {
        domain: LOCAL_DOMAIN,
        path: input.cacheRepo.path,
        tag: `run-${input.runId}${cacheTag(null, stage.key, false)}`,
      },
      keptRef: { domain: LOCAL_DOMAIN, path: input.cacheRepo.path, tag: `last${cacheTag(null, stage.key, false)}` },
      needs: planned.map((s) => s.key).filter((k) => closure(stage.key).has(k)),
      layersFrom: fromChain(stage),
      baseImage: stage.baseImage,
      checkpoint: stage.checkpoint,
      buildkitSteps: stage.buildkitSteps,
      ownSteps: stage.ownSteps,
      historyEntries: stage.historyEntries,
    };
  });

  return {
    builder: input.builder,
    strategy: input.strategy ?? (input.builder === 'classic' ? 'classic' : 'inline'),
    buildxBuilder: input.buildxBuilder,
    cacheCompression: input.cacheCompression ?? 'zstd',
    deferTargetInlineCache: input.deferTargetInlineCache ?? false,
    revealBuildArgs: new Set(input.revealBuildArgs ?? []),
    stages,
    deploy: [input.image, ...input.extraTags],
    push: input.push,
    pushCache: input.pushCache,
    updateSharedCache: updateShared,
    branch: input.branch,
    passthrough: input.passthrough,
    context: input.context,
    notes,
  };
}

/** For each stage key, the caches found in the registry, most specific first. */
export type Resolution = ReadonlyMap<string, readonly CacheCandidate[]>;

/**
 * The `docker build` of one stage. `resolved` maps stage keys to the cache found
 * for them; `builtThisRun` lists stages already built by this run.
 */
/**
 * The docker build of one stage. `exportOnly`: the stage's steps already ran in
 * this run's target build, so every step is a local hit and no cache source is
 * needed (BuildKit).
 */
export function buildInvocation(plan: Plan, stage: PlannedStage, resolved: Resolution, builtThisRun: ReadonlySet<string>, exportOnly = false, inlineCache = true): DockerInvocation {
  const args = ['build'];
  if (stage.targetArg !== undefined) args.push('--target', stage.targetArg);
  // Tagged for keeping by the build itself: no docker tag per stage at the end of the run.
  args.push('--tag', formatRef(stage.localRef), '--tag', formatRef(stage.keptRef));
  // Every cache found, not only the most specific: an image rebuilt from an
  // imported cache can carry thinner cache metadata (ENGINE.md), and an older,
  // fuller cache of another scope still serves the unchanged steps.
  const cacheFrom: string[] = [];
  for (const key of exportOnly ? [] : [stage.key, ...stage.needs]) {
    for (const found of resolved.get(key) ?? []) cacheFrom.push(formatRef(found.ref));
  }
  if (plan.builder === 'classic') {
    // The classic builder uses only the --cache-from images once any is given,
    // so the stages this run just built must be listed too.
    for (const key of stage.needs) {
      const local = plan.stages.find((s) => s.key === key);
      if (local && builtThisRun.has(key)) cacheFrom.push(formatRef(local.localRef));
    }
  }
  for (const ref of cacheFrom) args.push('--cache-from', ref);
  if (plan.builder === 'buildkit' && inlineCache) args.push('--build-arg', 'BUILDKIT_INLINE_CACHE=1');
  args.push(...plan.passthrough, plan.context);
  const env: Record<string, string> =
    plan.builder === 'buildkit' ? { DOCKER_BUILDKIT: '1', BUILDKIT_PROGRESS: 'plain' } : { DOCKER_BUILDKIT: '0' };
  return { args, env };
}

/** What --dry-run shows: every command, assuming each stage's most specific cache exists. */
export function dryRunCommands(plan: Plan): { title: string; invocations: DockerInvocation[] }[] {
  if (plan.strategy === 'registry-cache') return registryDryRun(plan);
  const assumed = new Map(plan.stages.map((s) => [s.key, s.candidates.slice(0, 1)]));
  const built = new Set<string>();
  const phases: { title: string; invocations: DockerInvocation[] }[] = [];
  phases.push({
    title: 'resolve (registry lookups, most specific first; shown as the tags looked for)',
    invocations: plan.stages.flatMap((s) => s.candidates.map((c) => ({ args: ['manifest', 'inspect', formatRef(c.ref)], env: {} }))),
  });
  if (plan.builder === 'classic') {
    phases.push({
      title: 'pull the caches found (classic builder needs them locally)',
      invocations: plan.stages.flatMap((s) => (s.candidates[0] ? [{ args: ['pull', formatRef(s.candidates[0].ref)], env: {} }] : [])),
    });
  }
  const target = plan.stages[plan.stages.length - 1];
  if (plan.builder === 'buildkit' && target) {
    // With a cache for every stage, BuildKit runs the target build once, then exports the stages whose steps ran.
    phases.push({ title: `build ${target.key} (target) with every cache; stages whose steps all come from the cache are never exported`, invocations: [buildInvocation(plan, target, assumed, built, false, !plan.deferTargetInlineCache)] });
  }
  for (const stage of plan.stages) {
    const exportOnly = plan.builder === 'buildkit' && stage !== target;
    if (plan.builder === 'buildkit' && stage === target) {
      if (plan.deferTargetInlineCache) {
        phases.push({ title: `if the image of ${stage.key} has the layers of no cache found: build it again with its inline cache (every step a local hit, no --cache-from)`, invocations: [buildInvocation(plan, stage, assumed, built, true)] });
      }
      phases.push({ title: `push the cache of ${stage.key} (target)`, invocations: stage.writes.flatMap((write) => [{ args: ['tag', formatRef(stage.localRef), formatRef(write.ref)], env: {} }, { args: ['push', formatRef(write.ref)], env: {} }]) });
      continue;
    }
    const invocations = [buildInvocation(plan, stage, assumed, built, exportOnly)];
    built.add(stage.key);
    for (const write of stage.writes) {
      invocations.push({ args: ['tag', formatRef(stage.localRef), formatRef(write.ref)], env: {} });
      invocations.push({ args: ['push', formatRef(write.ref)], env: {} });
    }
    phases.push({ title: exportOnly ? `if a step of stage ${stage.key} ran: export it (every step a local hit), then push its cache` : `build stage ${stage.key}${stage.isTarget ? ' (target)' : ''}, then push its cache`, invocations });
  }
  if (target) {
    phases.push({
      title: plan.push ? 'deploy' : 'tag (deploy push off)',
      invocations: plan.deploy.flatMap((ref) => [
        { args: ['tag', formatRef(target.localRef), formatRef(ref)], env: {} },
        ...(plan.push ? [{ args: ['push', formatRef(ref)], env: {} }] : []),
      ]),
    });
  }
  return phases;
}

/** What a registry-cache build is asked to do. */
export interface RegistryBuild {
  /** The stage built: the target, for the deploy image; any stage, for a cache export. */
  readonly stage: PlannedStage;
  /** Existing registry caches only: BuildKit 0.13 can drop every import when one ref is missing. */
  readonly cacheFrom: readonly ImageRef[];
  /** Export the registry cache there (mode=max) and write no image. */
  readonly cacheTo?: ImageRef | undefined;
  /** The target's build: also export its registry cache there, after the deploy image (strategies/export-timing.ts). */
  readonly cacheToInBuild?: ImageRef | undefined;
  /** Build this Dockerfile instead of the user's (a cut copy: strategies/early-cache-export.ts). */
  readonly dockerfile?: string | undefined;
}

/** A stage part the registry-cache strategy exports before the target build ends (strategies/early-cache-export.ts). */
export interface EarlyExport {
  readonly stage: PlannedStage;
  readonly part: EarlyPart;
  /** The stage's own cache tag, where the part goes. */
  readonly write: CacheCandidate;
}

/** What the target build may export early: each stage's dependency part, or a finished stage that other stages build on. */
export function earlyExports(plan: Plan): EarlyExport[] {
  if (!plan.pushCache) return [];
  return plan.stages.flatMap((stage) => {
    const part = registryEarlyPart(plan, stage);
    const write = stage.registryWrites[0];
    return part && write ? [{ stage, part, write }] : [];
  });
}

/**
 * The buildx build of the registry-cache strategy. The target's build tags and
 * pushes the deploy image itself (--push). Its cache is exported either in the same
 * build (BuildKit exports the cache after the image) or by a second build of the
 * same stage (every step a local hit) with --cache-to and no image output.
 */
export function registryBuildInvocation(plan: Plan, build: RegistryBuild): DockerInvocation {
  const args = ['buildx', 'build'];
  if (plan.buildxBuilder !== undefined) args.push('--builder', plan.buildxBuilder);
  args.push('--progress', 'plain');
  if (build.stage.targetArg !== undefined) args.push('--target', build.stage.targetArg);
  for (const ref of build.cacheFrom) args.push('--cache-from', `type=registry,ref=${formatRef(ref)}`);
  // ignore-error: a cache that cannot be written never fails the build.
  const cacheTo = (ref: ImageRef): string[] => ['--cache-to', `type=registry,ref=${formatRef(ref)},mode=max,ignore-error=true,compression=${plan.cacheCompression}`];
  if (build.cacheTo) {
    args.push(...cacheTo(build.cacheTo), '--output', 'type=cacheonly');
  } else {
    if (build.cacheToInBuild) args.push(...cacheTo(build.cacheToInBuild));
    for (const ref of plan.deploy) args.push('--tag', formatRef(ref));
    args.push(plan.push ? '--push' : '--load');
  }
  args.push(...(build.dockerfile !== undefined ? withDockerfile(plan.passthrough, build.dockerfile) : plan.passthrough), plan.context);
  return { args, env: {} };
}

function registryDryRun(plan: Plan): { title: string; invocations: DockerInvocation[] }[] {
  const target = plan.stages[plan.stages.length - 1];
  if (!target) return [];
  const assumed = target.registryCandidates.slice(0, 1).map((c) => c.ref);
  const write = target.registryWrites[0];
  return [
    { title: 'resolve (registry lookups of the registry caches; only those found are given to BuildKit)', invocations: plan.stages.flatMap((s) => s.registryCandidates.map((c) => ({ args: ['manifest', 'inspect', formatRef(c.ref)], env: {} }))) },
    { title: `build ${target.key} (target) with the caches found${plan.push ? ', pushing the deploy image as soon as it is built' : ''}`, invocations: [registryBuildInvocation(plan, { stage: target, cacheFrom: assumed })] },
    // While the target builds (strategies/early-cache-export.ts).
    ...earlyExports(plan).map(({ stage, part, write: to }) => ({
      title: part === 'cut' ? `while it builds, once a dependency step of ${stage.key} has run: export that part (steps up to ${stage.checkpoint?.step}/${stage.checkpoint?.totalSteps}) to the stage's cache tag` : `while it builds, once ${stage.key} has finished and a step of it ran: export it to the stage's cache tag (the stages built on it still build)`,
      invocations: [registryBuildInvocation(plan, { stage, cacheFrom: assumed, cacheTo: to.ref, dockerfile: part === 'cut' ? '<the Dockerfile cut before the stage\'s sources>' : undefined })],
    })),
    ...(write
      ? [
          {
            title: 'if a step ran although the inputs recorded with the cache said none should, or the export in the build failed: export the registry cache (every step a local hit); other scopes this run writes get a manifest copy; if a stage failed, each finished stage is exported to its own tag instead',
            invocations: [registryBuildInvocation(plan, { stage: target, cacheFrom: assumed, cacheTo: write.ref })],
          },
          {
            title: 'instead of that second build, unless the inputs recorded with the cache found say no step should run: the target build exports the cache itself, after the deploy image (strategies/export-timing.ts)',
            invocations: [registryBuildInvocation(plan, { stage: target, cacheFrom: assumed, cacheToInBuild: write.ref })],
          },
        ]
      : []),
  ];
}
