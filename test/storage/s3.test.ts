// The S3 backend against the test MinIO server: the conformance suite plus error mapping, addressing and region defaults.
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SwmError } from '../../src/errors.js';
import { compareKeys } from '../../src/keys.js';
import { createS3Storage, describeS3Error, isLocalHost, MAX_PARTS, partSizeFor, type S3Spec } from '../../src/storage/s3.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { freeLoopbackPort } from '../support/ports.js';
import { defineStorageConformance, listAll } from './conformance.js';

const s3 = inject('s3');
const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
const admin = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials, maxAttempts: 1 });

function specFor(bucket: string, s3Config: S3Spec['s3'] = { endpoint: s3.endpoint, region: s3.region }): S3Spec {
  return { kind: 's3', provider: 'minio', bucket, text: `minio:${bucket}`, s3: s3Config };
}

async function freshBucket(): Promise<string> {
  const name = `swm-storage-${randomBytes(4).toString('hex')}`;
  await admin.send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

async function errorOf(p: Promise<unknown>): Promise<SwmError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SwmError);
  return e as SwmError;
}

afterAll(() => admin.destroy());

/** CONFORMANCE_PAGE: small listing pages, so the suite's listings cross many page boundaries (continuation tokens after odd keys). */
const CONFORMANCE_PAGE = 10;

/** conformanceTarget opens a fresh bucket for one conformance test and removes it afterwards. */
async function conformanceTarget(options: { directRequests?: boolean } = {}) {
  const bucket = await freshBucket();
  const storage = createS3Storage(specFor(bucket), { credentials, listPageSize: CONFORMANCE_PAGE, ...options });
  return {
    storage,
    cleanup: async () => {
      await storage.abortStaleUploads('', 0);
      await storage.delete((await listAll(storage, '')).map((o) => o.key));
      await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
      await storage.close();
    },
  };
}

// MinIO hides `a/b` from listings while an object `a` exists: objectsUnderObjects is off for S3
defineStorageConformance('s3', () => conformanceTarget(), { objectsUnderObjects: false, listPageSize: CONFORMANCE_PAGE });
// the same contract with every request through the SDK: the path direct requests fall back to
defineStorageConformance('s3 (SDK only)', () => conformanceTarget({ directRequests: false }), { objectsUnderObjects: false, listPageSize: CONFORMANCE_PAGE });

describe('s3 direct requests', () => {
  it('sends single-object PUT, GET, HEAD and UploadPart without the SDK, with the same results', async () => {
    const bucket = await freshBucket();
    const proxy = await startFaultProxy(s3.endpoint);
    const storage = createS3Storage(specFor(bucket, { endpoint: proxy.url, region: s3.region }), { credentials });
    try {
      const body = randomBytes(5000);
      const key = "dir/with space/ünïcode (1)!*'.bin";
      const meta = { hash: '0123456789abcdef', mtimeMs: 1_700_000_000_123, mode: 0o640, type: 'file' as const };
      const { etag } = await storage.put(key, body, { meta });
      expect(await storage.head(key)).toMatchObject({ key, size: 5000, etag, meta });
      const whole = await storage.get(key);
      expect(whole.info).toMatchObject({ size: 5000, etag, meta });
      expect(Buffer.concat(await whole.body.toArray())).toEqual(body);
      const part = await storage.get(key, { start: 100, end: 300 });
      expect(part.info.size).toBe(5000);
      expect(Buffer.concat(await part.body.toArray())).toEqual(body.subarray(100, 300));
      const uploadId = await storage.multipart!.create('big', {});
      const partBody = randomBytes(5 * 1024 * 1024);
      const partEtag = await storage.multipart!.uploadPart('big', uploadId, 1, partBody);
      await storage.multipart!.complete('big', uploadId, [{ partNumber: 1, etag: partEtag }]);
      expect((await storage.head('big'))?.size).toBe(partBody.length);
      // only CreateMultipartUpload and CompleteMultipartUpload went through the SDK
      expect(proxy.counts.requests).toBe(8);
      expect(proxy.counts.viaSdk).toBe(2);
    } finally {
      await storage.close();
      await proxy.close();
    }
  });

  it('repeats a failed direct request through the SDK (retries, error codes), and gives up the direct path on a refusal', async () => {
    const bucket = await freshBucket();
    const proxy = await startFaultProxy(s3.endpoint);
    const storage = createS3Storage(specFor(bucket, { endpoint: proxy.url, region: s3.region }), { credentials });
    try {
      proxy.injectNext({ method: 'PUT', path: /\/flaky$/, kind: 'status503' });
      await storage.put('flaky', Buffer.from('x'), { meta: {} });
      expect(proxy.counts.viaSdk).toBe(1); // the 503 answer came to the direct request, the SDK's repeat stored it
      expect((await storage.head('flaky'))?.size).toBe(1);
      await expect(storage.get('missing')).rejects.toMatchObject({ code: 'NoSuchKey' });
      await expect(storage.put('flaky', Buffer.from('y'), { meta: {}, ifNoneMatch: true })).rejects.toMatchObject({ code: 'PreconditionFailed' });
      expect(proxy.counts.viaSdk).toBe(3);
      proxy.failPermanently({ method: 'PUT', path: /\/denied(\?|$)/, status: 403, code: 'AccessDenied' });
      const denied = await errorOf(storage.put('denied', Buffer.from('z'), { meta: {} }));
      expect(denied.message).toMatch(/access denied/);
      const before = proxy.counts.viaSdk;
      await storage.head('flaky');
      expect(proxy.counts.viaSdk).toBe(before + 1); // a 403 switched the direct path off
    } finally {
      await storage.close();
      await proxy.close();
    }
  });
});

