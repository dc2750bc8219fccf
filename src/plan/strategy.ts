import type { DockerCapabilities } from '../engine/docker.js';

/**
 * How a run builds and caches, from what the engine and builder can do:
 * - registry-cache: BuildKit's own registry cache (--cache-from/--cache-to type=registry, mode=max),
 *   for builders that can export one: buildx's docker driver on the containerd image store, and
 *   the docker-container, remote and kubernetes drivers;
 * - inline: inline cache metadata in one image per stage (the docker driver on the classic store
 *   refuses --cache-to type=registry; also the 20.10 client's built-in BuildKit);
 * - classic: the classic builder, stage by stage, caches pulled first.
 */
export type StrategyKind = 'registry-cache' | 'inline' | 'classic';
export type StrategyChoice = StrategyKind | 'auto';

export interface StrategyInputs {
  readonly requested: StrategyChoice;
  /** --builder auto|classic|buildkit (a buildx builder name counts as auto). */
  readonly builder: 'auto' | 'classic' | 'buildkit';
  /** DOCKER_BUILDKIT as the user set it. */
  readonly dockerBuildkit: boolean | undefined;
  readonly caps: DockerCapabilities | undefined;
}

export interface ChosenStrategy {
  readonly kind: StrategyKind;
  /** One line for the summary and --dry-run: why this one. */
  readonly reason: string;
}

const EXPORTING_DRIVERS = new Set(['docker-container', 'remote', 'kubernetes']);

/** Whether the builder can write a registry cache, and why not when it cannot. */
export function registryCacheSupport(caps: DockerCapabilities | undefined): { ok: boolean; why: string } {
  if (!caps) return { ok: false, why: 'the engine was not probed' };
  if (!caps.hasBuildx || caps.buildxDriver === undefined) return { ok: false, why: 'the docker CLI has no buildx' };
  if (EXPORTING_DRIVERS.has(caps.buildxDriver)) return { ok: true, why: `buildx ${caps.buildxDriver} driver` };
  if (caps.buildxDriver === 'docker' && caps.imageStore === 'containerd') return { ok: true, why: 'buildx docker driver on the containerd image store' };
  if (caps.buildxDriver === 'docker') return { ok: false, why: 'the docker driver on the classic image store exports inline cache only' };
  return { ok: false, why: `unknown buildx driver ${caps.buildxDriver}` };
}

/** Pure: the strategy for these capabilities and choices. Throws nothing; an impossible request says why. */
export function chooseStrategy(input: StrategyInputs): ChosenStrategy | { error: string } {
  const support = registryCacheSupport(input.caps);
  const buildkitThere = input.caps?.hasBuildx === true || input.dockerBuildkit === true || input.builder === 'buildkit';
  switch (input.requested) {
    case 'registry-cache':
      return support.ok ? { kind: 'registry-cache', reason: `requested (${support.why})` } : { error: `--strategy registry-cache needs a builder that can export a registry cache: ${support.why}` };
    case 'inline':
      return buildkitThere ? { kind: 'inline', reason: 'requested' } : { error: '--strategy inline needs BuildKit: install buildx or set DOCKER_BUILDKIT=1 with a client that has it built in' };
    case 'classic':
      return { kind: 'classic', reason: 'requested' };
    case 'auto':
      break;
  }
  if (input.builder === 'classic') return { kind: 'classic', reason: '--builder classic' };
  if (input.builder !== 'buildkit' && input.dockerBuildkit === false) return { kind: 'classic', reason: 'DOCKER_BUILDKIT=0' };
  if (support.ok) return { kind: 'registry-cache', reason: support.why };
  if (buildkitThere) return { kind: 'inline', reason: input.caps?.hasBuildx ? support.why : 'BuildKit without buildx' };
  return { kind: 'classic', reason: 'no BuildKit (no buildx, DOCKER_BUILDKIT unset)' };
}
