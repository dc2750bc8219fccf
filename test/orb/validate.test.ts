import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import yaml from 'js-yaml';
import { validateOrb } from '../../src/orb/validate.ts';
import { ROOT } from '../support/env.ts';

/** A small orb that passes every rule; each fixture below breaks exactly one thing. */
const VALID = `version: 2.1
description: A small orb used as the base of the validator's fixtures; every rule passes on it.
display:
  source_url: https://example.com/orb
executors:
  default:
    description: The default executor.
    docker:
      - image: cimg/node:lts
commands:
  greet:
    description: Say hello.
    parameters:
      who:
        type: string
        default: world
      loud:
        type: boolean
        default: false
      secret:
        type: env_var_name
        default: MY_SECRET
    steps:
      - run:
          name: Greet
          environment:
            PARAM_WHO: << parameters.who >>
          command: echo "hello $PARAM_WHO"
jobs:
  hello:
    description: Greets.
    executor: default
    parameters:
      who:
        type: string
    steps:
      - checkout
      - greet:
          who: << parameters.who >>
examples:
  basic:
    description: Greet someone.
    usage:
      version: 2.1
      orbs:
        o: ns/orb@1.0.0
      workflows:
        w:
          jobs:
            - o/hello:
                who: you
`;

const check = (text: string) => validateOrb(text, { baseDir: ROOT, major: 1, shellcheck: true });

const FIXTURES: { rule: string; what: string; change: (orb: string) => string; line?: number }[] = [
  { rule: 'YAML', what: 'broken YAML', change: (o) => o.replace('commands:', 'commands: [') },
  { rule: 'ORB001', what: 'an unknown top-level key', change: (o) => `${o}extras: 1\n` },
  { rule: 'ORB001', what: 'a version other than 2.1', change: (o) => o.replace('version: 2.1\ndescription', 'version: 2\ndescription') },
  { rule: 'ORB002', what: 'a key a command may not have', change: (o) => o.replace('    description: Say hello.', '    description: Say hello.\n    executor: default'), line: 13 },
  { rule: 'ORB002', what: 'a job without an executor', change: (o) => o.replace('    executor: default\n    parameters:\n      who:', '    parameters:\n      who:') },
  { rule: 'ORB003', what: 'an unknown parameter type', change: (o) => o.replace('type: boolean', 'type: bool') },
  { rule: 'ORB003', what: 'an enum default outside its list', change: (o) => o.replace('        type: boolean\n        default: false', '        type: enum\n        enum: [a, b]\n        default: c') },
  { rule: 'ORB003', what: 'an integer parameter with a text default', change: (o) => o.replace('        type: boolean\n        default: false', '        type: integer\n        default: ten') },
  { rule: 'ORB003', what: 'an env_var_name default that is not a variable name', change: (o) => o.replace('default: MY_SECRET', 'default: my-secret!') },
  { rule: 'ORB003', what: 'a reserved job parameter name', change: (o) => o.replace('    parameters:\n      who:\n        type: string\n    steps:', '    parameters:\n      who:\n        type: string\n      context:\n        type: string\n        default: x\n    steps:') },
  { rule: 'ORB004', what: 'a reference to an undeclared parameter', change: (o) => o.replace('PARAM_WHO: << parameters.who >>', 'PARAM_WHO: << parameters.whom >>') },
  { rule: 'ORB005', what: 'a step that is no command', change: (o) => o.replace('      - greet:\n', '      - greeting:\n') },
  { rule: 'ORB005', what: 'an executor that does not exist', change: (o) => o.replace('    executor: default', '    executor: missing') },
  { rule: 'ORB006', what: 'an unknown parameter passed to a command', change: (o) => o.replace('          who: << parameters.who >>', '          who: << parameters.who >>\n          volume: 11') },
  { rule: 'ORB006', what: 'a value of the wrong type passed to a command', change: (o) => o.replace('          who: << parameters.who >>', '          who: << parameters.who >>\n          loud: "very"') },
  { rule: 'ORB006', what: 'a required job parameter not passed in an example', change: (o) => o.replace('            - o/hello:\n                who: you', '            - o/hello') },
  { rule: 'ORB007', what: 'an example using a job the orb does not have', change: (o) => o.replace('- o/hello:', '- o/goodbye:') },
  { rule: 'ORB007', what: 'an example that does not import the orb', change: (o) => o.replace('      orbs:\n        o: ns/orb@1.0.0\n', '') },
  { rule: 'ORB008', what: 'an unescaped << in a command', change: (o) => o.replace('command: echo "hello $PARAM_WHO"', 'command: cat <<EOF') },
  { rule: 'RC001', what: 'no display.source_url', change: (o) => o.replace('  source_url: https://example.com/orb', '  home_url: https://example.com') },
  { rule: 'RC002', what: 'a command without a description', change: (o) => o.replace('    description: Say hello.\n', '') },
  { rule: 'RC003', what: 'no example', change: (o) => o.slice(0, o.indexOf('examples:')) },
  { rule: 'RC005', what: 'a short orb description', change: (o) => o.replace(/^description: .*$/m, 'description: Too short.') },
  { rule: 'RC008', what: 'a run step without a name', change: (o) => o.replace('          name: Greet\n', '') },
  { rule: 'RC009', what: 'a long inline shell command', change: (o) => o.replace('          command: echo "hello $PARAM_WHO"', '          command: |\n            a=1\n            b=2\n            c=3\n            d=4\n            e=5\n            echo "$a$b$c$d$e"') },
  { rule: 'RC010', what: 'a dash in a component name', change: (o) => o.replace(/greet/g, 'say-hi') },
  { rule: 'RC010', what: 'a dash in a parameter key', change: (o) => o.replace('      loud:', '      be-loud:') },
  { rule: 'ORB020', what: 'a run command over 100 KiB (one Linux argument is 128 KiB at most)', change: (o) => o.replace('command: echo "hello $PARAM_WHO"', `command: echo "hello $PARAM_WHO" ${'x'.repeat(101 * 1024)}`) },
  { rule: 'RC011', what: 'an example importing an older major version', change: (o) => o.replace('ns/orb@1.0.0', 'ns/orb@0.9.0') },
  {
    rule: 'RC012',
    what: 'a default with $ flowing into a cache key',
    change: (o) => o.replace('        default: world', '        default: $HOME').replace('          command: echo "hello $PARAM_WHO"\n', '          command: echo "hello $PARAM_WHO"\n      - save_cache:\n          key: v1-<< parameters.who >>\n          paths: [x]\n'),
  },
  { rule: 'SC', what: 'a shell problem in a command', change: (o) => o.replace('command: echo "hello $PARAM_WHO"', 'command: echo hello $PARAM_WHO; cd /tmp') },
];

