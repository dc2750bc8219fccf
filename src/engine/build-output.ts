import type { BuilderKind } from '../plan/plan.js';

/** One Dockerfile step as a build reported it. */
export interface BuildStep {
  /** Stage name (or BuildKit's stage-N / classic index for unnamed stages). */
  readonly stage: string | undefined;
  readonly instruction: string;
  readonly cached: boolean;
  /** Seconds the step took, where the builder says (BuildKit's DONE lines). */
  readonly seconds: number | undefined;
}

export interface StepCount {
  readonly cached: number;
  readonly total: number;
}

/** Reads the steps out of BuildKit's plain progress output. FROM lines are not steps. */
function parseBuildkit(output: string): BuildStep[] {
  const steps = new Map<string, { stage: string | undefined; instruction: string; cached: boolean; seconds: number | undefined }>();
  for (const line of output.split(/\r?\n/)) {
    const header = /^#(\d+) \[(?:(\S+) )?\d+\/\d+\] (.*)$/.exec(line);
    if (header) {
      const [, id = '', stage, instruction = ''] = header;
      if (!steps.has(id) && !/^FROM\b/i.test(instruction)) steps.set(id, { stage, instruction, cached: false, seconds: undefined });
      continue;
    }
    const status = /^#(\d+) (CACHED|DONE ([\d.]+)s)\s*$/.exec(line);
    const step = status ? steps.get(status[1] ?? '') : undefined;
    if (status && step) {
      if (status[2] === 'CACHED') step.cached = true;
      else step.seconds = Number(status[3]);
    }
  }
  return [...steps.values()];
}

/** Reads the steps out of the classic builder's "Step i/n :" output. */
function parseClassic(output: string): BuildStep[] {
  const steps: { stage: string | undefined; instruction: string; cached: boolean; seconds: undefined }[] = [];
  let stage: string | undefined;
  let stageIndex = -1;
  let current: (typeof steps)[number] | undefined;
  for (const line of output.split(/\r?\n/)) {
    const header = /^Step \d+\/\d+ : (.*)$/.exec(line);
    if (header) {
      const instruction = header[1] ?? '';
      const from = /^FROM\s+(?:--\S+\s+)*\S+(?:\s+as\s+(\S+))?/i.exec(instruction);
      if (from) {
        stageIndex++;
        stage = from[1]?.toLowerCase() ?? String(stageIndex);
        current = undefined;
        continue;
      }
      current = stageIndex < 0 ? undefined : { stage, instruction, cached: false, seconds: undefined };
      if (current) steps.push(current);
      continue;
    }
    if (current && /^ ---> Using cache\s*$/.test(line)) current.cached = true;
  }
  return steps;
}

export function parseBuildOutput(output: string, builder: BuilderKind): BuildStep[] {
  return builder === 'buildkit' ? parseBuildkit(output) : parseClassic(output);
}

export function countSteps(steps: readonly BuildStep[], stage?: string): StepCount {
  const chosen = stage === undefined ? steps : steps.filter((s) => s.stage === stage);
  return { cached: chosen.filter((s) => s.cached).length, total: chosen.length };
}
