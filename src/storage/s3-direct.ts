// Direct S3 requests (single-object PUT, GET, HEAD, UploadPart, and ListObjectsV2 pages) on node:http (GETs and PUTs over plain http: on http-client.ts) with SigV4: the fast path under s3.ts; anything but a 2xx answer goes back to the SDK.
//
// Why: a 4 KiB PutObject or GetObject through @aws-sdk/client-s3 costs ~2 ms of CPU in the client (middleware stack,
// endpoint rules, schema serde, signing); the same request signed with @smithy/signature-v4 and sent on node:http costs
// ~0.5 ms (NOTES.md). With many small files on a 2-core pod, that CPU is the throughput.
//
// The contract with s3.ts: every method returns undefined when it did not get a clean 2xx answer (an error status,
// a network error, a timeout), and the caller then repeats the request through the SDK — which brings its retries,
// region redirects and error parsing, so every failure is still described and retried exactly as before. Answers that
// mean this path is wrong for the bucket (3xx, 400, 403, 405, 501: a region redirect, a signature the server does not
// accept, an unusual endpoint) switch the fast path off for the rest of the process.
//
// Listing pages are read by s3-list-xml.ts instead of the SDK's XML machinery (most of a no-op push's CPU); a page whose
// body is cut or that the strict reader refuses is also repeated through the SDK.
import { createHash, createHmac } from 'node:crypto';
import { request as httpRequest, type Agent as HttpAgent, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import type { S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Readable } from 'node:stream';
import { KeepAliveHttpClient } from './http-client.js';
import { ListXmlError, parseListObjectsV2, type ListPage } from './s3-list-xml.js';

/** EMPTY_SHA256 is the payload hash of a request without a body. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** statuses after which the request is simply repeated through the SDK (it knows how to describe and retry them). */
const LEAVE_TO_SDK = new Set([404, 409, 412, 416, 429]);

/** DirectAnswer is a 2xx response: its status, headers and (for GET) the body stream, not yet read. */
export interface DirectAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
}

/** DirectGetAnswer is a 2xx answer to a GET: its status, headers and body stream, not yet read. */
export interface DirectGetAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
}

/** Sha256 adapts node:crypto to the hash constructor @smithy/signature-v4 expects (plain or keyed). */
export class Sha256 {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytesOf(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytesOf(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

export type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytesOf(data: SourceData): string | Uint8Array {
  if (typeof data === 'string') return data;
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}

/** encodeKey encodes an object key for the URL path as the SDK does: each segment with encodeURIComponent plus !'()*. */
export function encodeKey(key: string): string {
  return key.split('/').map(escapeUri).join('/');
}

/** escapeUri is RFC 3986 encoding as SigV4 canonicalises it: encodeURIComponent plus !'()*. */
function escapeUri(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** readText reads a response body to a string; undefined when it ends early (cut, reset, idle timeout) or differs from its Content-Length. */
function readText(body: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    body.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
    });
    body.on('end', () => {
      const announced = Number(body.headers['content-length']);
      resolve(!body.complete || (Number.isFinite(announced) && announced !== length) ? undefined : Buffer.concat(chunks, length).toString('utf8'));
    });
    body.on('error', () => resolve(undefined));
    body.on('close', () => resolve(undefined)); // after 'end' this changes nothing; before it, the body was cut
  });
}

interface Target {
  protocol: 'http:' | 'https:';
  hostname: string;
  port: string;
  /** the Host header. */
  host: string;
  /** the path up to the key: "/" (virtual-hosted) or "/bucket/" (path style). */
  basePath: string;
  signer: SignatureV4;
  /** what RequestSigner needs: the signing region and service, and the client's credential provider. */
  signing: { region: string; service: string; credentials: CredentialSource };
}

