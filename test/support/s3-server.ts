// Test helper: starts a throwaway local MinIO S3 server (built by scripts/build-s3-server) on a free loopback port.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { freeLoopbackPort } from './ports.js';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

export interface S3Server {
  /** e.g. http://127.0.0.1:40123 (path-style addressing: use `forcePathStyle: true`). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Bucket created at startup. */
  bucket: string;
  /** Temp dir holding MinIO's drive (`data/`, MinIO's own on-disk format) and `certs/`; removed by stop(). */
  dataDir: string;
  stop(): Promise<void>;
  createBucket(name: string): Promise<void>;
}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const buildScript = join(repoRoot, 'scripts', 'build-s3-server');
const binary = join(repoRoot, '.cache', 'bin', 'minio');
const region = 'us-east-1';
const startupTimeoutMs = 60_000;

let built = false;
/** Runs scripts/build-s3-server (a no-op when the pinned version is already in .cache/bin). */
function ensureBuilt(): void {
  if (built) return;
  const out = execFileSync(buildScript, [], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    timeout: 20 * 60_000,
  });
  if (!/already built/.test(out)) process.stderr.write(out);
  if (!existsSync(binary)) throw new Error(`build-s3-server did not produce ${binary}`);
  built = true;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Linux: make the kernel SIGKILL the server if this process dies without running exit handlers. */
let deathSigLauncher: string[] | undefined;
function launcher(): string[] {
  if (deathSigLauncher) return deathSigLauncher;
  deathSigLauncher = [];
  if (process.platform === 'linux') {
    try {
      const help = execFileSync('setpriv', ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      if (help.includes('pdeathsig')) deathSigLauncher = ['setpriv', '--pdeathsig', 'KILL'];
    } catch {
      // no setpriv: rely on the 'exit' handler below
    }
  }
  return deathSigLauncher;
}

/** Servers not yet stopped, and their temp dirs: reaped by the 'exit' hook if a test forgets stop(). */
const live = new Map<ChildProcess, string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [child, dir] of live) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // best effort
      }
    }
  });
}

function isTransient(err: unknown): boolean {
  const e = err as { name?: string; code?: string; $metadata?: { httpStatusCode?: number }; cause?: { code?: string } };
  return (
    e?.$metadata?.httpStatusCode === 503 ||
    e?.name === 'ServerNotInitialized' ||
    e?.name === 'XMinioServerNotInitialized' ||
    ['ECONNREFUSED', 'ECONNRESET'].includes(e?.code ?? e?.cause?.code ?? '')
  );
}

const dirPrefix = 'swm-s3-';
/**
 * Removes temp dirs of servers whose process is gone (a forgotten stop() in a worker that vitest
 * kills never runs 'exit' hooks; setpriv's pdeathsig kills the server but can't delete its data).
 */
function sweepStaleDirs(): void {
  const base = tmpdir();
  let names: string[] = [];
  try {
    names = readdirSync(base).filter((n) => n.startsWith(dirPrefix));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(base, name);
    try {
      const pid = Number(readFileSync(join(dir, 'server.pid'), 'utf8'));
      try {
        process.kill(pid, 0);
        continue; // still running
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EPERM') continue;
      }
    } catch {
      // no pid file: only a dir abandoned long ago is fair game
      try {
        if (Date.now() - statSync(dir).mtimeMs < 3_600_000) continue;
      } catch {
        continue;
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startS3Server(opts: { bucket?: string } = {}): Promise<S3Server> {
  ensureBuilt();
  installExitHook();
  try {
    sweepStaleDirs();
  } catch {
    // best effort
  }
  const bucket = opts.bucket ?? 'swm-test';
  // MinIO requires a root user of >= 3 and a password of >= 8 characters.
  const accessKeyId = `swm${randomBytes(6).toString('hex')}`;
  const secretAccessKey = randomBytes(18).toString('hex');
  const dataDir = mkdtempSync(join(tmpdir(), dirPrefix));
  mkdirSync(join(dataDir, 'data'));
  mkdirSync(join(dataDir, 'certs'));

  let lastError: unknown;
  // A port found free can be grabbed by someone else before MinIO binds it: retry.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freeLoopbackPort();
    const endpoint = `http://127.0.0.1:${port}`;
    const [cmd, ...pre] = [...launcher(), binary];
    const args = [
      ...pre,
      'server',
      '--quiet',
      '--anonymous',
      '--address',
      `127.0.0.1:${port}`,
      '--certs-dir',
      join(dataDir, 'certs'),
      join(dataDir, 'data'),
    ];
    const child = spawn(cmd!, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        MINIO_ROOT_USER: accessKeyId,
        MINIO_ROOT_PASSWORD: secretAccessKey,
        MINIO_BROWSER: 'off',
        MINIO_UPDATE: 'off',
        MINIO_CI_CD: 'on',
        MINIO_REGION: region,
      },
    });
    live.set(child, dataDir);
    if (child.pid) writeFileSync(join(dataDir, 'server.pid'), String(child.pid));
    let log = '';
    const echo = Boolean(process.env.SWM_S3_SERVER_LOG); // set it to see MinIO's log on stderr
    const keepLog = (b: Buffer) => {
      log = (log + b.toString()).slice(-8192);
      if (echo) process.stderr.write(b);
    };
    child.stdout!.on('data', keepLog);
    child.stderr!.on('data', keepLog);
    let exited = false;
    const exitedP = new Promise<void>((resolve) => {
      child.once('exit', () => {
        exited = true;
        live.delete(child);
        resolve();
      });
      child.once('error', (err) => {
        lastError = err;
        exited = true;
        live.delete(child);
        resolve();
      });
    });
    // Don't keep the event loop alive just for the server (stop() / exit hook reap it).
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();

    const client = new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      maxAttempts: 1,
    });
    const createBucket = async (name: string): Promise<void> => {
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } catch (err) {
        if ((err as { name?: string }).name !== 'BucketAlreadyOwnedByYou') throw err;
      }
    };

    const stop = async (): Promise<void> => {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exitedP;
        clearTimeout(timer);
      }
      client.destroy();
      rmSync(dataDir, { recursive: true, force: true });
    };

    const deadline = Date.now() + startupTimeoutMs;
    let ready = false;
    while (!exited && Date.now() < deadline) {
      try {
        const res = await fetch(`${endpoint}/minio/health/live`);
        await res.arrayBuffer();
        if (res.ok) {
          await createBucket(bucket);
          ready = true;
          break;
        }
      } catch (err) {
        lastError = err;
        if ((err as { $metadata?: unknown }).$metadata && !isTransient(err)) break;
      }
      await sleep(50);
    }
    if (ready) {
      return { endpoint, accessKeyId, secretAccessKey, region, bucket, dataDir, stop, createBucket };
    }

    // Failed attempt: kill this server, wipe the drive, maybe retry.
    if (!exited) {
      child.kill('SIGKILL');
      await exitedP;
    }
    client.destroy();
    rmSync(join(dataDir, 'data'), { recursive: true, force: true });
    mkdirSync(join(dataDir, 'data'));
    lastError = new Error(
      `MinIO did not become ready on ${endpoint} (attempt ${attempt}): ${String(lastError)}\n--- server log ---\n${log}`,
    );
    if (!/address already in use/i.test(log)) break;
  }
  rmSync(dataDir, { recursive: true, force: true });
  throw lastError;
}
