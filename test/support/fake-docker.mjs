#!/usr/bin/env node
// A recording stand-in for the docker CLI, for argument tests only: it appends
// each call (argv and the DOCKER_BUILDKIT it saw) to $FAKE_DOCKER_LOG, answers
// version probes, and "builds" by printing classic-builder output.
import { appendFileSync } from 'node:fs';

const args = process.argv.slice(2);
appendFileSync(process.env.FAKE_DOCKER_LOG ?? '/dev/null', `${JSON.stringify({ args, buildkit: process.env.DOCKER_BUILDKIT ?? null })}\n`);
const [command] = args;
if (command === 'version') {
  process.stdout.write('28.0.0 28.0.0\n');
} else if (command === 'buildx') {
  process.exit(1);
} else if (command === 'build') {
  process.stdout.write('Step 1/2 : FROM scratch\n ---> abc\nStep 2/2 : COPY a /a\n ---> Using cache\n ---> def\nSuccessfully built def\n');
} else if (command === 'pull' || command === 'push') {
  process.stderr.write('Error response from daemon: manifest unknown\n');
  process.exit(1);
} else if (command === 'image') {
  process.stdout.write('["sha256:aaa"]\n');
}
