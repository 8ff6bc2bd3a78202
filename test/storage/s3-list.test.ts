// S3 listing against a scripted server: answers MinIO never gives (unreadable XML, encoding-type ignored, a repeated token) and how the direct and SDK paths take them.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { SwmError } from '../../src/errors.js';
import { createS3Storage, type S3Spec } from '../../src/storage/s3.js';
import { listAll } from './conformance.js';

interface Seen {
  method: string;
  url: string;
  viaSdk: boolean;
}

/** ScriptedServer answers each request with `answer`, recording what it saw (viaSdk: the SDK's amz-sdk-invocation-id header). */
async function scriptedServer(answer: (req: IncomingMessage, res: ServerResponse, query: URLSearchParams, viaSdk: boolean) => void) {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const viaSdk = req.headers['amz-sdk-invocation-id'] !== undefined;
    seen.push({ method: req.method ?? '', url: req.url ?? '', viaSdk });
    req.resume();
    req.on('end', () => answer(req, res, new URL(req.url ?? '/', 'http://x').searchParams, viaSdk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('no address');
  return { endpoint: `http://127.0.0.1:${address.port}`, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

function xml(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** listing writes a ListObjectsV2 answer for keys (given as they go into the XML). */
function listing(keys: string[], options: { token?: string; encodingType?: string } = {}): string {
  const contents = keys
    .map((k) => `<Contents><Key>${k}</Key><LastModified>2024-05-06T07:08:09.010Z</LastModified><ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>7</Size><StorageClass>STANDARD</StorageClass></Contents>`)
    .join('');
  const truncated = options.token !== undefined;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>${keys.length}</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>${truncated}</IsTruncated>${contents}${truncated ? `<NextContinuationToken>${options.token}</NextContinuationToken>` : ''}${options.encodingType ? `<EncodingType>${options.encodingType}</EncodingType>` : ''}</ListBucketResult>`;
}

function storageAt(endpoint: string, directRequests = true) {
  const spec: S3Spec = { kind: 's3', provider: 'minio', bucket: 'b', text: 'minio:b', s3: { endpoint, region: 'us-east-1' } };
  return createS3Storage(spec, { credentials: { accessKeyId: 'scripted', secretAccessKey: 'scripted-secret' }, maxAttempts: 1, listPageSize: 2, directRequests });
}

const EXPECTED = [
  { key: 'a b', size: 7, etag: '0123456789abcdef0123456789abcdef', lastModified: Date.UTC(2024, 4, 6, 7, 8, 9, 10) },
  { key: 'c+d', size: 7, etag: '0123456789abcdef0123456789abcdef', lastModified: Date.UTC(2024, 4, 6, 7, 8, 9, 10) },
  { key: 'e%f', size: 7, etag: '0123456789abcdef0123456789abcdef', lastModified: Date.UTC(2024, 4, 6, 7, 8, 9, 10) },
];

describe('s3 listing against a scripted server', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  it('repeats a page it cannot read through the SDK, then leaves listing (only) to the SDK', async () => {
    const server = await scriptedServer((req, res, query, viaSdk) => {
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-length': '7', etag: '"0123456789abcdef0123456789abcdef"', 'last-modified': 'Mon, 06 May 2024 07:08:09 GMT' });
        res.end();
        return;
      }
      const second = query.get('continuation-token') === 'page2';
      // the direct request is answered with a CDATA section the strict reader refuses; the SDK reads it
      const first = viaSdk ? 'a+b' : '<![CDATA[a b]]>';
      xml(res, second ? listing(['e%25f'], { encodingType: 'url' }) : listing([first, 'c%2Bd'], { token: 'page2', encodingType: 'url' }));
    });
    closers.push(server.close);
    const storage = storageAt(server.endpoint);
    closers.push(() => storage.close());
    expect(await listAll(storage, '')).toEqual(EXPECTED);
    expect(server.seen.map((s) => s.viaSdk)).toEqual([false, true, true]);
    expect(server.seen[0]!.url).toMatch(/^\/b\/\?encoding-type=url&list-type=2&max-keys=2&prefix=$/);
    expect(await storage.head('a b')).toMatchObject({ size: 7 });
    expect(server.seen[3]).toMatchObject({ method: 'HEAD', viaSdk: false });
  });

  it('takes keys as they are when the server ignores encoding-type, on both paths', async () => {
    const server = await scriptedServer((_req, res, query) => {
      xml(res, query.get('continuation-token') === 'p2' ? listing(['e%f']) : listing(['a b', 'c+d'], { token: 'p2' }));
    });
    closers.push(server.close);
    for (const direct of [true, false]) {
      const storage = storageAt(server.endpoint, direct);
      closers.push(() => storage.close());
      server.seen.length = 0;
      expect(await listAll(storage, '')).toEqual(EXPECTED);
      expect(server.seen.map((s) => s.viaSdk)).toEqual([!direct, !direct]);
    }
  });

  it('refuses a server that answers a page with the token it was asked with, on both paths', async () => {
    const server = await scriptedServer((_req, res, query) => {
      xml(res, query.get('continuation-token') ? listing(['c'], { token: 'again' }) : listing(['a', 'b'], { token: 'again' }));
    });
    closers.push(server.close);
    for (const direct of [true, false]) {
      const storage = storageAt(server.endpoint, direct);
      closers.push(() => storage.close());
      const err = await listAll(storage, '').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SwmError);
      expect((err as Error).message).toMatch(/own continuation token/);
    }
  });
});
