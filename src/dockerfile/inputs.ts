import { type Dockerfile, logicalLines, readEscape, words } from './dockerfile.js';

/**
 * What a part of a build reads: its Dockerfile lines and the build-context paths its
 * COPY and ADD instructions name. Digested (context-digest.ts) and recorded with the
 * registry cache, it tells the next run, before it builds, whether that part can
 * have changed. Only a prediction: a wrong one costs time, never a wrong cache.
 */
export interface PartInputs {
  /** The lines the part is built from: the global ARGs, then each stage it involves. */
  readonly text: string;
  /** Context paths (patterns as COPY takes them) that its COPY and ADD read. */
  readonly sources: readonly string[];
}

/**
 * The inputs of stage `stageIndex` with every stage it needs, cut before the line
 * `cutLine` of that stage when given (its dependency part). undefined when they
 * cannot be told from the text: a source with a variable, ADD of a URL, a RUN bind
 * mount of the context, ONBUILD.
 */
export function partInputs(text: string, dockerfile: Dockerfile, stageIndex: number, cutLine?: number): PartInputs | undefined {
  const involved = new Set<number>();
  const visit = (index: number): void => {
    if (involved.has(index)) return;
    involved.add(index);
    for (const dep of dockerfile.stages[index]?.deps ?? []) visit(dep);
  };
  visit(stageIndex);
  const physical = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  const starts = dockerfile.stages.map((s) => s.line);
  const lineOk = (line: number): boolean => {
    const stage = stageAt(starts, line);
    if (stage === undefined) return true; // global ARGs before the first FROM
    if (!involved.has(stage)) return false;
    return !(stage === stageIndex && cutLine !== undefined && line >= cutLine);
  };
  const kept = physical.filter((_, i) => lineOk(i + 1));
  const sources: string[] = [];
  for (const { text: logical, line } of logicalLines(text, readEscape(physical))) {
    if (!lineOk(line)) continue;
    const instruction = (/^(\S+)/.exec(logical)?.[1] ?? '').toLowerCase();
    const rest = logical.slice(instruction.length).trim();
    if (instruction === 'onbuild') return undefined;
    if (instruction === 'run' && readsContextByMount(rest)) return undefined;
    if (instruction !== 'copy' && instruction !== 'add') continue;
    const read = copySources(rest, instruction === 'add');
    if (read === undefined) return undefined;
    sources.push(...read);
  }
  return { text: kept.join('\n'), sources };
}

function stageAt(starts: readonly number[], line: number): number | undefined {
  let found: number | undefined;
  for (const [index, start] of starts.entries()) if (start <= line) found = index;
  return found;
}

/** The context paths a COPY/ADD reads ([] for --from and heredocs); undefined when the text cannot tell. */
function copySources(rest: string, isAdd: boolean): string[] | undefined {
  const all = words(rest);
  const flags = all.filter((w) => w.startsWith('--'));
  if (flags.some((f) => f.toLowerCase().startsWith('--from='))) return [];
  const operands = rest.replace(/^(?:--\S+\s+)*/, '');
  let paths: string[];
  if (operands.startsWith('[')) {
    try {
      paths = (JSON.parse(operands) as unknown[]).map(String);
    } catch {
      return undefined;
    }
  } else {
    paths = words(operands);
  }
  const sources = paths.slice(0, -1);
  // A heredoc's body is in the text already.
  if (sources.some((s) => s.startsWith('<<'))) return sources.every((s) => s.startsWith('<<')) ? [] : undefined;
  if (sources.some((s) => s.includes('$'))) return undefined;
  if (isAdd && sources.some((s) => /^[a-z][a-z0-9+.-]*:\/\/|^git@/i.test(s))) return undefined;
  return sources;
}

/** RUN --mount=type=bind (the default type) without from= reads the build context. */
function readsContextByMount(rest: string): boolean {
  return words(rest)
    .filter((w) => w.toLowerCase().startsWith('--mount='))
    .some((mount) => {
      const options = new Map(mount.slice('--mount='.length).split(',').map((o) => [o.split('=')[0]?.trim().toLowerCase() ?? '', o.slice(o.indexOf('=') + 1)] as const));
      return (options.get('type') ?? 'bind') === 'bind' && !options.has('from');
    });
}
