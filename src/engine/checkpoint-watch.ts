import type { Plan, PlannedStage } from '../plan/plan.js';

/**
 * Watching a running BuildKit build for the moment part of a stage is done, so that
 * its cache can go to the registry while the rest still builds: the registry-cache
 * strategy's early export (strategies/early-cache-export.ts) and 20.10's early upload
 * (strategies/classic-store/checkpoint.ts).
 */

/** Follows a build's plain progress output and calls back once when step `step` of a stage ends DONE (not CACHED). */
export class CheckpointWatch {
  private buffer = '';
  private id: string | undefined;
  private fired = false;
  private loaded = false;
  private printed = false;

  constructor(
    /** BuildKit's step labels: `[name 4/6]`, or `[4/6]` when the file has one unnamed stage. */
    private readonly labels: readonly string[],
    private readonly onReached: () => void,
    /**
     * The build imports registry caches, whose hits can print as blob downloads and DONE
     * (build-output.ts): such a step is a hit, not a step that ran.
     */
    private readonly registryHits = false,
  ) {}

  feed(chunk: string): void {
    if (this.fired) return;
    this.buffer += chunk;
    let newline = this.buffer.indexOf('\n');
    while (newline >= 0 && !this.fired) {
      this.line(this.buffer.slice(0, newline).replace(/\r$/, ''));
      this.buffer = this.buffer.slice(newline + 1);
      newline = this.buffer.indexOf('\n');
    }
  }

  private line(text: string): void {
    const header = /^#(\d+) (\[[^\]]*\]) /.exec(text);
    if (header && this.id === undefined && this.labels.includes(header[2] ?? '')) {
      this.id = header[1];
      return;
    }
    if (this.id === undefined) return;
    const body = new RegExp(`^#${this.id} (.*)$`).exec(text)?.[1];
    if (body === undefined) return;
    const status = /^(CACHED|DONE [\d.]+s|ERROR|CANCELED)/.exec(body);
    if (!status) {
      if (/^(?:extracting )?sha256:[0-9a-f]{64}\b/.test(body)) this.loaded = true;
      else this.printed = true;
      return;
    }
    this.fired = true;
    const fetchedHit = this.registryHits && this.loaded && !this.printed;
    if (status[1]?.startsWith('DONE') && !fetchedHit) this.onReached();
  }
}

/**
 * What of a stage can go to the registry before the build ends: `cut`, its dependency
 * part (the stage has the shape for it: dockerfile.ts stageCheckpoint); `whole`, the
 * finished stage while later stages of the same build still run (only for a build of
 * several stages: a stage built alone is pushed as soon as it ends anyway).
 */
export type EarlyPart = 'cut' | 'whole';

export function earlyPart(stage: PlannedStage, severalStages: boolean): EarlyPart | undefined {
  if (stage.checkpoint) return 'cut';
  if (severalStages && !stage.isTarget && stage.buildkitSteps !== undefined && stage.buildkitSteps > 1) return 'whole';
  return undefined;
}

/**
 * The registry-cache strategy's early export of a stage (strategies/early-cache-export.ts):
 * its dependency part, or the whole stage only when another stage besides the target
 * builds on it. A stage only the target reads finishes shortly before the target's own
 * export, which then sends its layers anyway: a second export session right before it
 * cost 0.5-1.2 s in the five-stage bench's source changes.
 */
export function registryEarlyPart(plan: Plan, stage: PlannedStage): EarlyPart | undefined {
  const part = earlyPart(stage, plan.stages.length > 1);
  if (part !== 'whole') return part;
  const builtOn = plan.stages.some((other) => other !== stage && !other.isTarget && other.needs.includes(stage.key));
  return builtOn ? 'whole' : undefined;
}

/** The labels BuildKit prints for the step that ends the part, or none. */
export function checkpointLabels(plan: Plan, stage: PlannedStage, part: EarlyPart): string[] {
  if (plan.builder !== 'buildkit') return [];
  const step = part === 'cut' ? stage.checkpoint?.step : stage.buildkitSteps;
  const total = part === 'cut' ? stage.checkpoint?.totalSteps : stage.buildkitSteps;
  if (step === undefined || total === undefined) return [];
  const position = `${step}/${total}`;
  const name = stage.targetArg ?? `stage-${stage.key}`;
  return plan.stages.length === 1 ? [`[${name} ${position}]`, `[${position}]`] : [`[${name} ${position}]`];
}
