import type { StepCount } from './build-output.js';

/**
 * Follows BuildKit's plain progress output as it streams and says when each stage
 * has finished (its last step DONE or CACHED), with how many of its steps were
 * cached. This lets a stage's cache be exported and pushed while later stages
 * still build, and an unchanged stage be left alone.
 */
export class StageWatcher {
  private buffer = '';
  private readonly steps = new Map<string, { stage: string; index: number; total: number; from: boolean; state: 'running' | 'done' | 'cached' | 'error' }>();
  private readonly finished = new Set<string>();

  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(
    /** BuildKit's names of the stages to follow (stage names, or stage-N). */
    private readonly stages: ReadonlySet<string>,
    private readonly onFinished: (stage: string, count: StepCount) => void,
    /**
     * Called when a step of a followed stage runs instead of coming from the cache:
     * it printed output, or ended without CACHED, or it has gone on for `graceMs`
     * without a verdict (a silent long step). Cache hits can take a moment to be
     * confirmed while the cache sources load, so the grace is generous.
     */
    private readonly onExecuting: (stage: string) => void = () => undefined,
    private readonly graceMs = 3000,
  ) {}

  /** Stops the timers (call when the build has ended). */
  close(): void {
    for (const timer of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
  }

  feed(chunk: string): void {
    this.buffer += chunk;
    let newline = this.buffer.indexOf('\n');
    while (newline >= 0) {
      this.line(this.buffer.slice(0, newline).replace(/\r$/, ''));
      this.buffer = this.buffer.slice(newline + 1);
      newline = this.buffer.indexOf('\n');
    }
  }

  /** The counts of a stage so far (for stages that never reported a last step). */
  count(stage: string): StepCount {
    const own = [...this.steps.values()].filter((s) => s.stage === stage && !s.from);
    return { cached: own.filter((s) => s.state === 'cached').length, total: own.length };
  }

  /** The stage of a step that ended in ERROR, if any. */
  failedStage(): string | undefined {
    return [...this.steps.values()].find((s) => s.state === 'error')?.stage;
  }

  hasFinished(stage: string): boolean {
    return this.finished.has(stage);
  }

  private executing(id: string): void {
    this.pending.delete(id);
    const step = this.steps.get(id);
    if (step && step.state === 'running') this.onExecuting(step.stage);
  }

  private line(text: string): void {
    const header = /^#(\d+) \[(\S+) (\d+)\/(\d+)\] (.*)$/.exec(text);
    if (header) {
      const [, id = '', stage = '', index = '0', total = '0', instruction = ''] = header;
      if (this.stages.has(stage) && !this.steps.has(id)) {
        const from = /^FROM\b/i.test(instruction);
        this.steps.set(id, { stage, index: Number(index), total: Number(total), from, state: 'running' });
        if (!from) this.pending.set(id, setTimeout(() => this.executing(id), this.graceMs));
      }
      return;
    }
    const logLine = /^#(\d+) \d+\.\d+ /.exec(text);
    const running = logLine ? this.steps.get(logLine[1] ?? '') : undefined;
    if (running && running.state === 'running' && !running.from) {
      this.onExecuting(running.stage);
      return;
    }
    const status = /^#(\d+) (CACHED|DONE [\d.]+s|ERROR.*)\s*$/.exec(text);
    const step = status ? this.steps.get(status[1] ?? '') : undefined;
    if (!status || !step) return;
    step.state = status[2] === 'CACHED' ? 'cached' : status[2]?.startsWith('ERROR') ? 'error' : 'done';
    const id = status[1] ?? '';
    clearTimeout(this.pending.get(id));
    this.pending.delete(id);
    if (step.state !== 'cached' && !step.from) this.onExecuting(step.stage);
    if (step.state !== 'error' && step.index === step.total && !this.finished.has(step.stage)) {
      this.finished.add(step.stage);
      this.onFinished(step.stage, this.count(step.stage));
    }
  }
}
