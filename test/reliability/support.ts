// Reliability test support: per-case sandboxes (workspace, file: bucket, HOME), running the built CLI with extra process
// controls (uid, umask, preload hooks), tree snapshots of workspaces and buckets, tmpfs mounts, and small hostile servers.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { expect, inject } from 'vitest';
import { compareKeys } from '../../src/keys.js';
import { REPO_ROOT, SWM_MAIN, readTree, type TreeEntry } from '../support/e2e.js';
import { freeLoopbackPort } from '../support/ports.js';

export { ensureBuilt, writeTree, readTree, BASE_MTIME, type TreeSpec } from '../support/e2e.js';

/** NOBODY is the uid/gid a case drops to when root's bypass of file permissions would hide the problem. */
export const NOBODY = 65534;

/** CliRun is one finished `swm` child process. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** CliOptions are the process controls of one run. */
export interface CliOptions {
  /** the child's whole environment; a variable set to undefined is left out. */
  env: Record<string, string | undefined>;
  cwd?: string;
  /** run as this uid/gid (setpriv --reuid/--regid --clear-groups). */
  as?: number;
  /** umask of the child (octal number), set by a `sh -c 'umask …; exec …'` wrapper. */
  umask?: number;
  timeoutMs?: number;
  /** a set the running child is kept in while it runs (so its owner can kill it). */
  track?: Set<ChildProcess>;
}

