// Fixtures of the CLI-driven watcher/daemon tests: the built `swm` run as a child process in a sandbox (HOME and XDG_* in
// temporary folders), a bucket on either backend (`file:` or the MinIO test server) read back independently of swm for S3,
// and cleanup of every process a test started (found by the sandbox path on their command lines).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import xxhash from 'xxhash-wasm';
import { inject } from 'vitest';
import { createFileStorage } from '../../src/storage/file.js';
import { readJournalDeltas } from '../../src/watch/journal.js';

/** REPO is the repository folder; SWM the built CLI entry (package.json bin). */
export const REPO = resolve(import.meta.dirname, '../..');
export const SWM = join(REPO, 'dist/cli/main.js');

/** BACKENDS are the bucket kinds every CLI scenario runs on. */
export const BACKENDS = ['file', 's3'] as const;
/** BackendKind is one of BACKENDS. */
export type BackendKind = (typeof BACKENDS)[number];

/** ensureBuilt compiles src/ into dist/ when it is stale (shared with the e2e tests, one lock folder for all). */
export { ensureBuilt } from '../support/e2e.js';

/** RemoteObject is one object under the test's dest, as the independent reader lists it (key relative to the dest). */
export interface RemoteObject {
  key: string;
  size: number;
  etag: string;
}

/** RemoteBody is an object's bytes with its user metadata (swm-hash, swm-mtime…), read in one request. */
export interface RemoteBody {
  body: Buffer;
  meta: Record<string, string>;
}

/** TestBucket is the test's bucket and dest, read back from the test side. */
export interface TestBucket {
  kind: BackendKind;
  /** the `-b` value. */
  spec: string;
  /** a dest no other test uses, ending in '/'. */
  dest: string;
  /** what the CLI's environment needs for this bucket (endpoint and credentials for S3). */
  env: Record<string, string>;
  /** every object under the dest, key order. */
  list(): Promise<RemoteObject[]>;
  /** the object at dest + key, or undefined when there is none. */
  get(key: string): Promise<RemoteBody | undefined>;
  /** plant writes an object without swm's metadata behind swm's back (another tool's upload, a crash leftover). */
  plant(key: string, body: Buffer | string): Promise<void>;
  close(): Promise<void>;
}

function s3Bucket(): TestBucket {
  const s3 = inject('s3');
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  const dest = `watch-e2e/${randomBytes(5).toString('hex')}/`;
  return {
    kind: 's3',
    spec: `s3:${s3.bucket}`,
    dest,
    env: {
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_REGION: s3.region,
      AWS_ENDPOINT_URL: s3.endpoint,
    },
    async list() {
      const out: RemoteObject[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: dest, ContinuationToken: token }));
        for (const o of page.Contents ?? []) out.push({ key: o.Key!.slice(dest.length), size: o.Size ?? 0, etag: o.ETag ?? '' });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async get(key) {
      try {
        const r = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: dest + key }));
        return { body: Buffer.from(await r.Body!.transformToByteArray()), meta: r.Metadata ?? {} };
      } catch (e) {
        if ((e as { name?: string }).name === 'NoSuchKey') return undefined;
        throw e;
      }
    },
    async plant(key, body) {
      await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: dest + key, Body: Buffer.from(body) }));
    },
    async close() {
      client.destroy();
    },
  };
}

function fileBucket(root: string): TestBucket {
  const path = join(root, 'bucket');
  const dest = `watch-e2e/${randomBytes(5).toString('hex')}/`;
  const storage = createFileStorage(path, { create: false });
  return {
    kind: 'file',
    spec: `file:${path}`,
    dest,
    env: {},
    async list() {
      if (!existsSync(path)) return [];
      const out: RemoteObject[] = [];
      for await (const o of storage.list(dest)) out.push({ key: o.key.slice(dest.length), size: o.size, etag: o.etag });
      return out;
    },
    async get(key) {
      if (!(await storage.head(dest + key))) return undefined;
      try {
        const { info, body } = await storage.get(dest + key);
        const chunks: Buffer[] = [];
        for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
        const meta: Record<string, string> = {};
        if (info.meta?.hash !== undefined) meta['swm-hash'] = info.meta.hash;
        return { body: Buffer.concat(chunks), meta };
      } catch (e) {
        if ((e as { code?: string }).code === 'NoSuchKey') return undefined; // deleted between head and get
        throw e;
      }
    },
    async plant(key, body) {
      const buf = Buffer.from(body);
      await createFileStorage(path, { create: true }).put(dest + key, buf, { size: buf.length, meta: {} });
    },
    async close() {
      await storage.close();
    },
  };
}

/** SwmRun is one finished `swm` child process; `json` holds its stdout's JSON lines. */
export interface SwmRun {
  code: number | null;
  stdout: string;
  stderr: string;
  json: Record<string, unknown>[];
}

