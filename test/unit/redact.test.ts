import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { displayInvocation } from '../../src/engine/docker.ts';
import { hasCredentials, looksSecret, redactBuildArgs, secretArgWarning } from '../../src/redact.ts';

describe('redactBuildArgs', () => {
  it('hides every build-argument value, in both spellings, and keeps the names', () => {
    assert.deepEqual(redactBuildArgs(['build', '--build-arg', 'NPM_TOKEN=supersecret123', '--build-arg=NODE=20', '--label', 'a=b', '.']), ['build', '--build-arg', 'NPM_TOKEN=***', '--build-arg=NODE=***', '--label', 'a=b', '.']);
  });
  it('shows the values of the names it is told to, and only those', () => {
    assert.deepEqual(redactBuildArgs(['--build-arg', 'A=1', '--build-arg', 'B=2'], new Set(['B'])), ['--build-arg', 'A=***', '--build-arg', 'B=2']);
  });
  it('leaves a value read from the environment (--build-arg NAME) as it is: there is none on the line', () => {
    assert.deepEqual(redactBuildArgs(['--build-arg', 'NPM_TOKEN', '.']), ['--build-arg', 'NPM_TOKEN', '.']);
  });
  it('a value with = in it is hidden whole', () => {
    assert.deepEqual(redactBuildArgs(['--build-arg', 'T=a=b=c']), ['--build-arg', 'T=***']);
  });
  it('printed command lines carry no value', () => {
    const line = displayInvocation('docker', { args: ['buildx', 'build', '--build-arg', 'NPM_TOKEN=supersecret123', '.'], env: {} });
    assert.equal(line, "docker buildx build --build-arg 'NPM_TOKEN=***' .");
    assert.ok(!line.includes('supersecret123'));
  });
});

describe('looksSecret', () => {
  const cases: [string, boolean][] = [
    ['NPM_TOKEN', true], ['GITHUB_AUTH', true], ['db-password', true], ['DB_PASSWD', true], ['AWS_SECRET_ACCESS_KEY', true],
    ['apiKey', true], ['API_KEYS', true], ['GCP_CREDENTIALS', true], ['token', true], ['authToken', true],
    ['MONKEY', false], ['KEYBOARD_LAYOUT', false], ['AUTHOR', false], ['NODE_VERSION', false], ['TOKENIZER', false], ['PASS', false],
  ];
  for (const [name, expected] of cases) it(`${name} -> ${expected}`, () => assert.equal(looksSecret(name), expected));
});

describe('secretArgWarning', () => {
  it('names each secret-looking argument once and says what to use instead', () => {
    const warning = secretArgWarning(['NODE_VERSION', 'NPM_TOKEN', 'NPM_TOKEN', 'API_KEY']);
    assert.ok(warning);
    assert.match(warning, /build arguments NPM_TOKEN, API_KEY look like a secret/);
    assert.match(warning, /--secret id=NPM_TOKEN,env=NPM_TOKEN/);
    assert.match(warning, /build history/);
  });
  it('says nothing for ordinary names', () => assert.equal(secretArgWarning(['NODE_VERSION', 'BASE_IMAGE']), undefined));
});

describe('hasCredentials', () => {
  const cases: [string, boolean][] = [
    ['robot:hunter2@registry.example.com/team/app:v1', true],
    ['https://robot:hunter2@registry.example.com/team/app', true],
    ['https://robot@registry.example.com/team/app', true],
    ['registry.example.com:5000/team/app:v1', false],
    ['localhost:5000/app@sha256:0123', false],
    ['app:v1@sha256:0123', false],
    ['team/app', false],
  ];
  for (const [ref, expected] of cases) it(`${ref} -> ${expected}`, () => assert.equal(hasCredentials(ref), expected));
});
