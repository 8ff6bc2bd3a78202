#!/usr/bin/env node
// Benchmark ceiling for many small files: bare AWS SDK PutObject/GetObject at concurrency 64, no state, no checks beyond sizes.
//
//   node bench/ceiling-small.mjs put   <dir> <bucket> <prefix> [listfile]   PUT every file of <dir> (or only those listed, one relative path a line)
//   node bench/ceiling-small.mjs check <dir> <bucket> <prefix>              no-op check: LIST the prefix, stat every local file, compare sizes
//   node bench/ceiling-small.mjs get   <bucket> <prefix> <dir>              LIST the prefix and GET every object into <dir>
// Endpoint and credentials come from AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { listKeys, makeS3Client, runPool } from './lib/s3-client.mjs';

const CONCURRENCY = Number(process.env.BENCH_CEILING_CONCURRENCY) || 64;

/** walkFiles lists the relative paths of the regular files under root (synchronous: fastest for many small entries). */
function walkFiles(root) {
  const out = [];
  const stack = [''];
  while (stack.length) {
    const rel = stack.pop();
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) out.push(p);
    }
  }
  return out;
}

const withSlash = (prefix) => (prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`);

async function put(dir, bucket, prefix, listFile) {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const client = await makeS3Client();
  const files = listFile ? readFileSync(listFile, 'utf8').split('\n').filter(Boolean) : walkFiles(dir);
  const p = withSlash(prefix);
  await runPool(files, CONCURRENCY, async (rel) => {
    const body = readFileSync(join(dir, rel));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: p + rel, Body: body, ContentLength: body.length }));
  });
  process.stderr.write(`ceiling-small: put ${files.length} files\n`);
}

async function check(dir, bucket, prefix) {
  const client = await makeS3Client();
  const p = withSlash(prefix);
  const remote = new Map();
  for await (const o of listKeys(client, bucket, p)) remote.set(o.Key.slice(p.length), o.Size);
  let differ = 0;
  const files = walkFiles(dir);
  for (const rel of files) if (remote.get(rel) !== statSync(join(dir, rel)).size) differ++;
  process.stderr.write(`ceiling-small: ${files.length} local, ${remote.size} remote, ${differ} differ\n`);
}

async function get(bucket, prefix, dir) {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const client = await makeS3Client();
  const p = withSlash(prefix);
  const keys = [];
  for await (const o of listKeys(client, bucket, p)) keys.push(o.Key);
  const made = new Set();
  await runPool(keys, CONCURRENCY, async (key) => {
    const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const bytes = await res.Body.transformToByteArray();
    const file = join(dir, key.slice(p.length));
    const parent = dirname(file);
    if (!made.has(parent)) {
      mkdirSync(parent, { recursive: true });
      made.add(parent);
    }
    writeFileSync(file, bytes);
  });
  process.stderr.write(`ceiling-small: got ${keys.length} objects\n`);
}

const [verb, ...args] = process.argv.slice(2);
const verbs = { put: [put, 3], check: [check, 3], get: [get, 3] };
if (!verbs[verb] || args.length < verbs[verb][1]) {
  process.stderr.write('usage: ceiling-small.mjs put <dir> <bucket> <prefix> [listfile] | check <dir> <bucket> <prefix> | get <bucket> <prefix> <dir>\n');
  process.exit(2);
}
verbs[verb][0](...args).catch((e) => {
  process.stderr.write(`ceiling-small: ${verb} failed: ${e?.name ?? ''} ${e?.message ?? e}\n`);
  process.exit(1);
});
