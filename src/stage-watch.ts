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

  constructor(
    /** BuildKit's names of the stages to follow (stage names, or stage-N). */
    private readonly stages: ReadonlySet<string>,
    private readonly onFinished: (stage: string, count: StepCount) => void,
  ) {}

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

  hasFinished(stage: string): boolean {
    return this.finished.has(stage);
  }

  private line(text: string): void {
    const header = /^#(\d+) \[(\S+) (\d+)\/(\d+)\] (.*)$/.exec(text);
    if (header) {
      const [, id = '', stage = '', index = '0', total = '0', instruction = ''] = header;
      if (this.stages.has(stage) && !this.steps.has(id)) {
        this.steps.set(id, { stage, index: Number(index), total: Number(total), from: /^FROM\b/i.test(instruction), state: 'running' });
      }
      return;
    }
    const status = /^#(\d+) (CACHED|DONE [\d.]+s|ERROR.*)\s*$/.exec(text);
    const step = status ? this.steps.get(status[1] ?? '') : undefined;
    if (!status || !step) return;
    step.state = status[2] === 'CACHED' ? 'cached' : status[2]?.startsWith('ERROR') ? 'error' : 'done';
    if (step.state !== 'error' && step.index === step.total && !this.finished.has(step.stage)) {
      this.finished.add(step.stage);
      this.onFinished(step.stage, this.count(step.stage));
    }
  }
}