/** DirectObjectRequests sends single-object requests for one bucket, sharing the SDK client's config and sockets. */
export class DirectObjectRequests {
  private target: Promise<Target | undefined> | undefined;
  private disabled = false;
  /** set when a complete listing answer could not be read: this server's XML is left to the SDK from then on. */
  private listingDisabled = false;
  private signer: RequestSigner | undefined;
  /** GETs and PUTs on plain http go through http-client.ts (far less CPU than node:http); undefined until the first. */
  private plain: KeepAliveHttpClient | undefined;
  /** set once the server answered in a way http-client.ts cannot read: node:http from then on. */
  private plainUnsupported = false;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly agents: { http: HttpAgent; https: HttpsAgent },
    private readonly idleTimeoutMs: number,
    /** the configured endpoint URL, or undefined for AWS's own. */
    private readonly endpoint: string | undefined,
  ) {}

  /**
   * put stores body at key with the given x-amz-meta-* metadata; undefined when the SDK must do it. The hot path of a
   * push of many small files: signed by RequestSigner and sent like get() (see there).
   */
  async put(key: string, body: Buffer, metadata: Record<string, string>, ifNoneMatch: boolean, signal?: AbortSignal): Promise<DirectGetAnswer | undefined> {
    const headers: Record<string, string> = { 'content-length': String(body.length) };
    if (ifNoneMatch) headers['if-none-match'] = '*';
    for (const name of Object.keys(metadata)) headers[`x-amz-meta-${name}`] = metadata[name]!;
    const answer = await this.sendLean('PUT', key, headers, body, signal);
    answer?.body.resume(); // S3 answers a PUT without a body; whatever came is not needed
    return answer;
  }

  /** uploadPart stores one part of a multipart upload; undefined when the SDK must do it. */
  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer, signal?: AbortSignal): Promise<DirectAnswer | undefined> {
    return this.send('PUT', key, { partNumber: String(partNumber), uploadId }, { 'content-length': String(body.length) }, body, signal);
  }

  /**
   * get starts a GET (of a byte range when given, as "bytes=a-b"); the caller reads the body. undefined: use the SDK.
   * The hot path of a pull of many small files, so leaner than send(): see sendLean.
   */
  async get(key: string, range?: string, signal?: AbortSignal): Promise<DirectGetAnswer | undefined> {
    return this.sendLean('GET', key, range === undefined ? {} : { range }, undefined, signal);
  }

  /**
   * sendLean sends a GET or a whole-object PUT, leaner than send(): signed by RequestSigner (one SHA-256 and one HMAC, the
   * signing key kept per day) and, on plain http, sent by http-client.ts's keep-alive client instead of node:http (over
   * TLS, and for a server that client cannot read, by node:http with the headers as a ready list). Same contract as every
   * request here: anything but a 2xx answer goes to the SDK.
   */
  private async sendLean(method: 'GET' | 'PUT', key: string, headers: Record<string, string>, body: Buffer | undefined, signal?: AbortSignal): Promise<DirectGetAnswer | undefined> {
    if (this.disabled) return undefined;
    const target = await this.resolveTarget();
    if (!target) {
      this.disabled = true;
      return undefined;
    }
    signal?.throwIfAborted();
    const path = target.basePath + encodeKey(key);
    let signed: string[];
    try {
      signed = await (this.signer ??= new RequestSigner(target)).sign(method, path, headers, payloadHashOf(target, body));
    } catch {
      return undefined; // e.g. credentials that cannot be loaded: the SDK reports that properly
    }
    if (target.protocol === 'http:' && !this.plainUnsupported) {
      this.plain ??= new KeepAliveHttpClient(target.hostname, target.port ? Number(target.port) : 80, { idleTimeoutMs: this.idleTimeoutMs, maxSockets: this.agents.http.maxSockets });
      // a conditional PUT is not sent twice: its repeat could be refused because the first one landed
      const outcome = await this.plain.request(method, path, signed, body, { signal, repeatable: headers['if-none-match'] === undefined });
      if (outcome.kind === 'answer') {
        const { status, body: answerBody } = outcome;
        if (answerBody && status >= 200 && status < 300) return { status, headers: outcome.headers, body: answerBody };
        if (!LEAVE_TO_SDK.has(status) && status < 500) this.disabled = true;
        return undefined;
      }
      if (outcome.kind === 'failed') {
        signal?.throwIfAborted();
        return undefined;
      }
      // a server whose answers that client does not read (chunked bodies, HTTP/1.0): node:http from now on, this one included
      this.plainUnsupported = true;
      this.plain.close();
    }
    const answer = await this.sendOnNodeHttp(target, method, path, signed, body, signal);
    if (answer === 'failed') {
      signal?.throwIfAborted();
      return undefined;
    }
    return answer;
  }

  /** head asks for an object's headers; undefined when the SDK must do it (a missing object included). */
  async head(key: string, signal?: AbortSignal): Promise<DirectAnswer | undefined> {
    return this.send('HEAD', key, {}, {}, undefined, signal);
  }

  /**
   * listObjects asks for one ListObjectsV2 page with keys URL-encoded in the answer (so keys XML 1.0 cannot carry come
   * through) and reads it with s3-list-xml.ts. undefined when the SDK must do it: an error status, a network error, a
   * cut body, or an answer the reader refuses; a complete answer it refuses turns direct listing off.
   */
  async listObjects(prefix: string, maxKeys: number, continuationToken: string | undefined, signal?: AbortSignal): Promise<ListPage | undefined> {
    if (this.listingDisabled) return undefined;
    const query: Record<string, string> = { 'encoding-type': 'url', 'list-type': '2', 'max-keys': String(maxKeys), prefix };
    if (continuationToken !== undefined) query['continuation-token'] = continuationToken;
    const answer = await this.send('GET', '', query, {}, undefined, signal);
    if (!answer) return undefined;
    const xml = await readText(answer.body);
    signal?.throwIfAborted();
    if (xml === undefined) return undefined;
    try {
      return parseListObjectsV2(xml);
    } catch (e) {
      if (!(e instanceof ListXmlError && e.incomplete)) this.listingDisabled = true;
      return undefined;
    }
  }

  /** close drops the kept-alive connections of the lean client (node:http's are the agents', closed by s3.ts). */
  close(): void {
    this.plain?.close();
  }

  /**
   * sendOnNodeHttp sends one signed request on node:http(s) with the shared agents: a 2xx answer (its body still to be
   * read, or already drained for a method without one), or 'failed' (an error status — a refusal switches the direct
   * path off — or a network error or idle timeout).
   */
  private sendOnNodeHttp(
    target: Target, method: string, path: string, headers: Record<string, string> | string[], body: Buffer | undefined, signal: AbortSignal | undefined,
  ): Promise<DirectAnswer | 'failed'> {
    return new Promise((resolve) => {
      const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(
        {
          method,
          hostname: target.hostname,
          port: target.port || undefined,
          path,
          headers,
          agent: target.protocol === 'https:' ? this.agents.https : this.agents.http,
          timeout: this.idleTimeoutMs,
          ...(signal ? { signal } : {}),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            if (method !== 'GET') res.resume(); // no body to read: free the socket for the next request
            resolve({ status, headers: res.headers, body: res });
            return;
          }
          if (!LEAVE_TO_SDK.has(status) && status < 500) this.disabled = true;
          res.resume();
          resolve('failed');
        },
      );
      req.on('timeout', () => req.destroy(new Error('idle timeout')));
      req.on('error', () => resolve('failed'));
      req.end(body);
    });
  }

  private resolveTarget(): Promise<Target | undefined> {
    return (this.target ??= (async () => {
      const config = this.client.config;
      try {
        const resolved = config.endpointProvider({
          Bucket: this.bucket,
          Region: await config.region(),
          UseFIPS: await config.useFipsEndpoint(),
          UseDualStack: await config.useDualstackEndpoint(),
          ForcePathStyle: config.forcePathStyle,
          Accelerate: config.useAccelerateEndpoint,
          ...(this.endpoint ? { Endpoint: this.endpoint } : {}),
        });
        const scheme = (resolved.properties?.authSchemes as { name?: string; signingRegion?: string; signingName?: string }[] | undefined)?.[0];
        const url = resolved.url;
        // only plain SigV4 on http(s) without credentials in the URL; anything else (S3 Express, SigV4a, access points) stays with the SDK
        if (scheme?.name !== 'sigv4' || !scheme.signingRegion || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.search) return undefined;
        const signer = new SignatureV4({
          credentials: config.credentials,
          region: scheme.signingRegion,
          service: scheme.signingName ?? 's3',
          sha256: Sha256,
          uriEscapePath: false,
          applyChecksum: false,
        });
        const basePath = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
        const signing = { region: scheme.signingRegion, service: scheme.signingName ?? 's3', credentials: config.credentials as CredentialSource };
        return { protocol: url.protocol, hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port, host: url.host, basePath, signer, signing };
      } catch {
        return undefined;
      }
    })());
  }

  private async send(
    method: 'PUT' | 'GET' | 'HEAD',
    key: string,
    query: Record<string, string>,
    headers: Record<string, string>,
    body: Buffer | undefined,
    signal: AbortSignal | undefined,
  ): Promise<DirectAnswer | undefined> {
    if (this.disabled) return undefined;
    const target = await this.resolveTarget();
    if (!target) {
      this.disabled = true;
      return undefined;
    }
    signal?.throwIfAborted();
    const path = target.basePath + encodeKey(key);
    const search = Object.keys(query)
      .sort()
      .map((name) => `${escapeUri(name)}=${escapeUri(query[name]!)}`)
      .join('&');
    const payloadHash = payloadHashOf(target, body);
    let signed;
    try {
      signed = await target.signer.sign({
        method,
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port ? Number(target.port) : undefined,
        path,
        query,
        headers: { ...headers, host: target.host, 'x-amz-content-sha256': payloadHash },
      });
    } catch {
      return undefined; // e.g. credentials that cannot be loaded: the SDK reports that properly
    }
    const answer = await this.sendOnNodeHttp(target, method, search ? `${path}?${search}` : path, signed.headers, body, signal);
    if (answer === 'failed') {
      signal?.throwIfAborted();
      return undefined;
    }
    return answer;
  }
}

