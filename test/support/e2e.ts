// End-to-end test support: run the built `swm` CLI as a child process, build and compare workspace trees, and open either backend (a `file:` bucket or the MinIO server) with an independent reader.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import xxhash from 'xxhash-wasm';
import { afterEach, beforeAll, expect, inject } from 'vitest';
import { createFileStorage } from '../../src/storage/file.js';
import { compareKeys } from '../../src/keys.js';

/** REPO_ROOT is the repository folder; SWM_MAIN the built CLI (package.json bin). */
export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const SWM_MAIN = join(REPO_ROOT, 'dist/cli/main.js');

/** NOBODY is the uid/gid the "unreadable file" tests drop to (root reads files of any mode). */
export const NOBODY = 65534;

// ---------------------------------------------------------------------------------------------------------------------
// Building the CLI once per run

function newestSourceMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMtime(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * ensureBuilt compiles src/ into dist/ when dist is missing or older than a source file (`npm test` builds first; this
 * covers `npx vitest run test/e2e`). A folder lock keeps parallel test files from compiling over each other.
 */
export function ensureBuilt(): void {
  const stale = () => !existsSync(SWM_MAIN) || statSync(SWM_MAIN).mtimeMs < newestSourceMtime(join(REPO_ROOT, 'src'));
  if (!stale()) return;
  const lock = join(tmpdir(), 'swm-e2e-build.lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // someone else builds; a lock older than 2 minutes is a leftover
      try {
        if (Date.now() - statSync(lock).mtimeMs > 120_000) rmdirSync(lock);
      } catch {
        // gone meanwhile
      }
      if (Date.now() > deadline) throw new Error('timed out waiting for another test file to build dist/');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
  try {
    if (stale()) {
      const r = spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: REPO_ROOT, encoding: 'utf8' });
      if (!existsSync(SWM_MAIN)) throw new Error(`building dist/ failed:\n${r.stdout}${r.stderr}`);
    }
  } finally {
    rmdirSync(lock);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Running the CLI

/** SwmRun is one finished `swm` child process. */
export interface SwmRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON lines (for --json runs; non-JSON lines are skipped). */
  events: Record<string, unknown>[];
}

/** RunOptions: env is the child's whole environment (see Scratch.env); `as` drops privileges with setpriv. */
export interface RunOptions {
  env: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  /** run as this uid/gid (setpriv --reuid/--regid --clear-groups). */
  as?: number;
}

const liveChildren = new Set<ChildProcess>();

/** runSwm runs `node dist/cli/main.js ...args` and collects its output; a child still running at the timeout is killed. */
export function runSwm(args: string[], options: RunOptions): Promise<SwmRun> {
  const argv = [process.execPath, SWM_MAIN, ...args];
  const command = options.as === undefined ? argv : ['setpriv', `--reuid=${options.as}`, `--regid=${options.as}`, '--clear-groups', ...argv];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command[0]!, command.slice(1), { env: options.env, cwd: options.cwd ?? tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      stderr += `\n[e2e: swm ${args.join(' ')} still running after ${timeoutMs} ms: killed]\n`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      const events: Record<string, unknown>[] = [];
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          events.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a JSON line
        }
      }
      resolvePromise({ code, signal, stdout, stderr, events });
    });
  });
}

/** startSleeper starts `sleep 30`, a live process whose pid a test can plant in a lock file; Scratch kills it afterwards. */
export function startSleeper(): ChildProcess {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  liveChildren.add(child);
  child.on('exit', () => liveChildren.delete(child));
  return child;
}

/** waitForExit resolves when the child has exited (true) or after ms (false). */
export function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((r) => {
    const timer = setTimeout(() => r(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      r(true);
    });
  });
}

/** expectOneLineError checks the shape SPEC §8 promises: exit code, one `swm: ...` line on stderr, no stack trace. */
export function expectOneLineError(run: SwmRun, code: number, pattern: RegExp): void {
  expect({ code: run.code, stderr: run.stderr }).toMatchObject({ code });
  const lines = run.stderr.split('\n').filter((l) => l.trim().length > 0);
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^swm: /);
  expect(lines[0]).toMatch(pattern);
  expect(run.stderr).not.toMatch(/\n\s+at |Error: |node:internal/);
}

/** expectCode checks a run's exit code, showing its stderr when it differs. */
export function expectCode(run: SwmRun, code: number): SwmRun {
  expect(run.code, `exit ${run.code}, expected ${code}; stderr:\n${run.stderr}`).toBe(code);
  return run;
}