describe('s3 direct listing', () => {
  const LIST = /[?&]list-type=2(&|$)/;
  const keys = ['a', 'b b', 'c+c', 'd%25', 'e&<>"\'', 'f\x01\r\n', 'g\uFFFE', 'h/\u{1F600}', 'i/ü', 'j', 'k', 'l'];

  /** listingSetup puts `keys` (and one multipart object) in a fresh bucket and opens it through a fault proxy, directly and SDK-only, 4 keys a page. */
  async function listingSetup() {
    const bucket = await freshBucket();
    const proxy = await startFaultProxy(s3.endpoint);
    const spec = specFor(bucket, { endpoint: proxy.url, region: s3.region });
    const storage = createS3Storage(spec, { credentials, listPageSize: 4 });
    const sdkOnly = createS3Storage(spec, { credentials, listPageSize: 4, directRequests: false });
    for (const key of keys) await storage.put(key, Buffer.from(key), { meta: {} });
    const uploadId = await storage.multipart!.create('m-multipart', {});
    const etag = await storage.multipart!.uploadPart('m-multipart', uploadId, 1, randomBytes(5 * 1024 * 1024));
    await storage.multipart!.complete('m-multipart', uploadId, [{ partNumber: 1, etag }]);
    const close = async () => {
      await storage.close();
      await sdkOnly.close();
      await proxy.close();
    };
    return { proxy, storage, sdkOnly, close };
  }

  it('lists every page directly, yielding exactly what the SDK path yields', async () => {
    const { proxy, storage, sdkOnly, close } = await listingSetup();
    try {
      proxy.resetCounts();
      const viaSdk = await listAll(sdkOnly, '');
      expect(proxy.counts).toMatchObject({ requests: 4, viaSdk: 4 }); // 13 objects, 4 a page
      proxy.resetCounts();
      const direct = await listAll(storage, '');
      expect(proxy.counts).toMatchObject({ requests: 4, viaSdk: 0 });
      expect(direct).toEqual(viaSdk);
      expect(direct.map((o) => o.key)).toEqual([...keys.slice(0, 12), 'm-multipart'].sort(compareKeys));
      for (const o of direct) {
        expect(o.etag).toMatch(/^[0-9a-f]{32}(-1)?$/);
        expect(o.etag).toBe((await storage.head(o.key))?.etag);
        expect(o.size).toBe(o.key === 'm-multipart' ? 5 * 1024 * 1024 : Buffer.byteLength(o.key));
        expect(o.lastModified).toBeGreaterThan(Date.now() - 3_600_000);
      }
      // a consumer that stops early leaves the next page (asked for ahead) to be cancelled quietly
      for await (const o of storage.list('')) {
        expect(o.key).toBe('a');
        break;
      }
      expect((await listAll(storage, 'i/')).map((o) => o.key)).toEqual(['i/ü']);
    } finally {
      await close();
    }
  });

  it('repeats a failed or cut page through the SDK and goes on listing directly', async () => {
    const { proxy, storage, sdkOnly, close } = await listingSetup();
    try {
      const expected = await listAll(sdkOnly, '');
      for (const kind of ['status503', 'slowdown', 'truncate', 'short-body', 'reset-response'] as const) {
        proxy.resetCounts();
        proxy.injectNext({ method: 'GET', path: LIST, kind });
        expect(await listAll(storage, ''), kind).toEqual(expected);
        // the first page went direct and failed, its repeat through the SDK worked, the other three went direct
        expect(proxy.counts, kind).toMatchObject({ requests: 5, viaSdk: 1, injected: 1 });
      }
      proxy.resetCounts();
      expect(await listAll(storage, '')).toEqual(expected);
      expect(proxy.counts).toMatchObject({ requests: 4, viaSdk: 0 });
      // a refusal (403) turns the direct path off; the SDK's repeat describes the failure
      proxy.failPermanently({ method: 'GET', path: LIST, status: 403, code: 'AccessDenied' });
      const denied = await errorOf(listAll(storage, ''));
      expect(denied.message).toMatch(/access denied to minio:.* during list \(bucket root\)/);
      proxy.clearFaults();
      proxy.resetCounts();
      expect(await listAll(storage, '')).toEqual(expected);
      expect(proxy.counts).toMatchObject({ requests: 4, viaSdk: 4 });
    } finally {
      await close();
    }
  });
});

