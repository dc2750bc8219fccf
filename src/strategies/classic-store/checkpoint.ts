import type { EarlyPart } from '../../engine/checkpoint-watch.js';
import type { ClassicStoreUploads } from './uploads.js';
import type { Docker } from '../../engine/docker.js';
import { type DockerfileCopy, dockerfileOf, withDockerfile, writeDockerfileCopy } from '../../dockerfile/copy.js';
import { formatRef, type ImageRef } from '../../plan/image-ref.js';
import type { Logger } from '../../log.js';
import { buildInvocation, type Plan, type PlannedStage, type Resolution } from '../../plan/plan.js';

/**
 * Uploading a stage's dependency layers while its source steps still run.
 *
 * A cache can only be pushed once its image exists, and BuildKit makes the image
 * at the end of the stage. For a stage shaped "install dependencies, then COPY the
 * sources and build" (dockerfile.ts stageCheckpoint), the heavy dependency layers
 * are done long before that. As soon as the build reports the last dependency step
 * DONE (it ran; a cached step means the registry has its layers already), the same
 * Dockerfile cut before the sources is built with --target (its steps are the
 * running build's, so all hits) and its layers are uploaded, without a manifest.
 * The stage's cache push later finds them there and does not upload them again.
 * The cut image is never pushed as a cache: an image built beside a running build
 * can lack inline-cache links (ENGINE.md), so it only supplies layers.
 */

export interface CheckpointDeps {
  readonly plan: Plan;
  readonly resolved: Resolution;
  readonly docker: Docker;
  readonly early: ClassicStoreUploads;
  readonly log: Logger;
}

/**
 * Builds the stage cut at its checkpoint and uploads its layers into the stage's
 * cache repository. Best-effort: any failure only means the cache push uploads
 * those layers itself. Resolves when the upload has ended, with the bytes uploaded.
 */
export async function uploadCheckpoint(
  deps: CheckpointDeps,
  stage: PlannedStage,
  built: ReadonlySet<string>,
  part: EarlyPart,
  /** Early uploads into the same repository that started before: their layers are not sent twice. */
  before: Promise<void>,
): Promise<number | undefined> {
  const { plan, docker, early, log } = deps;
  const checkpoint = stage.checkpoint;
  const cacheRef = stage.writes[0]?.ref;
  if ((part === 'cut' && !checkpoint) || !cacheRef) return undefined;
  const tag = `${stage.localRef.tag}-early`;
  if (tag.length > 128) return undefined;
  const local: ImageRef = { ...stage.localRef, tag };
  let copy: DockerfileCopy | undefined;
  try {
    const invocation = buildInvocation(plan, stage, deps.resolved, built);
    // Only its layers are used: no inline cache (on 20.10, two builds writing the inline cache of shared steps at once can crash the engine).
    let args = invocation.args.filter((arg, i, all) => arg !== 'BUILDKIT_INLINE_CACHE=1' && !(arg === '--build-arg' && all[i + 1] === 'BUILDKIT_INLINE_CACHE=1'));
    if (part === 'cut' && checkpoint) {
      copy = await writeDockerfileCopy(checkpoint.text, dockerfileOf(plan.passthrough, plan.context), 'drc-checkpoint-');
      const context = args.pop() ?? plan.context;
      args = [...withDockerfile(args, copy.path), context];
    }
    // Its own tag only: the stage's run and kept tags are for the stage's image.
    args = args.filter((arg, i, all) => arg !== '--tag' && all[i - 1] !== '--tag');
    args.splice(1, 0, '--tag', formatRef(local));
    const result = await docker.exec({ args, env: invocation.env });
    if (result.exitCode !== 0) {
      log.info(`stage ${stage.key}: the early build of its layers failed (exit ${result.exitCode}); they go up with the stage's cache push`);
      return undefined;
    }
    await before;
    const sources = [stage.key, ...stage.needs].flatMap((key) => (deps.resolved.get(key) ?? []).map((found) => found.ref));
    const bytes = await early.uploadLayersEarly(formatRef(local), cacheRef, sources);
    if (bytes !== undefined) {
      log.info(
        part === 'cut' && checkpoint
          ? `stage ${stage.key}: ${(bytes / 1e6).toFixed(1)} MB of dependency layers (steps up to ${checkpoint.step}/${checkpoint.totalSteps}) uploaded while the source steps run`
          : `stage ${stage.key}: ${(bytes / 1e6).toFixed(1)} MB of its layers uploaded while the later stages build`,
      );
    }
    await docker.removeTag(formatRef(local));
    return bytes;
  } catch (error) {
    log.info(`stage ${stage.key}: no early upload (${(error as Error).message.split('\n')[0]})`);
    return undefined;
  } finally {
    await copy?.remove();
  }
}
