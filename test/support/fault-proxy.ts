import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the proxy does to a request that a rule matches. */
export type Fault =
  | { readonly kind: 'status'; readonly status: number; readonly headers?: Record<string, string> }
  | { readonly kind: 'reset-after-bytes'; readonly bytes: number }
  | { readonly kind: 'stall' };

export interface Rule {
  readonly match: (req: IncomingMessage) => boolean;
  readonly fault: Fault;
  /** How many matching requests get the fault; Infinity for all. */
  readonly times: number;
}

export interface FaultProxy {
  readonly port: number;
  readonly address: string;
  /** Every request seen, with what was done to it. */
  readonly log: { method: string; url: string; fault: string | undefined }[];
  close(): Promise<void>;
}

/**
 * A small HTTP proxy between the engine and the loopback registry that injects
 * faults: error statuses, connection resets mid-transfer, stalls. The engine
 * treats any 127.0.0.1 port as an insecure registry, so images named
 * 127.0.0.1:PORT/... go through it. The Host header is kept, so the registry's
 * upload URLs point back at the proxy.
 */
export async function startFaultProxy(rules: Rule[], upstream = { host: '127.0.0.1', port: 5000 }): Promise<FaultProxy> {
  const remaining = rules.map((r) => r.times);
  const log: FaultProxy['log'] = [];
  const sockets = new Set<Socket>();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const index = rules.findIndex((rule, i) => (remaining[i] ?? 0) > 0 && rule.match(req));
    const rule = index >= 0 ? rules[index] : undefined;
    if (rule) remaining[index] = (remaining[index] ?? 0) - 1;
    log.push({ method: req.method ?? '', url: req.url ?? '', fault: rule?.fault.kind });
    const fault = rule?.fault;
    if (fault?.kind === 'status') {
      req.resume();
      res.writeHead(fault.status, { 'content-type': 'application/json', ...(fault.headers ?? {}) });
      res.end(JSON.stringify({ errors: [{ code: fault.status === 401 ? 'UNAUTHORIZED' : 'UNAVAILABLE', message: `injected ${fault.status}` }] }));
      return;
    }
    if (fault?.kind === 'stall') {
      req.resume();
      return; // never answers; the socket is closed when the proxy closes
    }
    const upstreamReq = request({ host: upstream.host, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (upstreamRes) => {
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
      upstreamRes.pipe(res);
    });
    upstreamReq.on('error', () => res.destroy());
    if (fault?.kind === 'reset-after-bytes') {
      let seen = 0;
      req.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen > fault.bytes) {
          upstreamReq.destroy();
          req.socket.resetAndDestroy?.() ?? req.socket.destroy();
        }
      });
    }
    req.pipe(upstreamReq);
  };

  const server: Server = createServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export const isBlobUpload = (req: IncomingMessage): boolean => /\/blobs\/uploads\//.test(req.url ?? '') && (req.method === 'PATCH' || req.method === 'PUT');
export const isManifestPut = (req: IncomingMessage): boolean => /\/manifests\//.test(req.url ?? '') && req.method === 'PUT';
export const isWrite = (req: IncomingMessage): boolean => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(req.method ?? '');
export const isManifestRead = (req: IncomingMessage): boolean => /\/manifests\//.test(req.url ?? '') && (req.method === 'HEAD' || req.method === 'GET');
