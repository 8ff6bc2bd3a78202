// The S3 backend (AWS and S3 compatibles) on @aws-sdk/client-s3: keep-alive sockets, retries, multipart via lib-storage, one-line errors.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import { Transform, pipeline, type Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { BucketSpec } from '../config/types.js';
import { ExitCode, SwmError, failure, isSwmError } from '../errors.js';
import { compareKeys } from '../keys.js';
import { decodeMeta, encodeMeta } from './meta.js';
import { validateRange } from './range.js';
import { DirectObjectRequests, type DirectAnswer } from './s3-direct.js';
import { decodeListedKey, type ListPage } from './s3-list-xml.js';
import { StorageError } from './storage-error.js';
import {
  INVALID_RANGE,
  NO_SUCH_KEY,
  NO_SUCH_UPLOAD,
  PRECONDITION_FAILED,
  type ByteRange,
  type GetResult,
  type MultipartUploads,
  type ObjectInfo,
  type ObjectMeta,
  type PutOptions,
  type Storage,
  type UploadedPart,
} from './types.js';

// The SDK warns on Node < 22 when the first client is built; swm supports Node 20 on purpose.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** S3Spec is the `s3`-kind BucketSpec this backend opens. */
export type S3Spec = Extract<BucketSpec, { kind: 's3' }>;

/** S3StorageOptions are programmatic overrides (tests, embedding); the CLI uses the SDK's credential chain. */
export interface S3StorageOptions {
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** attempts per request, retries included (default 6). */
  maxAttempts?: number;
  /**
   * false sends every request through the SDK; by default single-object PUT/GET/HEAD/UploadPart and listing pages go
   * out directly (s3-direct.ts) and fall back to the SDK on anything but a 2xx answer. SWM_S3_SDK_ONLY=1 has the effect of false.
   */
  directRequests?: boolean;
  /** keys per listing page (default and at most 1,000, S3's own limit); tests set it small to list across pages cheaply. */
  listPageSize?: number;
}

/** SINGLE_PUT_LIMIT: bodies below this many bytes go in one PutObject (buffered, so the SDK can retry them). */
export const SINGLE_PUT_LIMIT = 16 * 1024 * 1024;
/** MIN_PART_SIZE is the smallest multipart part swm uses (S3's own minimum is 5 MiB). */
export const MIN_PART_SIZE = 8 * 1024 * 1024;
/** UNKNOWN_SIZE_PART_SIZE is the part size for bodies of unknown length: caps them at 10,000 × 16 MiB ≈ 156 GiB. */
export const UNKNOWN_SIZE_PART_SIZE = 16 * 1024 * 1024;
/** MAX_PARTS is S3's limit on parts per multipart upload. */
export const MAX_PARTS = 10_000;
const DELETE_BATCH = 1000;
/** XML_UNSAFE matches a character XML 1.0 cannot carry (control characters but tab, LF and CR; U+FFFE, U+FFFF). */
const XML_UNSAFE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const LIST_PAGE = 1000;
const MAX_SOCKETS = 256;
const CONNECT_TIMEOUT_MS = 5_000;
/** idle time on a socket (no bytes either way) before a request is failed and retried; never a total-time limit. */
const SOCKET_IDLE_TIMEOUT_MS = 120_000;
/** socketIdleTimeoutMs: SOCKET_IDLE_TIMEOUT_MS, or SWM_S3_IDLE_TIMEOUT_MS (tests with a stalling proxy, very slow links). */
function socketIdleTimeoutMs(): number {
  const fromEnv = Number(process.env.SWM_S3_IDLE_TIMEOUT_MS);
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : SOCKET_IDLE_TIMEOUT_MS;
}
const DEFAULT_MAX_ATTEMPTS = 6;
const DEFAULT_REGION = 'us-east-1';

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED', 'EPROTO', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID']);
/** TLS_CODES are certificate failures: the endpoint answered, but its certificate is not trusted (verification stays on). */
const TLS_CODES = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_REVOKED', 'ERR_TLS_CERT_ALTNAME_INVALID']);
const ACCESS_CODES = new Set(['AccessDenied', 'Forbidden', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'TokenRefreshRequired', 'InvalidClientTokenId', 'AllAccessDisabled', 'AccountProblem']);