/** runCli runs `node dist/cli/main.js ...args` and collects its output; a child still running at the timeout is killed. */
export function runCli(args: string[], options: CliOptions): Promise<CliRun> {
  let argv = [process.execPath, SWM_MAIN, ...args];
  if (options.umask !== undefined) argv = ['sh', '-c', `umask ${options.umask.toString(8).padStart(3, '0')}; exec "$@"`, 'sh', ...argv];
  if (options.as !== undefined) argv = ['setpriv', `--reuid=${options.as}`, `--regid=${options.as}`, '--clear-groups', ...argv];
  return new Promise((resolve, reject) => {
    const env = Object.fromEntries(Object.entries(options.env).filter((kv): kv is [string, string] => kv[1] !== undefined));
    const child = spawn(argv[0]!, argv.slice(1), { env, cwd: options.cwd ?? tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    options.track?.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      options.track?.delete(child);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      options.track?.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** stderrLines are the non-empty lines a run wrote on stderr. */
export function stderrLines(run: CliRun): string[] {
  return run.stderr.split('\n').filter((l) => l.trim().length > 0);
}

/**
 * expectOneLine checks SPEC §8's promise for a failed or warned run: the exit code, exactly one `swm: ` line on stderr
 * matching `pattern`, and no stack trace.
 */
export function expectOneLine(run: CliRun, code: number, pattern: RegExp): void {
  const lines = stderrLines(run);
  expect({ code: run.code, lines }, `stdout:\n${run.stdout}`).toMatchObject({ code, lines: [expect.stringMatching(pattern)] });
  expect(lines[0]).toMatch(/^swm: /);
  expect(run.stderr).not.toMatch(/\n\s+at |node:internal|^\w*Error: /m);
}

/** Sandbox is one case's private corner of /tmp: a HOME with XDG folders, a file: bucket path, workspaces, mounts. */
export class Sandbox {
  readonly root: string;
  readonly home: string;
  private readonly mounts: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly extraEnv: Record<string, string> = {};

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), 'swm-rel-'));
    chmodSync(this.root, 0o755);
    this.home = this.dir('home');
    mkdirSync(join(this.home, 'data'));
    mkdirSync(join(this.home, 'config'));
  }

  /** dir makes a folder under the sandbox. */
  dir(name: string): string {
    const p = join(this.root, name);
    mkdirSync(p, { recursive: true });
    return p;
  }

  /** path names a location under the sandbox without creating it. */
  path(name: string): string {
    return join(this.root, name);
  }

  /** setEnv adds variables to every run of this sandbox. */
  setEnv(vars: Record<string, string>): void {
    Object.assign(this.extraEnv, vars);
  }

  /** env is the child environment: PATH and HOME/XDG inside the sandbox, no AWS_* or SWM_* of the runner. */
  get env(): Record<string, string> {
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.home,
      XDG_DATA_HOME: join(this.home, 'data'),
      XDG_CONFIG_HOME: join(this.home, 'config'),
      TMPDIR: tmpdir(),
      LANG: 'C.UTF-8',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      AWS_CONFIG_FILE: join(this.home, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(this.home, 'no-aws-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      ...this.extraEnv,
    };
  }

  /** swm runs the CLI with this sandbox's environment (plus overrides). */
  swm(args: string[], options: Partial<CliOptions> = {}): Promise<CliRun> {
    return runCli(args, { ...options, env: { ...this.env, ...options.env }, track: this.children });
  }

  /** giveTo hands the whole sandbox to uid (for runs that drop privileges). */
  giveTo(uid: number): void {
    const walk = (p: string) => {
      chownSync(p, uid, uid);
      if (lstatSync(p).isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
    };
    walk(this.root);
  }

  /** mountTmpfs mounts a fresh tmpfs of `kib` KiB at a new folder `name` (root only); cleanup unmounts it. */
  mountTmpfs(name: string, kib: number): string {
    const dir = this.dir(name);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k,mode=0755`, 'tmpfs', dir]);
    this.mounts.push(dir);
    return dir;
  }

  /** remountReadOnly turns a tmpfs made by mountTmpfs read-only. */
  remountReadOnly(dir: string): void {
    execFileSync('mount', ['-o', 'remount,ro', dir]);
  }

  cleanup(): void {
    for (const child of this.children) child.kill('SIGKILL');
    for (const dir of this.mounts.reverse()) {
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        try {
          execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
        } catch {
          // left for the OS; rmSync below skips a busy mount point
        }
      }
    }
    const unlock = (p: string) => {
      try {
        const st = lstatSync(p);
        if (st.isDirectory()) {
          chmodSync(p, 0o755);
          for (const name of readdirSync(p)) unlock(join(p, name));
        }
      } catch {
        // gone
      }
    };
    unlock(this.root);
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** withSandbox runs body in a fresh sandbox and always cleans it up (concurrent cases each get their own). */
export async function withSandbox<T>(body: (sb: Sandbox) => Promise<T>): Promise<T> {
  const sb = new Sandbox();
  try {
    return await body(sb);
  } finally {
    sb.cleanup();
  }
}

/** canMount tells whether this process may mount a tmpfs (root in a sandbox that allows it). */
export function canMount(): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'swm-rel-mount-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' });
    execFileSync('umount', [dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** workspaceTree snapshots a workspace without `.swm/` (files with content hashes, modes, mtimes; symlinks; empty folders). */
export function workspaceTree(root: string): Record<string, TreeEntry> {
  return readTree(root);
}

/** folderTree snapshots any folder whole (a file: bucket: objects and sidecars), hidden names included. */
export function folderTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(root, rel)).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, path));
      if (st.isDirectory()) {
        out[path + '/'] = 'dir';
        walk(path);
      } else out[path] = st.isFile() ? readFileSync(join(root, path)).toString('base64') : 'special';
    }
  };
  walk('');
  return out;
}

/** filesUnder lists every path under root (relative, '/'-separated), `.swm/` included. */
export function filesUnder(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      out.push(path);
      if (lstatSync(join(root, path)).isDirectory()) walk(path);
    }
  };
  walk('');
  return out.sort();
}

// ---------------------------------------------------------------------------------------------------------------------
// S3 side

/** S3Coordinates says where an S3 server is and how to sign in. */
export interface S3Coordinates {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  bucket: string;
}

/** sharedS3 is the run's MinIO (test/support/global-setup.ts). */
export function sharedS3(): S3Coordinates {
  return inject('s3');
}

/** s3Env is what a child needs to reach an S3 server. */
export function s3Env(s3: S3Coordinates): Record<string, string> {
  return { AWS_ENDPOINT_URL: s3.endpoint, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: s3.region };
}

/** uniqueDest is a dest prefix no other case uses. */
export function uniqueDest(tag: string): string {
  return `rel/${tag}-${randomBytes(5).toString('hex')}/`;
}

/** S3Reader reads and writes a bucket with the raw SDK, independently of swm's own storage code. */
export class S3Reader {
  readonly client: S3Client;
  constructor(readonly s3: S3Coordinates) {
    this.client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** snapshot maps every key under prefix to its ETag. */
  async snapshot(prefix: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.s3.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) out[o.Key] = o.ETag ?? '';
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => compareKeys(a, b)));
  }

  async read(key: string): Promise<{ body: Buffer; meta: Record<string, string> }> {
    const r = await this.client.send(new GetObjectCommand({ Bucket: this.s3.bucket, Key: key }));
    return { body: Buffer.from(await r.Body!.transformToByteArray()), meta: r.Metadata ?? {} };
  }

  async meta(key: string): Promise<Record<string, string>> {
    return (await this.client.send(new HeadObjectCommand({ Bucket: this.s3.bucket, Key: key }))).Metadata ?? {};
  }

  async plant(key: string, body: Buffer | string, meta: Record<string, string> = {}): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.s3.bucket, Key: key, Body: Buffer.from(body), Metadata: meta }));
  }

  close(): void {
    this.client.destroy();
  }
}

/** PrivateMinio is a MinIO started with credentials of the test's choosing (e.g. a canary secret). */
export interface PrivateMinio extends S3Coordinates {
  stop(): Promise<void>;
}

/** startPrivateMinio starts the pinned MinIO (built by the global setup into .cache/bin) with the given root secret. */
export async function startPrivateMinio(secretAccessKey: string): Promise<PrivateMinio> {
  const dataDir = mkdtempSync(join(tmpdir(), 'swm-s3-rel-'));
  const port = await freeLoopbackPort();
  const endpoint = `http://127.0.0.1:${port}`;
  const accessKeyId = `rel${randomBytes(4).toString('hex')}`;
  const child = spawn(join(REPO_ROOT, '.cache/bin/minio'), ['server', '--quiet', '--address', `127.0.0.1:${port}`, join(dataDir, 'data')], {
    stdio: 'ignore',
    env: { ...process.env, MINIO_ROOT_USER: accessKeyId, MINIO_ROOT_PASSWORD: secretAccessKey, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off', MINIO_CI_CD: 'on', MINIO_REGION: 'us-east-1' },
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    rmSync(dataDir, { recursive: true, force: true });
  };
  const coords: S3Coordinates = { endpoint, accessKeyId, secretAccessKey, region: 'us-east-1', bucket: 'canary' };
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${endpoint}/minio/health/live`);
      await res.arrayBuffer();
      if (res.ok) {
        const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
        try {
          await client.send(new CreateBucketCommand({ Bucket: coords.bucket }));
        } finally {
          client.destroy();
        }
        return { ...coords, stop };
      }
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`private MinIO did not start on ${endpoint}`);
}

// ---------------------------------------------------------------------------------------------------------------------
// Small hostile servers

/** LocalServer is a server on a loopback port. */
export interface LocalServer {
  url: string;
  close(): Promise<void>;
}

function listen(server: Server, scheme: 'http' | 'https'): Promise<LocalServer> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `${scheme}://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

/** SelfSigned is a throwaway certificate for 127.0.0.1, made with openssl, and its files. */
export interface SelfSigned {
  key: Buffer;
  cert: Buffer;
  certPath: string;
}

/** makeSelfSignedCert writes a one-day EC certificate for 127.0.0.1 into dir. */
export function makeSelfSignedCert(dir: string): SelfSigned {
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return { key: readFileSync(keyPath), cert: readFileSync(certPath), certPath };
}

/** startHttpsAnything starts an https server with a self-signed certificate that answers every request 200 "hello". */
export function startHttpsAnything(cert: SelfSigned): Promise<LocalServer & { requests: () => number }> {
  let requests = 0;
  const server = createHttpsServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    requests++;
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello');
  });
  return listen(server as unknown as Server, 'https').then((s) => ({ ...s, requests: () => requests }));
}

/**
 * startCorruptingProxy forwards every request to target unchanged, except that the body of an object GET (not a
 * listing) whose key ends with `suffix` comes back with its first byte flipped: corruption in transit, same ETag.
 */
export function startCorruptingProxy(target: string, suffix: string): Promise<LocalServer & { corrupted: () => number }> {
  const to = new URL(target);
  let corrupted = 0;
  const server = createHttpServer((req, res) => {
    const upstream = httpRequest(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        const path = decodeURIComponent((req.url ?? '').split('?')[0]!);
        const flip = req.method === 'GET' && path.endsWith(suffix) && (up.statusCode ?? 0) === 200;
        res.writeHead(up.statusCode ?? 502, up.headers);
        let first = true;
        up.on('data', (chunk: Buffer) => {
          if (flip && first && chunk.length > 0) {
            chunk = Buffer.from(chunk);
            chunk[0] = chunk[0]! ^ 0xff;
            corrupted++;
          }
          first = false;
          res.write(chunk);
        });
        up.on('end', () => res.end());
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  return listen(server, 'http').then((s) => ({ ...s, corrupted: () => corrupted }));
}

/** writeHook writes an ES module that `NODE_OPTIONS=--import=<file>` preloads into the CLI, and returns its path. */
export function writeHook(dir: string, name: string, source: string): string {
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
}
