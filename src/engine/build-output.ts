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

/**
 * Reads the steps out of BuildKit's plain progress output. FROM lines are not steps.
 * A cache hit is "#N CACHED", or, when BuildKit had to fetch the hit's layers from a
 * registry cache, a step whose only lines are blob downloads and extractions before
 * its DONE (a step that runs prints its own output, timestamped, or nothing).
 */
function parseBuildkit(output: string, registryHits: boolean): BuildStep[] {
  const steps = new Map<string, { stage: string | undefined; instruction: string; cached: boolean; seconds: number | undefined; loaded: boolean; printed: boolean }>();
  for (const line of output.split(/\r?\n/)) {
    const header = /^#(\d+) \[(?:(\S+) )?\d+\/\d+\] (.*)$/.exec(line);
    if (header) {
      const [, id = '', stage, instruction = ''] = header;
      if (!steps.has(id) && !/^FROM\b/i.test(instruction)) steps.set(id, { stage, instruction, cached: false, seconds: undefined, loaded: false, printed: false });
      continue;
    }
    const body = /^#(\d+) (.*)$/.exec(line);
    const step = body ? steps.get(body[1] ?? '') : undefined;
    if (!body || !step) continue;
    const text = body[2] ?? '';
    const status = /^(CACHED|DONE ([\d.]+)s)\s*$/.exec(text);
    if (status) {
      if (status[1] === 'CACHED') step.cached = true;
      else {
        step.seconds = Number(status[2]);
        if (registryHits && step.loaded && !step.printed) step.cached = true;
      }
    } else if (/^(?:extracting )?sha256:[0-9a-f]{64}\b/.test(text)) step.loaded = true;
    else step.printed = true;
  }
  return [...steps.values()].map(({ stage, instruction, cached, seconds }) => ({ stage, instruction, cached, seconds: cached ? undefined : seconds }));
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

/**
 * `registryHits`: the build imported registry caches (registry-cache strategy), whose hits
 * may print as fetched layers; the 20.10 engine prints such lines for steps that ran.
 */
export function parseBuildOutput(output: string, builder: BuilderKind, registryHits = false): BuildStep[] {
  return builder === 'buildkit' ? parseBuildkit(output, registryHits) : parseClassic(output);
}

export function countSteps(steps: readonly BuildStep[], stage?: string): StepCount {
  const chosen = stage === undefined ? steps : steps.filter((s) => s.stage === stage);
  return { cached: chosen.filter((s) => s.cached).length, total: chosen.length };
}

/** How BuildKit's output names a stage: its --target name, else stage-N. */
export function buildkitLabel(stage: { readonly targetArg: string | undefined; readonly key: string }): string {
  return stage.targetArg ?? `stage-${stage.key}`;
}

export interface StageProgress {
  /** Stages (BuildKit labels) whose last step is DONE or CACHED. */
  readonly finished: ReadonlySet<string>;
  /** Stages with a step that ended in ERROR. */
  readonly failed: ReadonlySet<string>;
  /** The build's error lines ("#N ERROR: ..." and the closing "ERROR: ..."). */
  readonly errorText: string;
}

/** Which stages a BuildKit build finished and which failed, from its plain progress output. */
export function stageProgress(output: string): StageProgress {
  const headers = new Map<string, { stage: string; last: boolean }>();
  const finished = new Set<string>();
  const failed = new Set<string>();
  const errors: string[] = [];
  for (const line of output.split(/\r?\n/)) {
    const header = /^#(\d+) \[(\S+) (\d+)\/(\d+)\] /.exec(line);
    if (header) {
      const [, id = '', stage = '', i, n] = header;
      if (!headers.has(id)) headers.set(id, { stage, last: i === n });
      continue;
    }
    const status = /^#(\d+) (CACHED|DONE\b|ERROR\b)(.*)$/.exec(line);
    if (status) {
      const step = headers.get(status[1] ?? '');
      if (status[2] === 'ERROR') {
        errors.push(line);
        if (step) failed.add(step.stage);
      } else if (step?.last) finished.add(step.stage);
      continue;
    }
    if (/^(ERROR|error):? /.test(line)) errors.push(line);
  }
  return { finished, failed, errorText: errors.join('\n') };
}
