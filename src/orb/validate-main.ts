import { readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { validateOrb } from './validate.js';

// validate-orb [FILE] [--major N] [--no-shellcheck]: checks an orb, source or packed, offline.
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write('usage: validate-orb [ORB_FILE=orb.yml] [--major N] [--no-shellcheck]\n\nChecks structure, parameter references and types, examples, unescaped <<,\nthe orb-tools review rules (RC001-RC012) and shellcheck, without network.\nExit 0 when clean, 1 with findings, 2 on usage errors.\n');
  process.exit(0);
}
const file = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--major') ?? 'orb.yml';
const majorArg = args.includes('--major') ? Number(args[args.indexOf('--major') + 1]) : undefined;
if (!existsSync(file)) {
  process.stderr.write(`validate-orb: ${file} does not exist\n`);
  process.exit(2);
}

/** The current major version: --major, else the package.json next to the orb. */
function currentMajor(): number | undefined {
  if (majorArg !== undefined && Number.isInteger(majorArg)) return majorArg;
  for (const dir of [dirname(resolve(file)), join(dirname(resolve(file)), '..')]) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) return Number(String((JSON.parse(readFileSync(pkg, 'utf8')) as { version?: string }).version ?? '').split('.')[0]);
  }
  return undefined;
}

const baseDir = dirname(resolve(file));
const all = validateOrb(readFileSync(file, 'utf8'), { baseDir, major: currentMajor(), shellcheck: !args.includes('--no-shellcheck') });
const findings = all.filter((f) => !f.skipped);
for (const f of all.filter((f) => f.skipped)) process.stdout.write(`${f.file ?? file}:${f.line} ${f.rule} skipped: ${f.message}\n    why: ${f.fix.replace(/^skipped on purpose: /, '')}\n`);
for (const f of findings) {
  process.stdout.write(`${f.file ?? file}:${f.line} ${f.rule} ${f.message}\n    fix: ${f.fix}\n`);
}
process.stdout.write(findings.length === 0 ? `${file}: valid (structure, references, examples, review rules, shellcheck)\n` : `${file}: ${findings.length} finding(s)\n`);
process.exit(findings.length === 0 ? 0 : 1);