describe('validate-orb', () => {
  it('passes the fixtures\' base orb with no finding', () => assert.deepEqual(check(VALID), []));

  for (const fixture of FIXTURES) {
    it(`${fixture.rule} catches ${fixture.what}`, () => {
      const broken = fixture.change(VALID);
      assert.notEqual(broken, VALID, 'the fixture changes the orb');
      const findings = check(broken);
      const hit = findings.find((f) => f.rule === fixture.rule);
      assert.ok(hit, `expected ${fixture.rule}, got ${JSON.stringify(findings)}`);
      assert.ok(hit.fix.length > 5 && hit.line >= 1, 'the finding has a line and a fix');
      if (fixture.line !== undefined) assert.equal(hit.line, fixture.line);
    });
  }

  it('passes the real orb source and the packed orb, with RC010 skipped for build-with-cache and prune-caches and the reason given', () => {
    for (const file of ['orb.yml', 'dist/orb.yml']) {
      const all = validateOrb(readFileSync(join(ROOT, file), 'utf8'), { baseDir: join(ROOT, file.startsWith('dist') ? 'dist' : '.'), major: 1, shellcheck: true });
      assert.deepEqual(all.filter((f) => !f.skipped), [], file);
      assert.deepEqual(all.filter((f) => f.skipped).map((f) => [f.rule, /"(build-with-cache|prune-caches)"/.exec(f.message)?.[1], /promised/.test(f.fix)]), [['RC010', 'build-with-cache', true], ['RC010', 'prune-caches', true]], file);
    }
  });

  it('a rule is skipped only where a comment right above says so, with a reason', () => {
    const dashed = VALID.replace(/greet/g, 'say-hi');
    const allowed = dashed.replace('  say-hi:\n    description: Say hello.', '  # validate-orb: allow RC010: a name users know\n  say-hi:\n    description: Say hello.');
    assert.notEqual(allowed, dashed);
    const findings = check(allowed);
    assert.ok(findings.some((f) => f.rule === 'RC010' && f.skipped && f.fix.includes('a name users know')), JSON.stringify(findings));
    assert.ok(!findings.some((f) => !f.skipped), JSON.stringify(findings));
    assert.ok(check(dashed).some((f) => f.rule === 'RC010' && !f.skipped), 'without the comment it is a finding');
    const farAbove = dashed.replace('commands:\n', '# validate-orb: allow RC010: too far away\ncommands:\n');
    assert.ok(check(farAbove).some((f) => f.rule === 'RC010' && !f.skipped), 'a comment elsewhere skips nothing');
  });

  it('keeps each install step of the packed orb under 100 KiB', () => {
    const packed = yaml.load(readFileSync(join(ROOT, 'dist', 'orb.yml'), 'utf8')) as { commands: { install: { steps: { run: { command: string } }[] } } };
    const sizes = packed.commands.install.steps.map((s) => Buffer.byteLength(s.run.command));
    assert.equal(sizes.length, 2);
    for (const size of sizes) assert.ok(size < 100 * 1024, `${size} bytes`);
  });
});
