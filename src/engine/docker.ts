import { redactBuildArgs } from '../redact.js';
import { execaStreamRunner, type RunOptions, type RunResult, type Runner, type StreamingProcess, type StreamRunner } from './exec.js';

/** One docker CLI invocation, as the plan describes it and --dry-run prints it. */
export interface DockerInvocation {
  readonly args: readonly string[];
  /** Variables set for this command only (DOCKER_BUILDKIT...). */
  readonly env: Readonly<Record<string, string>>;
}

export interface DockerCapabilities {
  readonly clientVersion: string;
  readonly serverVersion: string;
  readonly hasBuildx: boolean;
  /** The buildx builder's driver (docker, docker-container, remote, kubernetes), when buildx answered. */
  readonly buildxDriver: string | undefined;
  /** containerd: the engine keeps images in containerd's store (Docker 29's default); classic: graph drivers (overlay2). */
  readonly imageStore: 'containerd' | 'classic' | undefined;
}

/** Reads `docker info`'s driver line: the containerd store names its snapshotter there. */
export function imageStoreOf(infoLine: string): DockerCapabilities['imageStore'] {
  const line = infoLine.trim();
  if (line === '') return undefined;
  return /io\.containerd\.snapshotter/.test(line) ? 'containerd' : 'classic';
}

/** `docker info`, three lines: the client's info (plugins; its version since Docker 23), the server version, the storage driver. */
const INFO_FORMAT = '{{json .ClientInfo}}\n{{.ServerVersion}}\n{{.Driver}} {{json .DriverStatus}}';

/** Reads the INFO_FORMAT answer; undefined when it is not that shape (a stand-in, an unknown CLI). */
export function infoOf(stdout: string): { clientVersion: string | undefined; hasBuildx: boolean; serverVersion: string; imageStore: DockerCapabilities['imageStore'] } | undefined {
  const [client = '', serverVersion = '', driver = ''] = stdout.trim().split('\n');
  try {
    const info = JSON.parse(client) as { Version?: unknown; Plugins?: { Name?: unknown; Err?: unknown }[] | null };
    if (typeof info !== 'object' || info === null || serverVersion.trim() === '') return undefined;
    // A plugin that the CLI found but cannot run is listed with Err.
    const hasBuildx = (info.Plugins ?? []).some((p) => p.Name === 'buildx' && (p.Err === undefined || p.Err === null || p.Err === ''));
    return { clientVersion: typeof info.Version === 'string' && info.Version !== '' ? info.Version : undefined, hasBuildx, serverVersion: serverVersion.trim(), imageStore: imageStoreOf(driver) };
  } catch {
    return undefined;
  }
}

/** The "Driver:" of `docker buildx inspect`. */
export function buildxDriverOf(inspect: string): string | undefined {
  return /^Driver:\s*(\S+)/m.exec(inspect)?.[1];
}

/** Shell-quotes an argument for display only; nothing is ever run through a shell. */
export function displayArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * A command line as the helper prints it: build-argument values shown as NAME=***
 * (redact.ts), except the names in `reveal` (--show-build-arg, for --verbose only).
 */
export function displayInvocation(cli: string, invocation: DockerInvocation, reveal: ReadonlySet<string> = new Set()): string {
  const env = Object.entries(invocation.env).map(([k, v]) => `${k}=${displayArg(v)} `).join('');
  return `${env}${cli} ${redactBuildArgs(invocation.args, reveal).map(displayArg).join(' ')}`;
}

/** The only module that runs docker. Every call goes through the injected Runner. */
export class Docker {
  constructor(
    readonly cli: string,
    private readonly run: Runner,
    private readonly stream: StreamRunner = execaStreamRunner,
  ) {}

  /** `docker save`: the image as a tar stream (layers uncompressed on engines with the classic image store). */
  save(ref: string, timeoutMs: number): StreamingProcess {
    return this.stream(this.cli, ['save', ref], { timeoutMs });
  }

