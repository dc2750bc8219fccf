import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import type { Runner } from '../engine/exec.js';
import type { ImageRef } from '../plan/image-ref.js';

/**
 * A small client for the registry HTTP API (distribution spec): existence checks,
 * manifest copies and config reads. It lets the helper look before it pulls and
 * retag without moving layers. Every failure is a RegistryError; a 404 is data.
 */

export const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
];

export class RegistryError extends Error {
  constructor(message: string, readonly status: number | undefined, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RegistryError';
  }
}

export interface ManifestInfo {
  readonly digest: string;
  readonly mediaType: string;
}

export interface Manifest extends ManifestInfo {
  readonly body: Buffer;
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface RegistryApi {
  /** The manifest's digest, or undefined when the tag does not exist. */
  head(ref: ImageRef): Promise<ManifestInfo | undefined>;
  /** Every tag of a repository, page by page (`n`, then the `Link` header's next page). */
  tags(repo: Pick<ImageRef, 'domain' | 'path'>, pageSize?: number): Promise<string[]>;
  /** Deletes a manifest by digest (`ref.tag` is the digest): every tag pointing at it goes with it. */
  deleteManifest(ref: ImageRef): Promise<void>;
  getManifest(ref: ImageRef): Promise<Manifest>;
  putManifest(ref: ImageRef, manifest: Manifest): Promise<void>;
  /** The manifest and the parsed config of a single-platform image. */
  image(ref: ImageRef): Promise<{ manifest: Manifest; config: Record<string, unknown> }>;
  /** Uploads a blob to the repository; returns its digest. */
  pushBlob(ref: Pick<ImageRef, 'domain' | 'path'>, bytes: Buffer): Promise<string>;
  /** Whether the repository has the blob. */
  hasBlob(ref: Pick<ImageRef, 'domain' | 'path'>, digest: string): Promise<boolean>;
  /**
   * Streams a blob whose digest is known only at its end: `commit` then names it,
   * or returns undefined to drop the upload (the registry already has the blob).
   * Resolves to whether the upload was committed.
   */
  pushBlobStream(ref: Pick<ImageRef, 'domain' | 'path'>, body: AsyncIterable<Buffer>, commit: () => Promise<string | undefined>): Promise<boolean>;
}

/** Loopback registries speak plain HTTP, as the engine allows for them. */
export function registryBaseUrl(domain: string | undefined): string {
  if (domain === undefined || domain === 'docker.io' || domain === 'index.docker.io') return 'https://registry-1.docker.io';
  const host = domain.replace(/:\d+$/, '');
  const insecure = host === 'localhost' || /^127\./.test(host) || host === '[::1]';
  return `${insecure ? 'http' : 'https'}://${domain}`;
}

export function apiPath(ref: Pick<ImageRef, 'domain' | 'path'>): string {
  const hub = ref.domain === undefined || ref.domain === 'docker.io' || ref.domain === 'index.docker.io';
  return hub && !ref.path.includes('/') ? `library/${ref.path}` : ref.path;
}

/** Finds credentials for a registry the way the docker CLI does: config.json, then credential helpers. */
export async function dockerCredentials(configDir: string, domain: string | undefined, run: Runner): Promise<Credentials | undefined> {
  let config: { auths?: Record<string, { auth?: string; identitytoken?: string }>; credsStore?: string; credHelpers?: Record<string, string> };
  try {
    config = JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const keys = domain === undefined || domain === 'docker.io' ? ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io'] : [domain, `https://${domain}`, `http://${domain}`];
  const helper = keys.map((k) => config.credHelpers?.[k]).find(Boolean) ?? config.credsStore;
  for (const key of keys) {
    const entry = config.auths?.[key];
    if (entry?.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
  }
  if (helper) {
    const result = await run(`docker-credential-${helper}`, ['get'], { input: keys[0] ?? '', timeoutMs: 15_000 });
    if (result.exitCode === 0) {
      try {
        const parsed = JSON.parse(result.stdout) as { Username?: string; Secret?: string };
        if (parsed.Username && parsed.Secret) return { username: parsed.Username, password: parsed.Secret };
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g)) params[m[1] ?? ''] = m[2] ?? '';
  return { scheme, params };
}

export interface HttpRegistryOptions {
  readonly timeoutMs: number;
  readonly credentials: (domain: string | undefined) => Promise<Credentials | undefined>;
  readonly fetchImpl?: typeof fetch;
}

export function httpRegistry(options: HttpRegistryOptions): RegistryApi {
  const doFetch = options.fetchImpl ?? fetch;
  const tokens = new Map<string, string>();

  async function authorize(domain: string | undefined, challenge: string, scope: string): Promise<string | undefined> {
    const { scheme, params } = parseChallenge(challenge);
    const creds = await options.credentials(domain);
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (scheme === 'basic') return basic;
    if (scheme !== 'bearer' || !params.realm) return undefined;
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', scope);
    const response = await doFetch(url, { headers: basic ? { authorization: basic } : {}, signal: AbortSignal.timeout(options.timeoutMs) });
    if (!response.ok) throw new RegistryError(`token request to ${url.host} answered ${response.status}`, response.status);
    const body = (await response.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    return token ? `Bearer ${token}` : undefined;
  }

  async function request(ref: Pick<ImageRef, 'domain' | 'path'>, method: string, path: string, init: { headers?: Record<string, string>; body?: Buffer; push?: boolean } = {}): Promise<Response> {
    const url = `${registryBaseUrl(ref.domain)}/v2/${apiPath(ref)}/${path}`;
    const scope = `repository:${apiPath(ref)}:${init.push ? 'pull,push' : 'pull'}`;
    const tokenKey = `${ref.domain ?? 'docker.io'} ${scope}`;
    const send = async (authorization: string | undefined): Promise<Response> => {
      try {
        return await doFetch(url, {
          method,
          headers: { ...(init.headers ?? {}), ...(authorization ? { authorization } : {}) },
          ...(init.body ? { body: new Uint8Array(init.body) } : {}),
          signal: AbortSignal.timeout(options.timeoutMs),
        });
      } catch (error) {
        const cause = (error as { cause?: { code?: string; message?: string } }).cause;
        const reason = cause?.code ?? cause?.message ?? (error as Error).message;
        throw new RegistryError(`${method} ${url} failed: ${reason}`, undefined, { cause: error });
      }
    };
    let response = await send(tokens.get(tokenKey));
    const challenge = response.headers.get('www-authenticate');
    if (response.status === 401 && challenge) {
      const authorization = await authorize(ref.domain, challenge, scope);
      if (authorization) {
        tokens.set(tokenKey, authorization);
        response = await send(authorization);
      }
    }
    return response;
  }

  function authHeader(ref: Pick<ImageRef, 'domain' | 'path'>): Record<string, string> {
    const token = tokens.get(`${ref.domain ?? 'docker.io'} repository:${apiPath(ref)}:pull,push`);
    return token ? { authorization: token } : {};
  }

  async function failure(response: Response, what: string): Promise<RegistryError> {
    const text = (await response.text().catch(() => '')).slice(0, 300);
    return new RegistryError(`${what}: HTTP ${response.status} ${response.statusText} ${text}`.trim(), response.status);
  }

  async function startUpload(ref: Pick<ImageRef, 'domain' | 'path'>): Promise<URL> {
    const started = await request(ref, 'POST', 'blobs/uploads/', { push: true });
    const location = started.headers.get('location');
    if (started.status !== 202 || !location) throw await failure(started, `starting an upload to ${ref.path}`);
    await started.arrayBuffer().catch(() => undefined);
    return new URL(location, `${registryBaseUrl(ref.domain)}/`);
  }

  /** A request to an upload location (authorized by the push token that started it). */
  async function send(ref: Pick<ImageRef, 'domain' | 'path'>, method: string, url: URL, init: RequestInit): Promise<Response> {
    try {
      return await doFetch(url, { ...init, method, headers: { ...((init.headers as Record<string, string> | undefined) ?? {}), ...authHeader(ref) }, signal: AbortSignal.timeout(options.timeoutMs) });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new RegistryError(`${method} ${url.host} upload failed: ${cause?.code ?? cause?.message ?? (error as Error).message}`, undefined, { cause: error });
    }
  }

  /** A monolithic upload: POST for a location, then one PUT with the whole body and its digest. */
  async function upload(ref: Pick<ImageRef, 'domain' | 'path'>, digest: string, body: Uint8Array): Promise<void> {
    const url = await startUpload(ref);
    url.searchParams.set('digest', digest);
    const response = await send(ref, 'PUT', url, { headers: { 'content-type': 'application/octet-stream' }, body: body as unknown as BodyInit });
    if (response.status !== 201) throw await failure(response, `uploading a blob to ${ref.path}`);
    await response.arrayBuffer().catch(() => undefined);
  }

  const api: RegistryApi = {
    async tags(repo, pageSize = 1000) {
      const tags: string[] = [];
      let path: string | undefined = `tags/list?n=${pageSize}`;
      for (let page = 0; path !== undefined && page < 100_000; page++) {
        const response = await request(repo, 'GET', path);
        if (response.status === 404) return tags;
        if (!response.ok) throw await failure(response, `listing the tags of ${repo.path}`);
        const body = (await response.json()) as { tags?: string[] | null };
        tags.push(...(body.tags ?? []));
        // Link: </v2/REPO/tags/list?last=x&n=1000>; rel="next"
        const next = /<([^>]+)>;\s*rel="?next"?/.exec(response.headers.get('link') ?? '')?.[1];
        path = next === undefined ? undefined : next.replace(/^.*\/tags\/list/, 'tags/list');
      }
      return tags;
    },
    async deleteManifest(ref) {
      const response = await request(ref, 'DELETE', `manifests/${ref.tag}`, { push: true });
      if (response.status !== 202 && response.status !== 200) throw await failure(response, `deleting ${ref.path}@${ref.tag}`);
      await response.arrayBuffer().catch(() => undefined);
    },
    async head(ref) {
      const response = await request(ref, 'HEAD', `manifests/${ref.tag}`, { headers: { accept: MANIFEST_TYPES.join(', ') } });
      if (response.status === 404) return undefined;
      if (!response.ok) throw await failure(response, `checking ${ref.path}:${ref.tag}`);
      return {
        digest: response.headers.get('docker-content-digest') ?? '',
        mediaType: (response.headers.get('content-type') ?? '').split(';')[0] ?? '',
      };
    },
    async getManifest(ref) {
      const response = await request(ref, 'GET', `manifests/${ref.tag}`, { headers: { accept: MANIFEST_TYPES.join(', ') } });
      if (!response.ok) throw await failure(response, `reading ${ref.path}:${ref.tag}`);
      const body = Buffer.from(await response.arrayBuffer());
      return {
        body,
        digest: response.headers.get('docker-content-digest') ?? '',
        mediaType: (response.headers.get('content-type') ?? '').split(';')[0] ?? '',
      };
    },
    async putManifest(ref, manifest) {
      const response = await request(ref, 'PUT', `manifests/${ref.tag}`, {
        headers: { 'content-type': manifest.mediaType },
        body: manifest.body,
        push: true,
      });
      if (!response.ok) throw await failure(response, `writing ${ref.path}:${ref.tag}`);
      await response.arrayBuffer().catch(() => undefined);
    },
    async image(ref) {
      const manifest = await api.getManifest(ref);
      const parsed = JSON.parse(manifest.body.toString('utf8')) as { config?: { digest?: string } };
      const configDigest = parsed.config?.digest;
      if (!configDigest) throw new RegistryError(`${ref.path}:${ref.tag} is not a single-platform image`, undefined);
      const response = await request(ref, 'GET', `blobs/${configDigest}`);
      if (!response.ok) throw await failure(response, `reading the config of ${ref.path}:${ref.tag}`);
      return { manifest, config: (await response.json()) as Record<string, unknown> };
    },
    async pushBlob(ref, bytes) {
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      await upload(ref, digest, new Uint8Array(bytes));
      return digest;
    },
    async hasBlob(ref, digest) {
      const response = await request(ref, 'HEAD', `blobs/${digest}`);
      if (response.status === 404) return false;
      if (!response.ok) throw await failure(response, `checking a blob of ${ref.path}`);
      return true;
    },
    async pushBlobStream(ref, body, commit) {
      const location = await startUpload(ref);
      // PATCH streams the body without a digest; PUT ?digest= names it (as docker push does).
      const patched = await send(ref, 'PATCH', location, {
        headers: { 'content-type': 'application/octet-stream' },
        body: Readable.toWeb(Readable.from(body)) as ReadableStream<Uint8Array>,
        duplex: 'half',
      } as RequestInit);
      if (patched.status !== 202) throw await failure(patched, `uploading a blob to ${ref.path}`);
      await patched.arrayBuffer().catch(() => undefined);
      const next = new URL(patched.headers.get('location') ?? location.href, `${registryBaseUrl(ref.domain)}/`);
      const digest = await commit();
      if (digest === undefined) {
        const dropped = await send(ref, 'DELETE', next, {});
        await dropped.arrayBuffer().catch(() => undefined);
        return false;
      }
      next.searchParams.set('digest', digest);
      const put = await send(ref, 'PUT', next, {});
      if (put.status !== 201) throw await failure(put, `finishing a blob upload to ${ref.path}`);
      await put.arrayBuffer().catch(() => undefined);
      return true;
    },
  };
  return api;
}
