import { checkpointLabels, CheckpointWatch } from '../engine/checkpoint-watch.js';
import { type DockerfileCopy, dockerfileOf, writeDockerfileCopy } from '../dockerfile/copy.js';
import { firstLine } from '../errors.js';
import type { ImageRef } from '../plan/image-ref.js';
import { earlyExports, type EarlyExport } from '../plan/plan.js';
import { copyToOtherScopes, exportCache, type KnownBlobs, stageReportOf } from './registry-cache-export.js';
import type { RegistryCacheContext } from './registry-cache.js';

/**
 * BuildKit exports a cache only once a build has ended, so the target's export sends
 * every new layer after the deploy image is up. Instead, as soon as the running target
 * build reports a stage's dependency part DONE (a step ran: a CACHED one means the
 * registry has it), or a stage finished that other stages still build on, that part is
 * exported to the stage's own cache tag by a second build beside the running one (the
 * Dockerfile cut before the stage's sources, --target the stage: every step is the
 * running build's, a local hit). The target's export at the end finds those blobs in
 * the registry and sends only the rest. Exports run one at a time, and a target export
 * after the build waits for them; one inside the build may start while one still runs
 * (`running`). Best effort, like every cache
 * write: a failed early export only leaves its layers to the target's export.
 */
export class EarlyCacheExports {
  private queue: Promise<void> = Promise.resolve();
  /** Early exports queued or running (one stage may have a part and its whole). */
  private readonly pending = new Set<EarlyExport>();

  constructor(
    private readonly ctx: RegistryCacheContext,
    private readonly cacheFrom: readonly ImageRef[],
    private readonly known: Promise<KnownBlobs>,
    /** The build phase they run in: their bytes are counted there. */
    private readonly phase: string,
  ) {}

  /** A feed for the target build's output; a no-op when nothing can go early. */
  watcher(): (chunk: string) => void {
    const watches = earlyExports(this.ctx.plan).flatMap((early) => {
      const labels = checkpointLabels(this.ctx.plan, early.stage, early.part);
      return labels.length > 0 ? [new CheckpointWatch(labels, () => this.start(early), true)] : [];
    });
    return (chunk) => {
      for (const watch of watches) watch.feed(chunk);
    };
  }

  /** Settles when every early export started so far has ended. */
  settled(): Promise<void> {
    return this.queue;
  }

  /** The stages whose early export has not ended yet. */
  running(): string[] {
    return [...new Set([...this.pending].map((early) => early.stage.key))];
  }

  private start(early: EarlyExport): void {
    if (this.ctx.cancel.aborted) return;
    this.pending.add(early);
    this.queue = this.queue
      .then(() => this.run(early))
      .catch((error: unknown) => {
        this.ctx.log.info(`stage ${early.stage.key}: no early cache export (${firstLine((error as Error).message)}); the target's export sends its layers`);
      })
      .finally(() => this.pending.delete(early));
  }

  private async run({ stage, part, write }: EarlyExport): Promise<void> {
    const { ctx } = this;
    if (ctx.cancel.aborted) return;
    const checkpoint = stage.checkpoint;
    let copy: DockerfileCopy | undefined;
    try {
      if (part === 'cut' && checkpoint) copy = await writeDockerfileCopy(checkpoint.text, dockerfileOf(ctx.plan.passthrough, ctx.plan.context), 'drc-checkpoint-');
      const note = part === 'cut' && checkpoint ? `dependency part, steps up to ${checkpoint.step}/${checkpoint.totalSteps}, exported while the build went on` : 'exported while later stages built';
      const sent = await exportCache(ctx, stage, write.ref, this.cacheFrom, new Map(), await this.known, { dockerfile: copy?.path, note, cancelSignal: ctx.cancel, early: true });
      if (sent === undefined) return;
      ctx.traffic.addEarlyCacheUpload(this.phase, sent);
      await copyToOtherScopes(ctx, stageReportOf(ctx.report, stage), write.ref, stage.registryWrites.slice(1));
    } finally {
      await copy?.remove();
    }
  }
}