/** S3ErrorContext says what was being done, for describeS3Error's message. */
export interface S3ErrorContext {
  /** "s3:bucket" (the spec text). */
  bucket: string;
  /** the endpoint URL, or undefined for AWS's default. */
  endpoint?: string;
  /** what failed, e.g. "put runpod/abc/x.bin" or "list runpod/abc/". */
  operation: string;
  /** strings that must never appear in a message (secret keys, session tokens). */
  secrets?: string[];
}

/**
 * describeS3Error turns any SDK, network or credential error into a one-line SwmError (exit 1) naming the problem and
 * what to do. Secrets listed in context (and AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN from the environment) are masked.
 */
export function describeS3Error(e: unknown, context: S3ErrorContext): SwmError {
  if (isSwmError(e)) return e;
  const err = (typeof e === 'object' && e !== null ? e : { message: String(e) }) as {
    name?: string;
    code?: string;
    message?: string;
    Code?: string;
    cause?: { code?: string; message?: string };
    $metadata?: { httpStatusCode?: number };
    $response?: { headers?: Record<string, string> };
  };
  const name = err.Code ?? err.name ?? '';
  const status = err.$metadata?.httpStatusCode;
  const netCode = [err.code, err.cause?.code].find((c): c is string => typeof c === 'string' && NETWORK_CODES.has(c));
  const tlsCode = [err.code, err.cause?.code].find((c): c is string => typeof c === 'string' && TLS_CODES.has(c));
  const where = context.endpoint ?? 'the AWS S3 endpoint';
  const firstLine = (s: string | undefined) => (s ?? '').split('\n')[0]!.trim();
  let message: string;
  let hint: string | undefined;
  let code: string | undefined;

  if (name === 'CredentialsProviderError' || /could not load credentials/i.test(err.message ?? '')) {
    message = `no AWS credentials found for ${context.bucket}`;
    hint = 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (or the provider\'s profile in the config file)';
  } else if (tlsCode) {
    message = `the TLS certificate of endpoint ${where} is not trusted (${tlsCode}), so ${context.bucket} was not contacted`;
    hint = "fix the server's certificate, or trust its CA with AWS_CA_BUNDLE=/path/to/ca.pem (swm never turns verification off)";
  } else if (netCode || name === 'TimeoutError' || (name === 'RequestTimeout' && status === undefined)) {
    message = `cannot reach endpoint ${where} for ${context.bucket}: ${netCode ?? 'timed out'}`;
    hint = 'check the endpoint (AWS_ENDPOINT_URL or the provider in the config file) and the network';
  } else if (name === 'NoSuchBucket' || (status === 404 && (name === 'NotFound' || name === 'UnknownError') && context.operation === 'check bucket')) {
    message = `bucket ${context.bucket} does not exist at ${where}`;
    hint = 'create it, or check the bucket name and the endpoint';
  } else if (ACCESS_CODES.has(name) || status === 403) {
    // a HEAD answer has no body, so the SDK can only call its error "Unknown": name the HTTP status instead
    const reason = name && name !== 'Unknown' && name !== 'UnknownError' ? name : `HTTP ${status ?? 403}`;
    message = `access denied to ${context.bucket} (${reason}) during ${context.operation}`;
    hint = 'check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the profile) and the bucket\'s permissions';
  } else if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed' || name === 'IllegalLocationConstraintException' || status === 301) {
    const region = err.$response?.headers?.['x-amz-bucket-region'];
    message = `bucket ${context.bucket} is in another region${region ? ` (${region})` : ''}`;
    hint = `set the region (AWS_REGION${region ? `=${region}` : ''} or the provider's region in the config file)`;
  } else if (name === 'PreconditionFailed' || status === 412) {
    code = PRECONDITION_FAILED;
    message = `${context.operation} in ${context.bucket}: the object already exists`;
  } else if (name === 'NoSuchKey') {
    code = NO_SUCH_KEY;
    message = `${context.operation} in ${context.bucket}: the object does not exist`;
  } else if (name === 'NoSuchUpload') {
    code = NO_SUCH_UPLOAD;
    message = `${context.operation} in ${context.bucket}: the multipart upload no longer exists (completed or aborted)`;
  } else if (name === 'InvalidRange' || status === 416) {
    code = INVALID_RANGE;
    message = `${context.operation} in ${context.bucket}: the range starts beyond the object's end`;
  } else if (name === 'AbortError') {
    message = `${context.operation} in ${context.bucket} was cancelled`;
  } else {
    const detail = firstLine(err.message) || firstLine(err.cause?.message) || 'unknown error';
    const tag = name && name !== 'Error' ? `${name}${status ? ` (HTTP ${status})` : ''}` : status ? `HTTP ${status}` : '';
    message = `${context.operation} in ${context.bucket} failed: ${tag ? `${tag}: ` : ''}${detail}`;
    if (status !== undefined && status >= 500) hint = 'the server failed; retry later';
  }
  message = maskSecrets(message, context.secrets);
  // The SDK error holds the raw request and response (headers, session token): keep only its name, status and text.
  const cause = Object.assign(new Error(maskSecrets(`${name || 'Error'}: ${firstLine(err.message)}`, context.secrets)), {
    name: name || 'Error',
    ...(status !== undefined ? { httpStatusCode: status } : {}),
    ...(netCode ? { code: netCode } : {}),
  });
  if (e instanceof Error && e.stack) cause.stack = maskSecrets(e.stack, context.secrets);
  return code ? new StorageError(code, message, { cause, hint }) : new SwmError(ExitCode.failed, message, { cause, hint });
}