/** eventsOf picks the --json events of one type (and action, for plan/done events). */
export function eventsOf(run: SwmRun, type: string, action?: string): Record<string, unknown>[] {
  return run.events.filter((e) => e.type === type && (action === undefined || e.action === action));
}

/** pathsOf lists the `path` of --json events of one type/action, sorted. */
export function pathsOf(run: SwmRun, type: string, action?: string): string[] {
  return eventsOf(run, type, action)
    .map((e) => String(e.path))
    .sort();
}

/** summaryOf returns the closing --json summary event. */
export function summaryOf(run: SwmRun): Record<string, unknown> & { uploaded: number; downloaded: number; conflicts: string[]; errors: { path: string }[] } {
  const s = run.events.find((e) => e.type === 'summary');
  if (!s) throw new Error(`no summary event (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  return s as ReturnType<typeof summaryOf>;
}

// ---------------------------------------------------------------------------------------------------------------------
// Scratch folders, environment and cleanup

/** Scratch is the per-test sandbox: temp folders, a child environment that reads no real config, cleanup afterwards. */
export class Scratch {
  readonly root: string;
  readonly home: string;
  private readonly extraEnv: Record<string, string> = {};

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), 'swm-e2e-'));
    chmodSync(this.root, 0o755);
    this.home = this.dir('home');
    mkdirSync(join(this.home, 'data'));
    mkdirSync(join(this.home, 'config'));
  }

  /** dir makes a new folder under the scratch root (path segments may contain spaces). */
  dir(name: string): string {
    const p = join(this.root, name);
    mkdirSync(p, { recursive: true });
    return p;
  }

  /** path names a location under the scratch root without creating it. */
  path(name: string): string {
    return join(this.root, name);
  }

  /** setEnv adds variables (the backend's, or a test's) to every child's environment. */
  setEnv(vars: Record<string, string>): void {
    Object.assign(this.extraEnv, vars);
  }

  /** env is the child environment: PATH plus HOME/XDG dirs inside the scratch, no AWS_* or SWM_* from the runner. */
  get env(): Record<string, string> {
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.home,
      XDG_DATA_HOME: join(this.home, 'data'),
      XDG_CONFIG_HOME: join(this.home, 'config'),
      TMPDIR: tmpdir(),
      LANG: 'C.UTF-8',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // no ~/.aws files to read: the credential chain must stop at the environment
      AWS_CONFIG_FILE: join(this.home, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(this.home, 'no-aws-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      ...this.extraEnv,
    };
  }

  /** swm runs the CLI with this scratch's environment (plus `env` overrides). */
  swm(args: string[], options: Partial<RunOptions> = {}): Promise<SwmRun> {
    return runSwm(args, { ...options, env: { ...this.env, ...options.env } });
  }

  /** giveTo hands the whole scratch to uid (for runs that drop privileges). */
  giveTo(uid: number): void {
    const walk = (p: string) => {
      chownSync(p, uid, uid);
      if (lstatSync(p).isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
    };
    walk(this.root);
  }

  cleanup(): void {
    const walk = (p: string) => {
      // restore permissions so rm can enter folders a test locked (mode 000)
      try {
        const st = lstatSync(p);
        if (st.isDirectory()) {
          chmodSync(p, 0o755);
          for (const name of readdirSync(p)) walk(join(p, name));
        }
      } catch {
        // gone
      }
    };
    walk(this.root);
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * useScratch registers, in the calling describe block, a fresh Scratch per test and its cleanup (temp folders and any
 * child process a test left running). Returns a getter for the current test's scratch.
 */
export function useScratch(): () => Scratch {
  let current: Scratch | undefined;
  beforeAll(() => ensureBuilt());
  afterEach(() => {
    for (const child of liveChildren) child.kill('SIGKILL');
    liveChildren.clear();
    current?.cleanup();
    current = undefined;
  });
  return () => (current ??= new Scratch());
}

// ---------------------------------------------------------------------------------------------------------------------
// Trees: build, snapshot, compare

/** TreeSpec describes a workspace: path → file content (string/Buffer or with mode and mtime), symlink, or empty folder. */
export type TreeSpec = Record<
  string,
  string | Buffer | { content: string | Buffer; mode?: number; mtimeMs?: number } | { symlink: string } | { dir: true; mode?: number }
>;

/** BASE_MTIME is a fixed past mtime with milliseconds that are not whole seconds. */
export const BASE_MTIME = 1_700_000_000_123;

/** writeTree creates the entries of spec under root (folders as needed); file mtimes default to BASE_MTIME + i·1001 ms. */
export function writeTree(root: string, spec: TreeSpec): void {
  let i = 0;
  for (const [rel, value] of Object.entries(spec)) {
    const abs = join(root, rel);
    mkdirSync(join(abs, '..'), { recursive: true });
    if (typeof value === 'object' && !Buffer.isBuffer(value) && 'symlink' in value) {
      rmSync(abs, { force: true });
      symlinkSync(value.symlink, abs);
    } else if (typeof value === 'object' && !Buffer.isBuffer(value) && 'dir' in value) {
      mkdirSync(abs, { recursive: true });
      if (value.mode !== undefined) chmodSync(abs, value.mode);
    } else {
      const file = typeof value === 'string' || Buffer.isBuffer(value) ? { content: value } : value;
      writeFileSync(abs, file.content);
      chmodSync(abs, file.mode ?? 0o644);
      setMtime(abs, file.mtimeMs ?? BASE_MTIME + i * 1001);
    }
    i++;
  }
}

/** setMtime sets a file's mtime to exactly `ms` whole milliseconds. */
export function setMtime(abs: string, ms: number): void {
  const s = (ms + 0.1) / 1000;
  utimesSync(abs, s, s);
}

/** standardTree has what a round trip must keep: spaces, unicode, modes, odd mtimes, symlinks, empty folders, an empty file. */
export function standardTree(): TreeSpec {
  return {
    'README.md': '# workspace\n',
    'src/main.py': 'print("hello")\n',
    'src/lib/util.py': 'X = 1\n'.repeat(100),
    'with space/a b c.txt': 'spaces\n',
    'ünïcödé/日本語のファイル.txt': 'unicode\n',
    'emoji 😀/🎉 party.txt': 'emoji\n',
    'run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 },
    'secret.key': { content: 'private\n', mode: 0o600 },
    'empty-file': '',
    'data/shard-0.bin': randomBytes(64 * 1024),
    'data/shard-1.bin': randomBytes(3000),
    'link-to-file': { symlink: 'src/main.py' },
    'src/link-to-dir': { symlink: '../data' },
    'dangling': { symlink: 'does/not/exist' },
    'empty-dir': { dir: true },
    'nested/empty/inner': { dir: true },
    'private-empty': { dir: true, mode: 0o700 },
  };
}

/** manyFilesTree is n small files spread over folders of 100 (listings of more than 1,000 keys paginate on S3). */
export function manyFilesTree(n: number, prefix = 'many'): TreeSpec {
  const spec: TreeSpec = {};
  for (let i = 0; i < n; i++) spec[`${prefix}/d${String(Math.floor(i / 100)).padStart(2, '0')}/f${i}.txt`] = `file ${i}\n`;
  return spec;
}

/** TreeEntry is what a tree comparison looks at for one path. */
export interface TreeEntry {
  type: 'file' | 'symlink' | 'dir';
  mode?: number;
  mtimeMs?: number;
  size?: number;
  sha256?: string;
  target?: string;
}

/**
 * readTree snapshots root (without `.swm/`): files with mode, whole-ms mtime, size and sha256; symlinks with their target;
 * folders with their mode when empty (swm stores empty folders only; the others are made as needed).
 */
export function readTree(root: string): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  const walk = (rel: string) => {
    const names = readdirSync(join(root, rel)).sort(compareKeys);
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      if (path === '.swm') continue;
      const st = lstatSync(join(root, path));
      if (st.isSymbolicLink()) out[path] = { type: 'symlink', target: readlinkSync(join(root, path)) };
      else if (st.isDirectory()) {
        const inner = readdirSync(join(root, path));
        if (inner.length === 0) out[path + '/'] = { type: 'dir', mode: st.mode & 0o7777 };
        else walk(path);
      } else if (st.isFile()) {
        out[path] = {
          type: 'file',
          mode: st.mode & 0o7777,
          mtimeMs: Math.floor(st.mtimeMs),
          size: st.size,
          sha256: createHash('sha256').update(readFileSync(join(root, path))).digest('hex'),
        };
      } else out[path] = { type: 'file', size: -1 }; // FIFO and friends: never expected in a pulled tree
    }
  };
  walk('');
  return out;
}

/** expectSameTree compares two workspaces byte for byte (contents, modes, mtimes, symlinks, empty folders). */
export function expectSameTree(actual: string, expected: string): void {
  expect(readTree(actual)).toEqual(readTree(expected));
}

/** xxh64Hex is the xxh64 (seed 0) of data as 16 hex digits, computed here independently of swm's hash stage. */
export async function xxh64Hex(data: Buffer): Promise<string> {
  const { create64 } = await xxhash();
  return create64().update(data).digest().toString(16).padStart(16, '0');
}

/** sha256 of a file or buffer, hex. */
export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---------------------------------------------------------------------------------------------------------------------
// Backends

/** RemoteObject is an object as read by the independent reader (not swm's own storage code, except to plant keys). */
export interface RemoteObject {
  body: Buffer;
  /** user metadata, keys without x-amz-meta- (swm-hash, swm-mode, swm-mtime, swm-type). */
  meta: Record<string, string>;
  etag: string;
}

/** Backend is where a test's bucket lives, seen from the test side. */
export interface Backend {
  name: 'file' | 's3';
  /** the -b value. */
  bucket: string;
  /** a dest prefix no other test uses (ends in '/'). */
  dest: string;
  /** variables the child needs (endpoint and credentials for S3). */
  env: Record<string, string>;
  /** keys under prefix, sorted. */
  listKeys(prefix: string): Promise<string[]>;
  /** the object at key, or undefined. */
  read(key: string): Promise<RemoteObject | undefined>;
  /** plant writes an object behind swm's back (bad keys, foreign objects). */
  plant(key: string, body: Buffer | string, meta?: Record<string, string>): Promise<void>;
  /** remove deletes objects behind swm's back (a deletion made by another machine or tool). */
  remove(keys: string[]): Promise<void>;
  close(): Promise<void>;
}

/** BackendFactory makes a Backend for one test inside its scratch. */
export interface BackendFactory {
  name: 'file' | 's3';
  open(scratch: Scratch): Promise<Backend>;
}

/** encodedSegment mirrors the file backend's on-disk naming for the plain names tests use (see src/storage/file.ts). */
function encodedSegment(s: string): string {
  if (s === '') return '%2F';
  if (s === '.') return '%2E';
  if (s === '..') return '%2E%2E';
  return s.replace(/[%\0]/g, (c) => (c === '%' ? '%25' : '%00'));
}

function decodedSegment(name: string): string {
  if (name === '%2F') return '';
  if (name === '%2E') return '.';
  if (name === '%2E%2E') return '..';
  return name.replace(/%(25|00)/g, (_, h: string) => (h === '25' ? '%' : '\0'));
}

/** fileBackend is a `file:` bucket in the test's scratch, read back through the folder layout directly. */
export const fileBackend: BackendFactory = {
  name: 'file',
  async open(scratch) {
    const root = scratch.path('bucket');
    const objects = join(root, 'objects');
    const dest = `e2e/${randomBytes(4).toString('hex')}/`;
    const locate = (key: string) => {
      const segs = key.split('/');
      const last = encodedSegment(segs.pop()!);
      const dir = join(objects, ...segs.map((s) => encodedSegment(s) + '%'));
      return { data: join(dir, last), meta: join(dir, `.${last}%m`) };
    };
    const storage = createFileStorage(root, { create: true });
    return {
      name: 'file',
      bucket: `file:${root}`,
      dest,
      env: {},
      async listKeys(prefix) {
        const keys: string[] = [];
        const walk = (dir: string, keyPrefix: string) => {
          let names: string[];
          try {
            names = readdirSync(dir);
          } catch {
            return;
          }
          for (const name of names) {
            const abs = join(dir, name);
            if (name.startsWith('.') && (name.endsWith('%m') || name.endsWith('%t'))) continue; // sidecars and temps
            if (statSync(abs).isDirectory()) walk(abs, keyPrefix + decodedSegment(name.slice(0, -1)) + '/');
            else keys.push(keyPrefix + decodedSegment(name));
          }
        };
        walk(objects, '');
        return keys.filter((k) => k.startsWith(prefix)).sort(compareKeys);
      },
      async read(key) {
        const loc = locate(key);
        if (!existsSync(loc.data)) return undefined;
        const sidecar = existsSync(loc.meta) ? (JSON.parse(readFileSync(loc.meta, 'utf8')) as { meta: Record<string, string>; mtimeNs: string; size: number }) : undefined;
        return { body: readFileSync(loc.data), meta: sidecar?.meta ?? {}, etag: sidecar ? `${sidecar.mtimeNs}-${sidecar.size}` : '' };
      },
      async plant(key, body, meta = {}) {
        const buf = Buffer.from(body);
        await storage.put(key, buf, { size: buf.length, meta: {} });
        if (Object.keys(meta).length > 0) {
          // foreign metadata in the sidecar, as another tool might write it
          const loc = locate(key);
          const record = JSON.parse(readFileSync(loc.meta, 'utf8')) as { meta: Record<string, string> };
          record.meta = meta;
          writeFileSync(loc.meta, JSON.stringify(record));
        }
      },
      async remove(keys) {
        await storage.delete(keys);
      },
      async close() {
        await storage.close();
      },
    };
  },
};

/** s3Backend is the MinIO server from the global setup, with a dest unique to the test; read with the raw AWS SDK. */
export const s3Backend: BackendFactory = {
  name: 's3',
  async open() {
    const s3 = inject('s3');
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const dest = `e2e/${randomBytes(6).toString('hex')}/`;
    return {
      name: 's3',
      bucket: `s3:${s3.bucket}`,
      dest,
      env: {
        AWS_ENDPOINT_URL: s3.endpoint,
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        AWS_REGION: s3.region,
      },
      async listKeys(prefix) {
        const keys: string[] = [];
        let token: string | undefined;
        do {
          const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ContinuationToken: token }));
          for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
          token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (token);
        return keys.sort(compareKeys);
      },
      async read(key) {
        try {
          const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
          const r = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
          const body = Buffer.from(await r.Body!.transformToByteArray());
          return { body, meta: head.Metadata ?? {}, etag: (head.ETag ?? '').replace(/"/g, '') };
        } catch (e) {
          const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
          if (err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404) return undefined;
          throw e;
        }
      },
      async plant(key, body, meta = {}) {
        await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: Buffer.from(body), Metadata: meta }));
      },
      async remove(keys) {
        if (keys.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: s3.bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }));
      },
      async close() {
        client.destroy();
      },
    };
  },
};

/** BACKENDS is what `describe.each` runs every scenario over. */
export const BACKENDS: BackendFactory[] = [fileBackend, s3Backend];

/**
 * useBackend registers, in the calling describe block, a scratch and a backend per test. Returns a getter for both,
 * with `ws(name)` making a workspace folder and `sync(verb, id, ws, ...flags)` running the CLI against the backend.
 */
export function useBackend(factory: BackendFactory) {
  const scratch = useScratch();
  let backend: Backend | undefined;
  afterEach(async () => {
    await backend?.close();
    backend = undefined;
  });
  return async () => {
    const s = scratch();
    if (!backend) {
      backend = await factory.open(s);
      s.setEnv(backend.env);
    }
    const b = backend;
    return {
      scratch: s,
      backend: b,
      /** target flags for this backend: -b bucket -d dest. */
      target: ['-b', b.bucket, '-d', b.dest],
      ws: (name: string) => s.dir(name),
      /** sync runs `swm sync <verb> <id> <path> -b … -d … ...flags`. */
      sync: (verb: string, path: string, ...flags: string[]) => s.swm(['sync', verb, 'demo', path, '-b', b.bucket, '-d', b.dest, ...flags]),
      /** remote lists the workspace-relative paths stored under dest. */
      remote: async () => (await b.listKeys(b.dest)).map((k) => k.slice(b.dest.length)),
    };
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// A listing-rewriting proxy: MinIO refuses to store keys with ".." segments, so S3 tests see them this way

/** ListingInjector is a pass-through HTTP proxy to an S3 endpoint that adds extra keys to ListObjectsV2 answers. */
export interface ListingInjector {
  endpoint: string;
  close(): Promise<void>;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * startListingInjector forwards every request unchanged (SigV4 still verifies: the Host header is passed through) and,
 * on the first page of a ListObjectsV2 under a prefix, inserts `keys` that start with that prefix before the real ones.
 * The keys must sort before every real key under the prefix (the client checks the order).
 */
export async function startListingInjector(target: string, keys: string[]): Promise<ListingInjector> {
  const http = await import('node:http');
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const rewrite = req.method === 'GET' && url.searchParams.get('list-type') === '2' && !url.searchParams.has('continuation-token');
    const prefix = url.searchParams.get('prefix') ?? '';
    const out = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        if (!rewrite || up.statusCode !== 200) {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          let xml = Buffer.concat(chunks).toString('utf8');
          const urlEncoded = xml.includes('<EncodingType>url</EncodingType>');
          const extra = keys
            .filter((k) => k.startsWith(prefix))
            .map((k) => {
              const key = urlEncoded ? encodeURIComponent(k).replace(/%2F/g, '/') : xmlEscape(k);
              return `<Contents><Key>${key}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>`;
            })
            .join('');
          const at = xml.includes('<Contents>') ? xml.indexOf('<Contents>') : xml.indexOf('</ListBucketResult>');
          xml = xml.slice(0, at) + extra + xml.slice(at);
          xml = xml.replace(/<KeyCount>(\d+)<\/KeyCount>/, (_, n: string) => `<KeyCount>${Number(n) + keys.filter((k) => k.startsWith(prefix)).length}</KeyCount>`);
          const body = Buffer.from(xml);
          const headers = { ...up.headers, 'content-length': String(body.length) };
          res.writeHead(200, headers);
          res.end(body);
        });
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
