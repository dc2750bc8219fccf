import type { RunReport } from './report.js';

export interface Moved {
  readonly pulledBytes?: number;
  readonly pushedBytes?: number;
}

/**
 * Bytes each phase of the run pulled from and pushed to registries (the report's
 * MB per phase). Measurements may still be reading sizes from the registry when
 * they are added; `settled` waits for them, and `fill` writes what has arrived.
 * Cache uploads are counted per stage (StageReport.mbPushed): those made while a
 * build ran (early uploads) belong to that build's phase, the rest to "push caches".
 */
export class PhaseTraffic {
  private readonly byPhase = new Map<string, { pulled: number; pushed: number }>();
  private readonly pending: Promise<void>[] = [];
  private earlyCacheBytes = 0;

  add(phase: string, moved: Promise<Moved | undefined> | Moved): void {
    const work = Promise.resolve(moved)
      .then((m) => {
        if (!m) return;
        const entry = this.byPhase.get(phase) ?? { pulled: 0, pushed: 0 };
        entry.pulled += m.pulledBytes ?? 0;
        entry.pushed += m.pushedBytes ?? 0;
        this.byPhase.set(phase, entry);
      })
      // A size that could not be read leaves the phase's figure lower, never fails the run.
      .catch(() => undefined);
    this.pending.push(work);
  }

  /** A cache upload made during a build (early-cache-export.ts, classic-store/checkpoint.ts): in that build's phase, and not again under "push caches". */
  addEarlyCacheUpload(phase: string, bytes: number): void {
    this.earlyCacheBytes += bytes;
    this.add(phase, { pushedBytes: bytes });
  }

  async settled(): Promise<void> {
    await Promise.all(this.pending);
  }

  /** Writes MB pulled/pushed into the report's phases (null where nothing was measured). */
  fill(report: RunReport): void {
    const cacheBytes = report.stages.reduce((sum, s) => sum + (s.mbPushed ?? 0) * 1e6, 0);
    const afterBuilds = Math.max(0, cacheBytes - this.earlyCacheBytes);
    for (const phase of report.phases) {
      const measured = this.byPhase.get(phase.name);
      const pushed = phase.name === 'push caches' ? afterBuilds + (measured?.pushed ?? 0) : measured?.pushed;
      phase.mbPulled = measured ? measured.pulled / 1e6 : null;
      phase.mbPushed = pushed === undefined ? null : pushed / 1e6;
    }
  }
}