function maskSecrets(text: string, extra: string[] = []): string {
  const secrets = [...extra, process.env.AWS_SECRET_ACCESS_KEY, process.env.AWS_SESSION_TOKEN].filter(
    (s): s is string => typeof s === 'string' && s.length >= 4,
  );
  let out = text;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}

/** passwordOf returns the password of an endpoint URL (raw and decoded), which must never be printed. */
function passwordOf(endpoint: string | undefined): string[] {
  try {
    const { password } = new URL(endpoint ?? '');
    return password ? [password, decodeURIComponent(password)] : [];
  } catch {
    return [];
  }
}

/** redactPassword shows an endpoint URL with its password (if any) replaced by ***. */
function redactPassword(endpoint: string | undefined): string | undefined {
  if (endpoint === undefined || passwordOf(endpoint).length === 0) return endpoint;
  const url = new URL(endpoint);
  url.password = '***';
  return url.toString();
}

/** isLocalHost is true for IP-address and localhost endpoints, which cannot use virtual-hosted-style bucket names. */
export function isLocalHost(endpoint: string): boolean {
  let host: string;
  try {
    host = new URL(endpoint).hostname;
  } catch {
    return false;
  }
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return isIP(bare) !== 0 || bare === 'localhost' || bare.endsWith('.localhost');
}

/** createS3Storage opens an S3 (or compatible) bucket described by spec. No request is made until the first call. */
export function createS3Storage(spec: S3Spec, options: S3StorageOptions = {}): Storage {
  return new S3Storage(spec, options);
}

class S3Storage implements Storage {
  readonly description: string;
  readonly features = { resumableMultipart: true };
  readonly multipart: MultipartUploads = {
    create: (key, meta) => this.createMultipart(key, meta),
    uploadPart: (key, uploadId, partNumber, body, signal) => this.uploadPart(key, uploadId, partNumber, body, signal),
    listParts: (key, uploadId) => this.listParts(key, uploadId),
    complete: (key, uploadId, parts) => this.completeMultipart(key, uploadId, parts),
    abort: (key, uploadId) => this.abortMultipart(key, uploadId),
  };
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly endpoint: string | undefined;
  /** the endpoint as messages show it: a password in the URL (http://user:pw@host) replaced by ***. */
  private readonly shownEndpoint: string | undefined;
  private readonly baseConfig: S3ClientConfig;
  private readonly agents: { http: HttpAgent; https: HttpsAgent };
  private readonly ca: Buffer | undefined;
  private readonly secrets: string[];
  /** the fast path for single-object requests and listing pages, or undefined when turned off. */
  private readonly direct: DirectObjectRequests | undefined;
  private readonly listPageSize: number;

