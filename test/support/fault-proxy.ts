// Fault injection for tests: an HTTP proxy on loopback between swm and the test S3 server that, by a seeded script, answers 500/503/SlowDown, resets connections mid-body, truncates responses and stalls — and counts what it did.
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** FaultKind is one way a request can go wrong. */
export type FaultKind =
  /** answered 500 InternalError without reaching the server. */
  | 'status500'
  /** answered 503 ServiceUnavailable without reaching the server. */
  | 'status503'
  /** answered 503 SlowDown (S3's throttling) without reaching the server. */
  | 'slowdown'
  /** the connection is reset while the request body is still arriving (nothing reaches the server). */
  | 'reset-request'
  /** forwarded and done by the server, then the connection is reset: halfway through the response body, or before the headers when there is none. */
  | 'reset-response'
  /** forwarded; the response keeps its Content-Length but the connection is closed cleanly halfway through the body. */
  | 'truncate'
  /** forwarded; the response's Content-Length is rewritten to half and only that half is sent: a well-formed short answer only a content check catches. */
  | 'short-body'
  /** forwarded; the response stops (before the headers, or halfway through the body) and no byte follows for `stallMs`. */
  | 'stall';

/** ALL_FAULT_KINDS lists every kind, for scripts that want them all. */
export const ALL_FAULT_KINDS: readonly FaultKind[] = ['status500', 'status503', 'slowdown', 'reset-request', 'reset-response', 'truncate', 'short-body', 'stall'];

/** RequestInfo is what a script's filters see of a request. */
export interface RequestInfo {
  method: string;
  /** the path and query as sent (path-style: `/bucket/key?query`), still URL-encoded. */
  url: string;
}

/** FaultScript drives random faults: each request is hit with probability `rate`, the kind picked uniformly from `kinds`. */
export interface FaultScript {
  /** PRNG seed: the same seed and request sequence give the same faults. */
  seed: number;
  /** probability that one request gets a fault (0..1). */
  rate: number;
  kinds: readonly FaultKind[];
  /** how long a stall lasts before the proxy drops the connection (default 10 minutes: the client's timeout must act first). */
  stallMs?: number;
  /** only requests this returns true for can get a fault (default: all). */
  applies?: (req: RequestInfo) => boolean;
}

/** PermanentFault fails every request that matches, every time, with an S3 error status and code. */
export interface PermanentFault {
  /** HTTP method to match (any when omitted). */
  method?: string;
  /** matched against the decoded path and query (`/bucket/key?query`). */
  path: RegExp;
  status: number;
  /** S3 error code in the XML body, e.g. "ServiceUnavailable", "SlowDown", "InternalError". */
  code: string;
}

/** TargetedFault hits the next `times` requests that match with one kind of fault: deterministic, whatever the request order. */
export interface TargetedFault {
  /** HTTP method to match (any when omitted). */
  method?: string;
  /** matched against the decoded path and query (`/bucket/key?query`). */
  path: RegExp;
  kind: FaultKind;
  /** how many matching requests get it (default 1). */
  times?: number;
  /** for 'stall': before the headers (default) or halfway through the body. */
  stallBeforeHeaders?: boolean;
}

/** InjectedFault records one fault the proxy injected. */
export interface InjectedFault {
  kind: FaultKind | 'permanent';
  method: string;
  url: string;
}

/** FaultCounts are the counters a test asserts on. */
export interface FaultCounts {
  /** requests seen, faulty or not. */
  requests: number;
  /** of those, requests sent by the AWS SDK (they carry its amz-sdk-invocation-id header); the rest came from swm's direct path. */
  viaSdk: number;
  /** random faults injected (all kinds). */
  injected: number;
  /** answers given by permanent-fault rules. */
  permanent: number;
  byKind: Record<FaultKind, number>;
  /** faults by HTTP method (random and permanent). */
  byMethod: Record<string, number>;
}