/**
 * payloadHashOf is a request body's x-amz-content-sha256. Over TLS the payload is protected in transit (UNSIGNED-PAYLOAD);
 * over plain http it is signed, so a body corrupted on the way is refused.
 */
function payloadHashOf(target: Target, body: Buffer | undefined): string {
  if (body === undefined) return EMPTY_SHA256;
  return target.protocol === 'https:' ? 'UNSIGNED-PAYLOAD' : createHash('sha256').update(body).digest('hex');
}

/** CredentialSource is the SDK client's credentials setting as resolved: a provider (memoized, refreshing) or fixed values. */
type CredentialSource = AwsCredentials | ((options?: unknown) => Promise<AwsCredentials>);

interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * RequestSigner signs requests without a query string (GETs, PUTs of whole objects) with SigV4 as @smithy/signature-v4
 * does for the same request (test/storage/s3-sign.test.ts holds it to that), at a fraction of its CPU: the SDK's signer
 * spends ~100 µs per request on HMACs (one to name its signing-key cache entry, every time), header copies and regexes.
 * Every header given is signed, with host, x-amz-content-sha256, x-amz-date and x-amz-security-token (when the
 * credentials carry one). The result is the request's header list, as node:http takes it: [name, value, name, value, …].
 */
export class RequestSigner {
  private signingKey: { secret: string; day: string; key: Buffer } | undefined;
  private clock = { second: -1, longDate: '' };