  constructor(spec: S3Spec, options: S3StorageOptions) {
    this.description = spec.text;
    this.bucket = spec.bucket;
    this.listPageSize = Math.min(LIST_PAGE, Math.max(1, Math.floor(options.listPageSize ?? LIST_PAGE)));
    const rawEndpoint = spec.s3.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    this.endpoint = rawEndpoint ? (/^https?:\/\//i.test(rawEndpoint) ? rawEndpoint : `https://${rawEndpoint}`) : undefined;
    const endpointPassword = passwordOf(this.endpoint);
    this.secrets = [options.credentials?.secretAccessKey, options.credentials?.sessionToken, ...endpointPassword].filter((s): s is string => !!s);
    this.shownEndpoint = redactPassword(this.endpoint);
    this.ca = readCaBundle();
    this.agents = {
      http: new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
      https: new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...(this.ca ? { ca: this.ca } : {}) }),
    };
    const profile = spec.s3.profile;
    this.baseConfig = {
      region: spec.s3.region ?? defaultRegion(profile),
      ...(this.endpoint ? { endpoint: this.endpoint } : {}),
      forcePathStyle: spec.s3.pathStyle ?? (this.endpoint !== undefined && isLocalHost(this.endpoint)),
      ...(profile ? { profile } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // AWS answers 301 for a bucket in another region: retry there instead of failing when no region was configured
      followRegionRedirects: true,
      retryMode: 'standard',
      maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    };
    this.client = new S3Client({
      ...this.baseConfig,
      requestHandler: new NodeHttpHandler({
        httpAgent: this.agents.http,
        httpsAgent: this.agents.https,
        connectionTimeout: CONNECT_TIMEOUT_MS,
        socketTimeout: socketIdleTimeoutMs(),
        logger: silentLogger,
      }),
    });
    addContentMd5ForDeleteObjects(this.client);
    const direct = options.directRequests ?? process.env.SWM_S3_SDK_ONLY !== '1';
    this.direct = direct ? new DirectObjectRequests(this.client, this.bucket, this.agents, socketIdleTimeoutMs(), this.endpoint) : undefined;
  }

  private fail(e: unknown, operation: string): SwmError {
    return describeS3Error(e, { bucket: this.description, endpoint: this.shownEndpoint, operation, secrets: this.secrets });
  }