describe('s3 storage', () => {
  let bucket: string;
  beforeAll(async () => {
    bucket = await freshBucket();
  });

  it('reaches a localhost endpoint with no pathStyle or region configured (path-style, us-east-1)', async () => {
    const saved = { region: process.env.AWS_REGION, def: process.env.AWS_DEFAULT_REGION, cfg: process.env.AWS_CONFIG_FILE };
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    process.env.AWS_CONFIG_FILE = '/nonexistent/swm-test-config';
    try {
      const storage = createS3Storage(specFor(bucket, { endpoint: s3.endpoint.replace('127.0.0.1', 'localhost') }), { credentials });
      await storage.check();
      await storage.put('hello', Buffer.from('hi'), { meta: { hash: '0123456789abcdef' } });
      expect(await storage.head('hello')).toMatchObject({ size: 2, meta: { hash: '0123456789abcdef' } });
      await storage.close();
    } finally {
      for (const [k, v] of [['AWS_REGION', saved.region], ['AWS_DEFAULT_REGION', saved.def], ['AWS_CONFIG_FILE', saved.cfg]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('takes credentials and the endpoint from the environment', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_ENDPOINT_URL_S3: s3.endpoint });
    try {
      const storage = createS3Storage(specFor(bucket, {}));
      await storage.check();
      expect(await listAll(storage, 'nothing-here/')).toEqual([]);
      await storage.close();
    } finally {
      process.env = saved;
    }
  });

  it('maps a missing bucket to one line with exit 1', async () => {
    const storage = createS3Storage(specFor('swm-no-such-bucket'), { credentials });
    const err = await errorOf(storage.check());
    expect(err.exitCode).toBe(1);
    expect(err.message).toMatch(/^bucket minio:swm-no-such-bucket does not exist/);
    expect(err.message).not.toContain('\n');
    await storage.close();
  });

  it('maps bad credentials to "access denied" without ever showing the secret', async () => {
    const secret = `sEcReT${randomBytes(12).toString('hex')}`;
    const storage = createS3Storage(specFor(bucket), { credentials: { accessKeyId: 'swmwrongkey', secretAccessKey: secret } });
    for (const attempt of [() => storage.check(), () => storage.put('x', Buffer.from('x'), { meta: {} }), () => listAll(storage, '')]) {
      const err = await errorOf(attempt());
      expect(err.exitCode).toBe(1);
      expect(err.message).toMatch(/access denied to minio:/);
      expect(`${err.message} ${err.hint ?? ''}`).toMatch(/AWS_ACCESS_KEY_ID/);
      expect(err.message).not.toContain(secret);
      expect(err.hint ?? '').not.toContain(secret);
      expect(err.message).not.toContain('\n');
    }
    await storage.close();
  });

  it('fails fast with one line when the endpoint is unreachable', async () => {
    const port = await freeLoopbackPort();
    const storage = createS3Storage(specFor(bucket, { endpoint: `http://127.0.0.1:${port}` }), { credentials });
    const started = Date.now();
    const err = await errorOf(storage.check());
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err.exitCode).toBe(1);
    expect(err.message).toBe(`cannot reach endpoint http://127.0.0.1:${port} for minio:${bucket}: ECONNREFUSED`);
    await storage.close();
  });

  it('reports missing credentials clearly', async () => {
    const saved = { ...process.env };
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
    Object.assign(process.env, {
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/swm-credentials',
      AWS_CONFIG_FILE: '/nonexistent/swm-config',
    });
    try {
      const storage = createS3Storage(specFor(bucket));
      const err = await errorOf(storage.check());
      expect(err.exitCode).toBe(1);
      expect(err.message).toMatch(/^no AWS credentials found/);
      expect(err.hint).toMatch(/AWS_ACCESS_KEY_ID/);
      await storage.close();
    } finally {
      process.env = saved;
    }
  });

  it('describeS3Error masks secrets and keeps messages to one line', () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const e = Object.assign(new Error(`weird failure mentioning ${secret}\nsecond line`), { name: 'InternalError', $metadata: { httpStatusCode: 500 } });
    const err = describeS3Error(e, { bucket: 's3:b', operation: 'put k', secrets: [secret] });
    expect(err.message).toBe('put k in s3:b failed: InternalError (HTTP 500): weird failure mentioning ***');
    expect(err.exitCode).toBe(1);
  });

  it('sizes parts to stay within 10,000 parts and at least 8 MiB', () => {
    expect(partSizeFor(20 * 1024 * 1024)).toBe(8 * 1024 * 1024);
    const tib = 1024 ** 4;
    expect(Math.ceil(tib / partSizeFor(tib))).toBeLessThanOrEqual(MAX_PARTS);
    expect(partSizeFor(tib) % (1024 * 1024)).toBe(0);
  });

  it('recognises endpoints that need path-style addressing', () => {
    expect(isLocalHost('http://127.0.0.1:9000')).toBe(true);
    expect(isLocalHost('http://[::1]:9000')).toBe(true);
    expect(isLocalHost('http://localhost:9000')).toBe(true);
    expect(isLocalHost('https://s3.eu-west-1.amazonaws.com')).toBe(false);
    expect(isLocalHost('https://abc.r2.cloudflarestorage.com')).toBe(false);
  });
});