  /** The size of each history entry of a local image, newest first (0 for entries without a layer). */
  async historySizes(ref: string): Promise<number[] | undefined> {
    const result = await this.run(this.cli, ['history', '--human=false', '--no-trunc', '--format', '{{.Size}}', ref], { timeoutMs: 60_000 });
    if (result.exitCode !== 0) return undefined;
    const sizes = result.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => Number(l.trim()));
    return sizes.every((n) => Number.isFinite(n)) ? sizes : undefined;
  }

  exec(invocation: DockerInvocation, options: Omit<RunOptions, 'env'> = {}): Promise<RunResult> {
    return this.run(this.cli, invocation.args, { ...options, env: invocation.env });
  }

  /**
   * What the engine and the CLI can do. One `docker info` answers most of it (client
   * version, buildx plugin, server version, image store); buildx is asked only when a
   * builder other than the context's default may be in use (`currentBuilder`), and
   * `docker version` only for CLIs whose info lacks the client version (20.10).
   * `builder`: a buildx builder the user named (--builder NAME, BUILDX_BUILDER).
   */
  async capabilities(timeoutMs: number, builder?: string, currentBuilder: () => Promise<'default' | 'named' | 'unknown'> = async () => 'unknown'): Promise<DockerCapabilities | RunResult> {
    const [info, current] = await Promise.all([this.run(this.cli, ['info', '--format', INFO_FORMAT], { timeoutMs }), builder === undefined ? currentBuilder() : 'named']);
    if (info.notFound) return info;
    const parsed = info.exitCode === 0 ? infoOf(info.stdout) : undefined;
    if (!parsed) return this.capabilitiesOneByOne(timeoutMs, builder);
    const inspectBuildx = parsed.hasBuildx && current !== 'default';
    const [version, buildx] = await Promise.all([
      parsed.clientVersion === undefined ? this.run(this.cli, ['version', '--format', '{{.Client.Version}}'], { timeoutMs }) : undefined,
      inspectBuildx ? this.run(this.cli, ['buildx', 'inspect', ...(builder === undefined ? [] : [builder])], { timeoutMs }) : undefined,
    ]);
    const clientVersion = parsed.clientVersion ?? (version?.exitCode === 0 ? version.stdout.trim() : '');
    // A named builder that buildx cannot inspect counts as no buildx: the strategy choice says so.
    const hasBuildx = parsed.hasBuildx && (buildx === undefined || buildx.exitCode === 0);
    const buildxDriver = !hasBuildx ? undefined : buildx === undefined ? 'docker' : buildxDriverOf(buildx.stdout);
    return { clientVersion, serverVersion: parsed.serverVersion, hasBuildx, buildxDriver, imageStore: parsed.imageStore };
  }

  /** The probe as three CLI calls at once: for a `docker info` whose answer this cannot read. */
  private async capabilitiesOneByOne(timeoutMs: number, builder?: string): Promise<DockerCapabilities | RunResult> {
    const [version, info, buildx] = await Promise.all([
      this.run(this.cli, ['version', '--format', '{{.Client.Version}} {{.Server.Version}}'], { timeoutMs }),
      this.run(this.cli, ['info', '--format', '{{.Driver}} {{json .DriverStatus}}'], { timeoutMs }),
      this.run(this.cli, ['buildx', 'inspect', ...(builder === undefined ? [] : [builder])], { timeoutMs }),
    ]);
    if (version.exitCode !== 0 || version.notFound) return version;
    const [clientVersion = '', serverVersion = ''] = version.stdout.trim().split(/\s+/);
    const buildxDriver = buildx.exitCode === 0 ? buildxDriverOf(buildx.stdout) : undefined;
    return { clientVersion, serverVersion, hasBuildx: buildx.exitCode === 0, buildxDriver, imageStore: info.exitCode === 0 ? imageStoreOf(info.stdout) : undefined };
  }

  pull(ref: string, timeoutMs: number): Promise<RunResult> {
    // Not --quiet: its per-layer lines say which layers were downloaded (the report's MB pulled).
    return this.run(this.cli, ['pull', ref], { timeoutMs });
  }

  push(ref: string, timeoutMs: number): Promise<RunResult> {
    return this.run(this.cli, ['push', ref], { timeoutMs });
  }

  tag(source: string, target: string): Promise<RunResult> {
    return this.run(this.cli, ['tag', source, target], { timeoutMs: 60_000 });
  }

  removeTag(ref: string): Promise<RunResult> {
    return this.removeTags([ref]);
  }

  /** One CLI start for all of them; an image keeps existing while another tag holds it. */
  removeTags(refs: readonly string[]): Promise<RunResult> {
    return this.run(this.cli, ['rmi', '--no-prune', ...refs], { timeoutMs: 60_000 });
  }

  /** The uncompressed layer digests of a local image, or undefined if it is not there. */
  async diffIds(ref: string): Promise<string[] | undefined> {
    const result = await this.run(this.cli, ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', ref], { timeoutMs: 60_000 });
    if (result.exitCode !== 0) return undefined;
    try {
      return JSON.parse(result.stdout) as string[];
    } catch {
      return undefined;
    }
  }

  async imageId(ref: string): Promise<string | undefined> {
    const result = await this.run(this.cli, ['image', 'inspect', '--format', '{{.Id}}', ref], { timeoutMs: 60_000 });
    return result.exitCode === 0 ? result.stdout.trim() : undefined;
  }

  /** Logs in with the password on stdin, never on the command line. */
  login(registry: string | undefined, username: string, password: string, timeoutMs: number): Promise<RunResult> {
    const args = ['login', '--username', username, '--password-stdin'];
    if (registry !== undefined) args.push(registry);
    return this.run(this.cli, args, { input: password, timeoutMs });
  }
}