  async check(): Promise<void> {
    // A separate client with a short connect timeout and one retry: an unreachable endpoint fails in seconds.
    const probe = new S3Client({
      ...this.baseConfig,
      maxAttempts: 2,
      // its own agents: destroying the probe must not close the main client's sockets
      requestHandler: new NodeHttpHandler({
        connectionTimeout: 3_000,
        socketTimeout: 15_000,
        logger: silentLogger,
        httpAgent: new HttpAgent({ keepAlive: false }),
        httpsAgent: new HttpsAgent({ keepAlive: false, ...(this.ca ? { ca: this.ca } : {}) }),
      }),
    });
    try {
      await probe.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: AbortSignal.timeout(20_000) });
    } catch (e) {
      throw this.fail(e, 'check bucket');
    } finally {
      probe.destroy();
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let previous: string | undefined;
    // the next page is asked for as soon as its token is known, while this one is consumed: at most two pages in memory
    const cancel = new AbortController();
    let asked: string | undefined; // the continuation token of the page awaited next
    let next = this.listPage(prefix, undefined, cancel.signal);
    try {
      for (;;) {
        const page = await next;
        const token = page.isTruncated ? page.nextContinuationToken : undefined;
        if (token && token === asked) throw failure(`list ${prefix} in ${this.description}: the server answered a page with its own continuation token`);
        if (token) {
          asked = token;
          next = this.listPage(prefix, token, cancel.signal);
          next.catch(() => {}); // seen when awaited; a consumer that stops early must not leave it unhandled
        }
        for (const o of page.objects) {
          if (o.key === undefined) continue;
          if (previous !== undefined && compareKeys(previous, o.key) >= 0) {
            // the sync merge relies on byte order; a server that breaks it must not be trusted with deletions
            throw failure(`list ${prefix} in ${this.description}: the server returned keys out of order ("${previous}" before "${o.key}")`);
          }
          previous = o.key;
          yield { key: o.key, size: o.size ?? 0, etag: normalizeEtag(o.etag), lastModified: o.lastModified };
        }
        if (!token) return;
      }
    } finally {
      cancel.abort();
    }
  }

  /**
   * listPage fetches one ListObjectsV2 page: directly when it can (s3-direct.ts), else through the SDK. Both ask for
   * URL-encoded keys, so keys with characters XML 1.0 cannot carry (control characters, U+FFFE) list as they are.
   */
  private async listPage(prefix: string, token: string | undefined, signal: AbortSignal): Promise<ListPage> {
    const direct = await this.direct?.listObjects(prefix, this.listPageSize, token, signal);
    if (direct) return direct;
    try {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: this.listPageSize, ContinuationToken: token, EncodingType: 'url' }),
        { abortSignal: signal },
      );
      // the SDK leaves encoded keys as they came; a server that ignored encoding-type says no EncodingType
      const encoded = page.EncodingType === 'url';
      return {
        objects: (page.Contents ?? []).map((o) => ({
          key: o.Key !== undefined && encoded ? decodeListedKey(o.Key) : o.Key,
          size: o.Size,
          etag: o.ETag,
          lastModified: o.LastModified?.getTime(),
        })),
        isTruncated: page.IsTruncated === true,
        nextContinuationToken: page.NextContinuationToken,
      };
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      throw this.fail(e, `list ${prefix || '(bucket root)'}`);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const direct = await this.direct?.head(key);
      if (direct) return infoFromHeaders(key, direct);
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { key, size: r.ContentLength ?? 0, etag: normalizeEtag(r.ETag), lastModified: r.LastModified?.getTime(), meta: decodeMeta(r.Metadata) };
    } catch (e) {
      const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (err.name !== 'NoSuchBucket' && (err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404)) {
        return undefined;
      }
      throw this.fail(e, `head ${key}`);
    }
  }

  async get(key: string, range?: ByteRange): Promise<GetResult> {
    if (range) validateRange(key, range);
    const rangeHeader = range ? `bytes=${range.start}-${range.end - 1}` : undefined;
    try {
      const direct = await this.direct?.get(key, rangeHeader);
      if (direct) return { info: infoFromHeaders(key, direct), body: direct.body };
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(rangeHeader ? { Range: rangeHeader } : {}) }));
      const total = r.ContentRange ? Number(/\/(\d+)$/.exec(r.ContentRange)?.[1]) : undefined;
      const info: ObjectInfo = {
        key,
        size: total !== undefined && Number.isFinite(total) ? total : (r.ContentLength ?? 0),
        etag: normalizeEtag(r.ETag),
        lastModified: r.LastModified?.getTime(),
        meta: decodeMeta(r.Metadata),
      };
      return { info, body: r.Body as Readable };
    } catch (e) {
      throw this.fail(e, `get ${key}`);
    }
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions): Promise<{ etag: string }> {
    const signal = options.signal;
    signal?.throwIfAborted();
    const params = {
      Bucket: this.bucket,
      Key: key,
      Metadata: encodeMeta(options.meta),
      ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
    };
    if (Buffer.isBuffer(body) && options.size !== undefined && options.size !== body.length) {
      throw lengthMismatch(key, String(body.length), options.size);
    }
    const size = Buffer.isBuffer(body) ? body.length : options.size;
    try {
      if (size !== undefined && size < SINGLE_PUT_LIMIT) {
        const data = Buffer.isBuffer(body) ? body : await readExactly(body, size, key, signal);
        const direct = await this.direct?.put(key, data, params.Metadata, options.ifNoneMatch === true, signal);
        const etag = direct ? direct.headers.etag : (await this.client.send(new PutObjectCommand({ ...params, Body: data, ContentLength: data.length }), { abortSignal: signal })).ETag;
        options.onProgress?.(data.length);
        return { etag: normalizeEtag(etag) };
      }
      const partSize = size === undefined ? UNKNOWN_SIZE_PART_SIZE : partSizeFor(size);
      const source = Buffer.isBuffer(body) || size === undefined ? body : withExactLength(body, size, key);
      const controller = new AbortController();
      const onAbort = () => controller.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const upload = new Upload({
        client: this.client,
        params: { ...params, Body: source, ...(size !== undefined ? { ContentLength: size } : {}) },
        partSize,
        queueSize: size !== undefined && size >= 256 * 1024 * 1024 ? 8 : 4,
        leavePartsOnError: false,
        abortController: controller,
      });
      if (options.onProgress) upload.on('httpUploadProgress', (p) => p.loaded !== undefined && options.onProgress!(p.loaded));
      try {
        const r = await upload.done();
        return { etag: normalizeEtag(r.ETag) };
      } catch (e) {
        // the server completed the upload but its answer was lost: the SDK's replay of Complete finds the upload gone.
        // The object is ours when its size and swm metadata (content hash included) are what this put sent.
        if ((e as { name?: string }).name === 'NoSuchUpload' && size !== undefined && options.meta.hash !== undefined) {
          const landed = await this.head(key).catch(() => undefined);
          if (landed?.meta && landed.size === size && JSON.stringify(encodeMeta(landed.meta)) === JSON.stringify(params.Metadata)) {
            return { etag: landed.etag };
          }
        }
        throw e;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        if (!Buffer.isBuffer(body) && (controller.signal.aborted || !body.readableEnded)) body.destroy();
      }
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw this.fail(e, `put ${key}`);
    }
  }

  async delete(allKeys: string[]): Promise<void> {
    // a DeleteObjects body is XML: keys with characters XML 1.0 cannot carry are deleted one by one (MinIO: MalformedXML)
    const unsafe = allKeys.filter((key) => XML_UNSAFE.test(key));
    if (unsafe.length > 0) await this.deleteOneByOne(unsafe);
    const keys = unsafe.length > 0 ? allKeys.filter((key) => !XML_UNSAFE.test(key)) : allKeys;
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      let r;
      try {
        r = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        );
      } catch (e) {
        const name = (e as { name?: string }).name;
        if (name === 'NotImplemented' || (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 501) {
          await this.deleteOneByOne(batch); // providers without multi-object delete (e.g. GCS's XML API)
          continue;
        }
        throw this.fail(e, `delete ${batch.length} objects`);
      }
      const errors = (r.Errors ?? []).filter((x) => x.Code !== 'NoSuchKey');
      if (errors.length > 0) {
        const first = errors[0]!;
        throw failure(
          `delete in ${this.description} failed for ${errors.length} of ${batch.length} objects, first ${first.Key}: ${first.Code ?? 'error'} ${first.Message ?? ''}`.trim(),
          undefined,
          ACCESS_CODES.has(first.Code ?? '') ? 'check the credentials\' delete permission on the bucket' : undefined,
        );
      }
    }
  }

  private async deleteOneByOne(keys: string[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        try {
          await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
        } catch (e) {
          if ((e as { name?: string }).name === 'NoSuchKey') continue;
          throw this.fail(e, `delete ${key}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(32, keys.length) }, worker));
  }

  private async createMultipart(key: string, meta: ObjectMeta): Promise<string> {
    try {
      const r = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, Metadata: encodeMeta(meta) }));
      if (!r.UploadId) throw failure(`start upload of ${key} in ${this.description}: the server returned no upload id`);
      return r.UploadId;
    } catch (e) {
      throw this.fail(e, `start upload of ${key}`);
    }
  }

  private async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer, signal?: AbortSignal): Promise<string> {
    signal?.throwIfAborted();
    try {
      const direct = await this.direct?.uploadPart(key, uploadId, partNumber, body, signal);
      const r = direct
        ? { ETag: direct.headers.etag }
        : await this.client.send(
            new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }),
            { abortSignal: signal },
          );
      if (!r.ETag) throw failure(`upload part ${partNumber} of ${key} in ${this.description}: the server returned no etag`);
      return normalizeEtag(r.ETag);
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw this.fail(e, `upload part ${partNumber} of ${key}`);
    }
  }

  private async listParts(key: string, uploadId: string): Promise<UploadedPart[] | undefined> {
    const parts: UploadedPart[] = [];
    let marker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }));
      } catch (e) {
        if ((e as { name?: string }).name === 'NoSuchUpload') return undefined;
        throw this.fail(e, `list parts of the upload of ${key}`);
      }
      for (const p of page.Parts ?? []) {
        if (p.PartNumber === undefined || !p.ETag) continue;
        parts.push({ partNumber: p.PartNumber, etag: normalizeEtag(p.ETag), size: p.Size ?? 0 });
      }
      if (!page.IsTruncated || page.NextPartNumberMarker === undefined || page.NextPartNumberMarker === marker) break;
      marker = page.NextPartNumberMarker;
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  private async completeMultipart(key: string, uploadId: string, parts: { partNumber: number; etag: string }[]): Promise<{ etag: string }> {
    try {
      const r = await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: `"${p.etag}"` })) },
        }),
      );
      return { etag: normalizeEtag(r.ETag) };
    } catch (e) {
      throw this.fail(e, `complete upload of ${key}`);
    }
  }

  private async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
    } catch (e) {
      if ((e as { name?: string }).name === 'NoSuchUpload') return; // completed or aborted already
      throw this.fail(e, `abort upload of ${key}`);
    }
  }

  async abortStaleUploads(prefix: string, olderThanMs: number, keep?: ReadonlySet<string>): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    let aborted = 0;
    // MinIO matches Prefix only against whole keys; when a prefix finds nothing, list everything and filter here.
    let serverPrefix: string | undefined = prefix || undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: serverPrefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (e) {
        const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if ((e as { name?: string }).name === 'NotImplemented' || status === 501 || status === 405) return aborted; // no multipart listing here
        throw this.fail(e, `list uploads under ${prefix || '(bucket root)'}`);
      }
      if (serverPrefix !== undefined && keyMarker === undefined && (page.Uploads ?? []).length === 0) {
        serverPrefix = undefined;
        continue;
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Key.startsWith(prefix) || keep?.has(u.UploadId)) continue;
        if (u.Initiated && u.Initiated.getTime() >= cutoff) continue;
        try {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }));
          aborted++;
        } catch (e) {
          if ((e as { name?: string }).name === 'NoSuchUpload') continue; // finished or aborted meanwhile
          throw this.fail(e, `abort upload of ${u.Key}`);
        }
      }
      if (!page.IsTruncated) return aborted;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
      if (!keyMarker && !uploadIdMarker) return aborted;
    }
  }

  async close(): Promise<void> {
    this.direct?.close();
    this.client.destroy();
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

const silentLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** defaultRegion resolves the SDK's usual region sources (AWS_REGION, the profile's config) and falls back to us-east-1. */
function defaultRegion(profile: string | undefined): () => Promise<string> {
  let resolved: Promise<string> | undefined;
  return () =>
    (resolved ??= (async () => {
      const probe = new S3Client(profile ? { profile } : {});
      try {
        return await probe.config.region();
      } catch {
        return DEFAULT_REGION;
      } finally {
        probe.destroy();
      }
    })());
}

/** readCaBundle honours AWS_CA_BUNDLE (a PEM file of trusted CAs) as the AWS CLI does. */
function readCaBundle(): Buffer | undefined {
  const path = process.env.AWS_CA_BUNDLE;
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (e) {
    throw failure(`AWS_CA_BUNDLE points at ${path}, which cannot be read: fix the path or unset it`, e);
  }
}

/** addContentMd5ForDeleteObjects adds Content-MD5 to DeleteObjects, which S3 compatibles that predate CRC32 checksums require. */
function addContentMd5ForDeleteObjects(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (context.commandName === 'DeleteObjectsCommand' && request.headers && (typeof request.body === 'string' || request.body instanceof Uint8Array)) {
        request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
      }
      return next(args);
    },
    { step: 'build', name: 'swmDeleteObjectsContentMd5', priority: 'low' },
  );
}

/** partSizeFor picks a part size for a known length: at least MIN_PART_SIZE, whole MiB, and at most MAX_PARTS parts. */
export function partSizeFor(size: number): number {
  const mib = 1024 * 1024;
  return Math.max(MIN_PART_SIZE, Math.ceil(size / MAX_PARTS / mib) * mib);
}

/** infoFromHeaders reads an object's info from a direct GET or HEAD answer, as the SDK's GetObject/HeadObject output would give it. */
function infoFromHeaders(key: string, answer: Pick<DirectAnswer, 'headers'>): ObjectInfo {
  const h = answer.headers;
  const total = typeof h['content-range'] === 'string' ? Number(/\/(\d+)$/.exec(h['content-range'])?.[1]) : undefined;
  const length = Number(h['content-length'] ?? 0);
  const modified = typeof h['last-modified'] === 'string' ? Date.parse(h['last-modified']) : NaN;
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(h)) {
    if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice('x-amz-meta-'.length)] = value;
  }
  return {
    key,
    size: total !== undefined && Number.isFinite(total) ? total : Number.isFinite(length) ? length : 0,
    etag: normalizeEtag(typeof h.etag === 'string' ? h.etag : undefined),
    lastModified: Number.isFinite(modified) ? modified : undefined,
    meta: decodeMeta(metadata),
  };
}

/** normalizeEtag strips the quotes S3 puts around ETags, so put, head and list report the same string. */
function normalizeEtag(etag: string | undefined): string {
  if (etag === undefined) return '';
  // the usual "<hex>" without the regex (a listing calls this per key); the same answer as the regex below in every case
  if (etag.length >= 2 && etag.charCodeAt(0) === 0x22 && etag.charCodeAt(etag.length - 1) === 0x22 && !LINE_TERMINATOR.test(etag)) return etag.slice(1, -1);
  return etag.replace(/^"(.*)"$/, '$1');
}

/** LINE_TERMINATOR: what "." in a regex does not match. */
const LINE_TERMINATOR = /[\n\r\u2028\u2029]/;

function lengthMismatch(key: string, got: string, size: number): SwmError {
  return failure(`put ${key}: the body was ${got} bytes, ${size} were announced (the file changed while it was read?)`);
}

/** readExactly buffers a stream of announced length, failing if it is longer or shorter. */
async function readExactly(body: Readable, size: number, key: string, signal?: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const onAbort = () => body.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of body) {
      const buf: Buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      total += buf.length;
      if (total > size) {
        body.destroy();
        throw lengthMismatch(key, `more than ${size}`, size);
      }
      chunks.push(buf);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (total !== size) throw lengthMismatch(key, String(total), size);
  return Buffer.concat(chunks, total);
}

/** withExactLength passes a stream through, erroring it if it turns out longer or shorter than announced. */
function withExactLength(body: Readable, size: number, key: string): Readable {
  let seen = 0;
  const check = new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > size) done(lengthMismatch(key, `more than ${size}`, size));
      else done(null, chunk);
    },
    flush(done) {
      done(seen === size ? null : lengthMismatch(key, String(seen), size));
    },
  });
  return pipeline(body, check, () => {});
}
