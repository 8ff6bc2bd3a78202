#!/usr/bin/env node
// Benchmark: how long after a file is written its object appears in the bucket with `swm sync auto -i 1` (issue 3's closing
// measurement). Starts a throwaway MinIO (scripts/s3-server) unless AWS_ENDPOINT_URL is set, writes files one at a time at
// random points of the daemon's cycle, polls HeadObject every 10 ms, and prints each latency and the median.
//
// Usage: npm run build && node bench/auto-latency.mjs [--writes 10] [--interval 1]
//        SWM_CLI=/other/dist/cli/main.js node bench/auto-latency.mjs   (measure another build)
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const repo = resolve(import.meta.dirname, '..');
const cli = process.env.SWM_CLI ?? join(repo, 'dist/cli/main.js');
const { values } = parseArgs({ options: { writes: { type: 'string', default: '10' }, interval: { type: 'string', default: '1' } } });
const writes = Number(values.writes);
const interval = values.interval;

/** startServer runs scripts/s3-server and returns its variables once it printed them, and a stop function. */
async function startServer() {
  const child = spawn(join(repo, 'scripts/s3-server'), ['swm-latency'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  const deadline = Date.now() + 120_000;
  while ((out.match(/^export /gm) ?? []).length < 5) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('scripts/s3-server did not start');
    await sleep(100);
  }
  const env = Object.fromEntries([...out.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  return { env, stop: () => child.kill('SIGTERM') };
}

const server = process.env.AWS_ENDPOINT_URL ? undefined : await startServer();
const s3env = server?.env ?? {
  AWS_ENDPOINT_URL: process.env.AWS_ENDPOINT_URL,
  AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY,
  AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
  SWM_TEST_BUCKET: process.env.SWM_TEST_BUCKET ?? 'swm-test',
};
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const bucket = s3env.SWM_TEST_BUCKET;
const root = realpathSync(mkdtempSync(join(tmpdir(), 'swm-bench-latency-')));
const ws = join(root, 'ws');
mkdirSync(ws);
const dest = `latency/${randomBytes(4).toString('hex')}/`;
const env = {
  PATH: process.env.PATH,
  HOME: join(root, 'home'),
  XDG_CONFIG_HOME: join(root, 'home/.config'),
  XDG_DATA_HOME: join(root, 'home/.local/share'),
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  AWS_EC2_METADATA_DISABLED: 'true',
  ...s3env,
};
const target = ['demo', ws, '-b', `s3:${bucket}`, '-d', dest];
const swm = (...args) => {
  const r = spawnSync(process.execPath, [cli, 'sync', ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`swm sync ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
};

const { HeadObjectCommand, S3Client } = await import('@aws-sdk/client-s3');
const client = new S3Client({
  endpoint: s3env.AWS_ENDPOINT_URL,
  region: s3env.AWS_REGION,
  forcePathStyle: true,
  credentials: { accessKeyId: s3env.AWS_ACCESS_KEY_ID, secretAccessKey: s3env.AWS_SECRET_ACCESS_KEY },
});
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const exists = async (key) => {
  try {
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch {
    return false;
  }
};

const latencies = [];
try {
  writeFileSync(join(ws, 'base.txt'), 'base');
  swm('push', ...target, '-q');
  swm('auto', ...target, '-i', interval);
  const daemon = join(ws, '.swm/daemon.json');
  for (let t = Date.now(); ; await sleep(50)) {
    try {
      if (JSON.parse(readFileSync(daemon, 'utf8')).lastCycle) break;
    } catch { /* not written yet */ }
    if (Date.now() - t > 30_000) throw new Error('the daemon ran no cycle in 30 s');
  }
  for (let i = 0; i < writes; i++) {
    await sleep(Math.random() * Number(interval) * 1000 + 300); // a random point of the cycle
    const name = `lat-${i}.txt`;
    writeFileSync(join(ws, name), `write ${i}\n`);
    const written = performance.now();
    while (!(await exists(dest + name))) {
      if (performance.now() - written > 30_000) throw new Error(`${name} did not arrive in 30 s`);
      await sleep(10);
    }
    const ms = performance.now() - written;
    latencies.push(ms);
    console.log(`write ${String(i + 1).padStart(2)}: ${ms.toFixed(0).padStart(5)} ms`);
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  console.log(`\nauto -i ${interval}, ${writes} writes on ${s3env.AWS_ENDPOINT_URL}: median ${median(latencies).toFixed(0)} ms, ` +
    `min ${sorted[0].toFixed(0)} ms, max ${sorted.at(-1).toFixed(0)} ms`);
} finally {
  try { swm('auto', ...target, '--stop'); } catch (e) { console.error(String(e)); }
  try { swm('watch', ...target, '--stop'); } catch (e) { console.error(String(e)); }
  client.destroy();
  server?.stop();
  rmSync(root, { recursive: true, force: true });
}
