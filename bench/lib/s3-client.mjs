// The benchmark's own S3 client (ceiling scripts, harness checks): keep-alive sockets, path-style, no optional checksums.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** makeS3Client builds an S3Client for AWS_ENDPOINT_URL (path-style), with 256 keep-alive sockets and checksums only where required. */
export async function makeS3Client() {
  const { S3Client } = await import('@aws-sdk/client-s3');
  const { NodeHttpHandler } = await import('@smithy/node-http-handler');
  const agent = { keepAlive: true, maxSockets: 256 };
  return new S3Client({
    endpoint: process.env.AWS_ENDPOINT_URL,
    region: process.env.AWS_REGION || 'us-east-1',
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({ httpAgent: new HttpAgent(agent), httpsAgent: new HttpsAgent(agent) }),
  });
}

/** listKeys yields every object ({Key, Size}) under prefix, page by page. */
export async function* listKeys(client, bucket, prefix) {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  let token;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }));
    for (const o of page.Contents ?? []) yield o;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/** runPool runs worker(item) over items with at most `concurrency` in flight; rejects on the first failure. */
export async function runPool(items, concurrency, worker) {
  let next = 0;
  let failed;
  const lane = async () => {
    while (!failed && next < items.length) {
      const item = items[next++];
      try {
        await worker(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  if (failed) throw failed;
}