/** Sandbox is one test's world: a workspace, a bucket, a HOME and XDG folders of its own, and the CLI run inside it. */
export interface Sandbox {
  /** the sandbox folder; every process the test starts has it on its command line. */
  root: string;
  ws: string;
  bucket: TestBucket;
  /** the CLI's whole environment: no variable of the test process leaks in (no SWM_*, no real AWS profile). */
  env: Record<string, string>;
  /** `demo <ws> -b <bucket> -d <dest>`: the target arguments of every command. */
  target: string[];
  /** swm runs `node dist/cli/main.js sync <args>` and waits for it. */
  swm(args: string[], timeoutMs?: number): Promise<SwmRun>;
  /** a scratch folder inside the sandbox (outside the workspace). */
  scratch(name: string): string;
}

const sandboxes: Sandbox[] = [];

/** openSandbox makes a sandbox for one test on the given backend; cleanupSandboxes() undoes it. */
export function openSandbox(kind: BackendKind): Sandbox {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'swm-cli-watch-')));
  const ws = join(root, 'ws');
  mkdirSync(ws);
  const bucket = kind === 's3' ? s3Bucket() : fileBucket(root);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: join(root, 'home'),
    XDG_CONFIG_HOME: join(root, 'home/.config'),
    XDG_DATA_HOME: join(root, 'home/.local/share'),
    XDG_STATE_HOME: join(root, 'home/.local/state'),
    XDG_CACHE_HOME: join(root, 'home/.cache'),
    LANG: 'C.UTF-8',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_EC2_METADATA_DISABLED: 'true',
    ...bucket.env,
  };
  mkdirSync(env.XDG_CONFIG_HOME!, { recursive: true });
  const sb: Sandbox = {
    root,
    ws,
    bucket,
    env,
    target: ['demo', ws, '-b', bucket.spec, '-d', bucket.dest],
    swm: (args, timeoutMs = 30_000) => runSwm(['sync', ...args], env, ws, timeoutMs),
    scratch(name) {
      const dir = join(root, name);
      mkdirSync(dir, { recursive: true });
      return dir;
    },
  };
  sandboxes.push(sb);
  return sb;
}

function runSwm(args: string[], env: Record<string, string>, cwd: string, timeoutMs: number): Promise<SwmRun> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [SWM, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const json: Record<string, unknown>[] = [];
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          json.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          /* not JSON */
        }
      }
      done({ code, stdout, stderr, json });
    });
  });
}

/** processesUnder lists the live (not zombie) processes whose command line mentions path: the ones a sandbox's test started. */
export function processesUnder(path: string): { pid: number; args: string[] }[] {
  const out: { pid: number; args: string[] }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0');
      if (!args.some((a) => a.includes(path))) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      out.push({ pid, args });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** cleanupSandboxes SIGKILLs every process of every sandbox (by pid), waits for them to go, and removes the folders. */
export async function cleanupSandboxes(): Promise<void> {
  for (const sb of sandboxes.splice(0)) {
    for (let round = 0; round < 50; round++) {
      const left = processesUnder(sb.root);
      if (left.length === 0) break;
      for (const p of left) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(50);
    }
    await sb.bucket.close();
    rmSync(sb.root, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

/** sleep waits ms. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** eventually polls an async check every intervalMs until it returns a truthy value (which it returns) or fails after timeoutMs. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 8000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** writeFiles writes relative path → content under root, making folders as needed. */
export function writeFiles(root: string, files: Record<string, string | Buffer>): void {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), content);
  }
}

/** sh runs a shell script in cwd (throws on failure). */
export function sh(cwd: string, script: string): void {
  execFileSync('sh', ['-c', script], { cwd, stdio: 'pipe' });
}

/** keysOf returns the keys of a listing. */
export const keysOf = (objects: RemoteObject[]) => objects.map((o) => o.key);

/** waitJournaled waits until the watcher's journal holds every path of `changed` as changed and of `deleted` as deleted. */
export async function waitJournaled(ws: string, expected: { changed?: string[]; deleted?: string[] }, timeoutMs = 8000): Promise<void> {
  let missing: string[] = [];
  try {
    await eventually(() => {
      const d = readJournalDeltas(ws, undefined);
      missing = [
        ...(expected.changed ?? []).filter((p) => !d.changed.includes(p)).map((p) => `changed ${p}`),
        ...(expected.deleted ?? []).filter((p) => !d.deleted.includes(p)).map((p) => `deleted ${p}`),
      ];
      return missing.length === 0;
    }, 'the watcher to journal every change', timeoutMs, 50);
  } catch (e) {
    throw new Error(`${(e as Error).message}; missing: ${missing.join(', ')}`);
  }
}

/** lastJson returns the last JSON line of a run whose `type` is type. */
export function lastJson(run: SwmRun, type: string): Record<string, unknown> {
  const found = run.json.filter((j) => j.type === type).at(-1);
  if (!found) throw new Error(`no ${type} JSON line in: ${run.stdout}\n${run.stderr}`);
  return found;
}

let xxh64: ((data: Uint8Array) => string) | undefined;

/** hash64 is xxh64 (seed 0) of bytes as 16 hex digits, computed with xxhash-wasm directly (not swm's hash module). */
export async function hash64(data: Uint8Array): Promise<string> {
  if (!xxh64) {
    const { h64Raw } = await xxhash();
    xxh64 = (d) => h64Raw(d).toString(16).padStart(16, '0');
  }
  return xxh64(data);
}