  constructor(private readonly target: { host: string; signing: { region: string; service: string; credentials: CredentialSource } }) {}

  /**
   * sign returns the headers of `method path` (path already URI-encoded, no query) at `now`: `headers` are the request's
   * own (lower-case names, e.g. range, content-length, x-amz-meta-*), `payloadHash` the body's SHA-256 in hex (or
   * UNSIGNED-PAYLOAD; a request without a body: the empty string's).
   */
  async sign(method: string, path: string, headers: Record<string, string> = {}, payloadHash = EMPTY_SHA256, now = Date.now()): Promise<string[]> {
    const { credentials: source, region, service } = this.target.signing;
    const credentials = typeof source === 'function' ? await source() : source;
    if (!credentials?.accessKeyId || !credentials.secretAccessKey) throw new Error('no credentials');
    const longDate = this.longDate(now);
    const day = longDate.slice(0, 8);
    const scope = `${day}/${region}/${service}/aws4_request`;
    const token = credentials.sessionToken;
    const list = ['host', this.target.host];
    for (const name of Object.keys(headers)) list.push(name, headers[name]!);
    list.push('x-amz-content-sha256', payloadHash, 'x-amz-date', longDate);
    if (token) list.push('x-amz-security-token', token);
    // canonical order: by name (the names are distinct and lower case)
    const order: number[] = [];
    for (let i = 0; i < list.length; i += 2) order.push(i);
    order.sort((a, b) => (list[a]! < list[b]! ? -1 : 1));
    let canonicalHeaders = '';
    let signedHeaders = '';
    for (const i of order) {
      canonicalHeaders += `${list[i]}:${canonicalValue(list[i + 1]!)}\n`;
      signedHeaders += signedHeaders === '' ? list[i] : `;${list[i]}`;
    }
    const canonicalRequest = `${method}\n${path}\n\n${canonicalHeaders}\n${signedHeaders}\n${payloadHash}`;
    const stringToSign = `AWS4-HMAC-SHA256\n${longDate}\n${scope}\n${createHash('sha256').update(canonicalRequest).digest('hex')}`;
    const signature = createHmac('sha256', this.keyFor(credentials.secretAccessKey, day, region, service)).update(stringToSign).digest('hex');
    list.push('authorization', `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`);
    return list;
  }

  /** longDate is SigV4's timestamp (20240102T030405Z), formatted once per second. */
  private longDate(now: number): string {
    const second = Math.floor(now / 1000);
    if (second !== this.clock.second) this.clock = { second, longDate: new Date(second * 1000).toISOString().replace(/[-:]|\.\d{3}/g, '') };
    return this.clock.longDate;
  }

  /** keyFor derives the day's signing key (four HMACs) once per secret and day. */
  private keyFor(secret: string, day: string, region: string, service: string): Buffer {
    const cached = this.signingKey;
    if (cached && cached.secret === secret && cached.day === day) return cached.key;
    let key: Buffer = createHmac('sha256', `AWS4${secret}`).update(day).digest();
    for (const part of [region, service, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
    this.signingKey = { secret, day, key };
    return key;
  }
}

/** canonicalValue is a header value as SigV4 canonicalises it: line breaks and runs of blanks as one space, trimmed. */
function canonicalValue(value: string): string {
  return /[\r\n\t]|  |^ | $/.test(value) ? value.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '') : value;
}
