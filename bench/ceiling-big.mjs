#!/usr/bin/env node
// Benchmark ceiling for one big object: lib-storage Upload with tuned parts, and parallel ranged GETs (or one streamed GET to stdout).
//
//   node bench/ceiling-big.mjs put <file|-> <bucket> <key>   upload a file (or stdin, length unknown) as one object
//   node bench/ceiling-big.mjs get <bucket> <key> <file|->   download an object into a file (ranged GETs in parallel) or to stdout
// Endpoint and credentials come from AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION.
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { makeS3Client, runPool } from './lib/s3-client.mjs';

const MiB = 1024 * 1024;
/** Upload: parts of at least 16 MiB (more when a file would need over 10,000 parts), 8 in flight. */
const PART_SIZE = 16 * MiB;
const QUEUE_SIZE = 8;
/** Download: 8 MiB ranges, 8 in flight, each streamed to its offset in the file. */
const RANGE_SIZE = 8 * MiB;
const RANGE_CONCURRENCY = 8;

async function put(source, bucket, key) {
  const { Upload } = await import('@aws-sdk/lib-storage');
  const client = await makeS3Client();
  const size = source === '-' ? undefined : statSync(source).size;
  const partSize = size === undefined ? PART_SIZE : Math.max(PART_SIZE, Math.ceil(size / 10_000));
  const body = source === '-' ? process.stdin : createReadStream(source, { highWaterMark: MiB });
  const upload = new Upload({ client, params: { Bucket: bucket, Key: key, Body: body, ContentLength: size }, partSize, queueSize: QUEUE_SIZE });
  await upload.done();
}

async function get(bucket, key, target) {
  const { GetObjectCommand, HeadObjectCommand } = await import('@aws-sdk/client-s3');
  const client = await makeS3Client();
  if (target === '-') {
    const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    await pipeline(res.Body, process.stdout);
    return;
  }
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const size = head.ContentLength ?? 0;
  const fh = await open(target, 'w');
  await fh.truncate(size);
  await fh.close();
  const ranges = [];
  for (let start = 0; start < size; start += RANGE_SIZE) ranges.push([start, Math.min(size, start + RANGE_SIZE) - 1]);
  await runPool(ranges, RANGE_CONCURRENCY, async ([start, end]) => {
    const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end}` }));
    const out = createWriteStream(target, { flags: 'r+', start, highWaterMark: MiB });
    await pipeline(res.Body, out);
    if (out.bytesWritten !== end - start + 1) throw new Error(`range ${start}-${end}: got ${out.bytesWritten} bytes`);
  });
}

const [verb, ...args] = process.argv.slice(2);
const verbs = { put, get };
if (!verbs[verb] || args.length < 3) {
  process.stderr.write('usage: ceiling-big.mjs put <file|-> <bucket> <key> | get <bucket> <key> <file|->\n');
  process.exit(2);
}
verbs[verb](...args).catch((e) => {
  process.stderr.write(`ceiling-big: ${verb} failed: ${e?.name ?? ''} ${e?.message ?? e}\n`);
  process.exit(1);
});