/** FaultProxy is a running proxy; point swm at `url` with AWS_ENDPOINT_URL. */
export interface FaultProxy {
  url: string;
  readonly counts: FaultCounts;
  /** every fault injected, in order. */
  readonly log: readonly InjectedFault[];
  /** setScript replaces the random-fault script (undefined: pass everything through) and restarts its PRNG from the seed. */
  setScript(script: FaultScript | undefined): void;
  /** injectNext queues a targeted fault; targeted faults are checked before the script and consumed as they hit. */
  injectNext(fault: TargetedFault): void;
  /** targetedLeft counts targeted faults not yet injected. */
  targetedLeft(): number;
  /** failPermanently adds a rule that fails every matching request. */
  failPermanently(rule: PermanentFault): void;
  /** clearFaults removes the script, targeted faults and permanent rules (counters are kept). */
  clearFaults(): void;
  /** resetCounts zeroes the counters and the log. */
  resetCounts(): void;
  close(): Promise<void>;
}

/** mulberry32 is a small seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function emptyCounts(): FaultCounts {
  return {
    requests: 0,
    viaSdk: 0,
    injected: 0,
    permanent: 0,
    byKind: Object.fromEntries(ALL_FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>,
    byMethod: {},
  };
}

function s3ErrorXml(code: string, message: string, url: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><Resource>${url.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</Resource><RequestId>fault-proxy</RequestId></Error>`;
}

/** resetSocket drops a connection with a TCP RST (the client sees ECONNRESET), or plainly when RST is unavailable. */
function resetSocket(socket: Socket | null | undefined): void {
  if (!socket || socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

/**
 * startFaultProxy listens on a free loopback port and forwards every request to `upstream` (e.g. the MinIO endpoint),
 * keeping the Host header so SigV4 signatures made for the proxy's address still verify upstream.
 */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  const agent = new Agent({ keepAlive: true, maxSockets: 512 });
  let script: FaultScript | undefined;
  let random: () => number = () => 1;
  const permanent: PermanentFault[] = [];
  const targeted: (TargetedFault & { left: number })[] = [];
  let counts = emptyCounts();
  let log: InjectedFault[] = [];
  const sockets = new Set<Socket>();
  const stallTimers = new Set<NodeJS.Timeout>();

  const record = (kind: FaultKind | 'permanent', req: IncomingMessage) => {
    if (kind === 'permanent') counts.permanent++;
    else {
      counts.injected++;
      counts.byKind[kind]++;
    }
    const method = req.method ?? 'GET';
    counts.byMethod[method] = (counts.byMethod[method] ?? 0) + 1;
    log.push({ kind, method, url: req.url ?? '/' });
  };

  const answerError = (req: IncomingMessage, res: ServerResponse, status: number, code: string) => {
    const body = s3ErrorXml(code, `injected by the fault proxy`, req.url ?? '/');
    const send = () => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-amz-request-id': 'fault-proxy' });
      res.end(body);
    };
    // read the whole request first, as a server would, so the client is not cut off mid-upload
    if (req.complete) send();
    else {
      req.on('end', send);
      req.resume();
    }
  };

  const stall = (socket: Socket | null, ms: number) => {
    const timer = setTimeout(() => {
      stallTimers.delete(timer);
      resetSocket(socket);
    }, ms);
    stallTimers.add(timer);
    socket?.once('close', () => {
      clearTimeout(timer);
      stallTimers.delete(timer);
    });
  };

  const forward = (req: IncomingMessage, res: ServerResponse, fault: FaultKind | undefined, stallBeforeHeaders = false) => {
    const upstreamReq = httpRequest(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (up) => {
        const length = Number(up.headers['content-length'] ?? NaN);
        // a HEAD answer announces the object's length but carries no body
        const hasBody = req.method !== 'HEAD' && (Number.isFinite(length) ? length > 0 : up.headers['transfer-encoding'] !== undefined);
        if (!fault) {
          res.writeHead(up.statusCode ?? 502, up.statusMessage, up.rawHeaders);
          up.pipe(res);
          return;
        }
        if (!hasBody && fault !== 'stall') {
          // nothing to cut: the server did the work, the client loses the answer
          up.resume();
          up.on('end', () => resetSocket(req.socket));
          return;
        }
        if (fault === 'stall' && (!hasBody || stallBeforeHeaders)) {
          // stall before the headers: the request was done by the server, the client hears nothing
          up.resume();
          stall(req.socket, script?.stallMs ?? 600_000);
          return;
        }
        // the rest cut the body halfway: collect it (test bodies are small enough), then misbehave
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          const body = Buffer.concat(chunks);
          const half = body.subarray(0, Math.floor(body.length / 2));
          if (fault === 'short-body') {
            const headers = rawHeadersWith(up.rawHeaders, 'content-length', String(half.length));
            res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
            res.end(half);
            return;
          }
          res.writeHead(up.statusCode ?? 502, up.statusMessage, up.rawHeaders);
          res.flushHeaders();
          if (half.length > 0) res.write(half);
          const socket = req.socket;
          if (fault === 'reset-response') setTimeout(() => resetSocket(socket), 20);
          else if (fault === 'truncate') setTimeout(() => socket.end(), 20);
          else stall(socket, script?.stallMs ?? 600_000);
        });
      },
    );
    upstreamReq.on('error', () => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('fault proxy: upstream unreachable');
      } else resetSocket(req.socket);
    });
    req.pipe(upstreamReq);
    req.on('aborted', () => upstreamReq.destroy());
  };

  const server: Server = createServer((req, res) => {
    counts.requests++;
    if (req.headers['amz-sdk-invocation-id'] !== undefined) counts.viaSdk++;
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    let decoded = url;
    try {
      decoded = decodeURIComponent(url);
    } catch {
      // keep it encoded
    }
    const rule = permanent.find((r) => (r.method === undefined || r.method === method) && r.path.test(decoded));
    if (rule) {
      record('permanent', req);
      answerError(req, res, rule.status, rule.code);
      return;
    }
    let fault: FaultKind | undefined;
    let stallBeforeHeaders = false;
    const aimed = targeted.find((t) => t.left > 0 && (t.method === undefined || t.method === method) && t.path.test(decoded));
    if (aimed) {
      aimed.left--;
      fault = aimed.kind;
      stallBeforeHeaders = aimed.stallBeforeHeaders ?? true;
      if ((fault === 'truncate' || fault === 'short-body') && method !== 'GET') fault = 'reset-response';
      record(fault, req);
    } else if (script && script.kinds.length > 0 && (script.applies?.({ method, url }) ?? true) && random() < script.rate) {
      fault = script.kinds[Math.floor(random() * script.kinds.length)]!;
      stallBeforeHeaders = random() < 0.5;
      // cutting a body needs a body: other methods' answers are small XML or empty, they get a reset after the work instead
      if ((fault === 'truncate' || fault === 'short-body') && method !== 'GET') fault = 'reset-response';
      record(fault, req);
    }
    switch (fault) {
      case 'status500':
        return answerError(req, res, 500, 'InternalError');
      case 'status503':
        return answerError(req, res, 503, 'ServiceUnavailable');
      case 'slowdown':
        return answerError(req, res, 503, 'SlowDown');
      case 'reset-request': {
        // let part of the body (if any) arrive, then drop the connection without forwarding
        const drop = () => resetSocket(req.socket);
        if (req.complete) drop();
        else {
          req.once('data', () => setTimeout(drop, 5));
          req.once('end', drop);
          req.resume();
        }
        return;
      }
      default:
        return forward(req, res, fault, stallBeforeHeaders);
    }
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_e, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('fault proxy: no address');

  return {
    url: `http://127.0.0.1:${address.port}`,
    get counts() {
      return counts;
    },
    get log() {
      return log;
    },
    setScript(next) {
      script = next;
      random = next ? mulberry32(next.seed) : () => 1;
    },
    injectNext(fault) {
      targeted.push({ ...fault, left: fault.times ?? 1 });
    },
    targetedLeft() {
      return targeted.reduce((n, t) => n + t.left, 0);
    },
    failPermanently(rule) {
      permanent.push(rule);
    },
    clearFaults() {
      script = undefined;
      random = () => 1;
      permanent.length = 0;
      targeted.length = 0;
    },
    resetCounts() {
      counts = emptyCounts();
      log = [];
    },
    async close() {
      for (const t of stallTimers) clearTimeout(t);
      stallTimers.clear();
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** rawHeadersWith returns a flat raw header list with one header's value replaced (case-insensitive name). */
function rawHeadersWith(raw: string[], name: string, value: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    out.push(raw[i]!, raw[i]!.toLowerCase() === name ? value : raw[i + 1]!);
  }
  return out;
}
