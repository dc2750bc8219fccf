import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findStage, parseDockerfile, stagesFor, withStageNames } from '../../src/dockerfile/dockerfile.ts';

const summary = (text: string, buildArgs = new Map<string, string>()) =>
  parseDockerfile(text, buildArgs).stages.map((s) => ({ key: s.key, base: s.base, deps: s.deps }));

describe('parseDockerfile', () => {
  const cases: { name: string; text: string; expected: { key: string; base: string; deps: number[] }[]; args?: Map<string, string> }[] = [
    {
      name: 'reads named stages and a stage used as another\'s base',
      text: 'FROM alpine AS deps\nRUN x\nFROM deps AS builder\nRUN y\nFROM alpine\nCOPY --from=builder /out /out\n',
      expected: [
        { key: 'deps', base: 'alpine', deps: [] },
        { key: 'builder', base: 'deps', deps: [0] },
        { key: '2', base: 'alpine', deps: [1] },
      ],
    },
    {
      name: 'substitutes ARG before FROM, and --build-arg overrides its default',
      text: 'ARG BASE=alpine:3\nARG TAG\nFROM ${BASE} AS a\nFROM $BASE-${TAG:-slim} AS b\n',
      args: new Map([['TAG', 'fat']]),
      expected: [
        { key: 'a', base: 'alpine:3', deps: [] },
        { key: 'b', base: 'alpine:3-fat', deps: [] },
      ],
    },
    {
      name: 'accepts --platform= and AS in any case, and lowercases stage names',
      text: 'FROM --platform=$BUILDPLATFORM golang:1 as Build\nfrom scratch AS Final\ncopy --from=BUILD /x /x\n',
      expected: [
        { key: 'build', base: 'golang:1', deps: [] },
        { key: 'final', base: 'scratch', deps: [0] },
      ],
    },
    {
      name: 'skips comments and joins line continuations, also with comments inside them',
      text: '# a comment\nFROM alpine \\\n  AS one\nRUN echo \\\n# inside\n  hi\nFROM one AS two\n',
      expected: [
        { key: 'one', base: 'alpine', deps: [] },
        { key: 'two', base: 'one', deps: [0] },
      ],
    },
    {
      name: 'honours the escape parser directive (backtick)',
      text: '# escape=`\nFROM alpine `\n  AS win\nRUN dir c:\\\nFROM win AS next\n',
      expected: [
        { key: 'win', base: 'alpine', deps: [] },
        { key: 'next', base: 'win', deps: [0] },
      ],
    },
    {
      name: 'follows COPY --from by index and RUN --mount from=',
      text: 'FROM a AS zero\nFROM b AS one\nFROM c\nCOPY --from=0 /a /a\nRUN --mount=type=bind,from=one,target=/o true\n',
      expected: [
        { key: 'zero', base: 'a', deps: [] },
        { key: 'one', base: 'b', deps: [] },
        { key: '2', base: 'c', deps: [0, 1] },
      ],
    },
    {
      name: 'treats COPY --from of an image (not a stage) as external',
      text: 'FROM a AS one\nCOPY --from=nginx:latest /etc/nginx /n\nCOPY --from=ghcr.io/x/y /y /y\n',
      expected: [{ key: 'one', base: 'a', deps: [] }],
    },
    {
      name: 'ignores a heredoc body that looks like instructions',
      text: 'FROM a AS one\nRUN <<EOF\nFROM evil AS two\nEOF\nFROM one AS three\n',
      expected: [
        { key: 'one', base: 'a', deps: [] },
        { key: 'three', base: 'one', deps: [0] },
      ],
    },
    {
      name: 'reads CRLF line endings',
      text: 'FROM a AS one\r\nRUN x\r\nFROM one AS two\r\n',
      expected: [
        { key: 'one', base: 'a', deps: [] },
        { key: 'two', base: 'one', deps: [0] },
      ],
    },
    {
      name: 'a FROM naming a later stage means an image, as in Docker',
      text: 'FROM later AS early\nFROM a AS later\n',
      expected: [
        { key: 'early', base: 'later', deps: [] },
        { key: 'later', base: 'a', deps: [] },
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(summary(c.text, c.args), c.expected));
  }

  const bad: [string, string, RegExp][] = [
    ['an empty file', '\n# only a comment\n', /empty/],
    ['no FROM', 'ARG X=1\n', /no FROM/],
    ['an instruction before FROM', 'RUN echo\nFROM a\n', /before the first FROM/],
    ['duplicate stage names', 'FROM a AS x\nFROM b AS X\n', /already used/],
    ['an index beyond the stages', 'FROM a AS x\nCOPY --from=5 / /\n', /only 1/],
    ['a stage copying from itself', 'FROM a AS x\nCOPY --from=x / /\n', /copies from itself/],
    ['an invalid stage name', 'FROM a AS 1bad\n', /invalid stage name/],
    ['a FROM without an image', 'FROM --platform=linux/amd64\n', /no image/],
    ['COPY --from a stage name that does not exist', 'FROM a AS builder\nFROM b\nCOPY --from=buidler / /\n', /--from=buidler names no stage \(stages: builder\)/],
  ];
  for (const [name, text, message] of bad) {
    it(`refuses ${name}`, () => assert.throws(() => parseDockerfile(text), message));
  }
});

describe('stagesFor', () => {
  const file = parseDockerfile(
    'FROM base AS deps\nFROM base AS unused\nFROM deps AS builder\nFROM base AS assets\nFROM base AS final\nCOPY --from=builder / /\nCOPY --from=assets / /\n',
  );
  it('orders the target\'s dependencies first and leaves unused stages out', () => {
    assert.deepEqual(stagesFor(file, findStage(file, 'final')).map((s) => s.key), ['deps', 'builder', 'assets', 'final']);
  });
  it('builds only up to an earlier --target', () => {
    assert.deepEqual(stagesFor(file, findStage(file, 'builder')).map((s) => s.key), ['deps', 'builder']);
  });
  it('names the stages when --target is unknown', () => {
    assert.throws(() => findStage(file, 'nope'), /not a stage.*|use one of: deps, unused, builder, assets, final/);
  });
  it('detects a cycle made of forward COPY --from references', () => {
    const cyclic = parseDockerfile('FROM a AS one\nCOPY --from=two / /\nFROM b AS two\nCOPY --from=one / /\n');
    assert.throws(() => stagesFor(cyclic, findStage(cyclic, 'two')), /cycle: (one -> two -> one|two -> one -> two)/);
  });
});

describe('withStageNames', () => {
  const names = new Map([[0, 'stage-0']]);
  it('adds AS NAME to the FROM of the stages listed, and changes nothing else', () => {
    const text = 'ARG V=1\nFROM base:$V\nRUN make\nFROM base\nCOPY --from=0 /out /app\n';
    assert.equal(withStageNames(text, names), 'ARG V=1\nFROM base:$V AS stage-0\nRUN make\nFROM base\nCOPY --from=0 /out /app\n');
    assert.deepEqual(parseDockerfile(withStageNames(text, names)).stages.map((s) => s.name), ['stage-0', undefined]);
  });
  it('names a FROM written over several lines on its last line, with flags, in lower case, with a comment between', () => {
    const text = 'from --platform=$BUILDPLATFORM \\\n# the base\n  base   \nrun make\nfrom base\n';
    assert.equal(withStageNames(text, names), 'from --platform=$BUILDPLATFORM \\\n# the base\n  base AS stage-0\nrun make\nfrom base\n');
    assert.equal(parseDockerfile(withStageNames(text, names)).stages[0]?.name, 'stage-0');
  });
  it('counts stages the way the parser does: a heredoc line reading FROM is not a stage; the escape directive is honoured', () => {
    const heredoc = 'FROM base\nRUN <<EOF\nFROM inside\nEOF\nFROM base\nCOPY --from=0 / /\n';
    assert.equal(withStageNames(heredoc, new Map([[1, 'stage-1']])), 'FROM base\nRUN <<EOF\nFROM inside\nEOF\nFROM base AS stage-1\nCOPY --from=0 / /\n');
    const backtick = '# escape=`\nFROM `\n  base\nRUN a\nFROM base\n';
    assert.equal(withStageNames(backtick, names), '# escape=`\nFROM `\n  base AS stage-0\nRUN a\nFROM base\n');
  });
  it('reads CRLF files (and writes LF)', () => {
    assert.equal(withStageNames('FROM base\r\nRUN a\r\nFROM base\r\n', names), 'FROM base AS stage-0\nRUN a\nFROM base\n');
  });
});
