// Soak (`npm run soak`, not in CI): `swm sync auto -i 2` runs for SOAK_MINUTES (default 10) while a seeded writer creates, rewrites,
// appends, deletes and renames files and folders, with every S3 request going through a proxy that faults 5% of them; then the
// daemon catches up and the bucket, read straight from MinIO, must equal the workspace. Prints a table of figures.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync, closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync,
  unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_FAULT_KINDS, mulberry32, startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { startS3Server, type S3Server } from '../support/s3-server.js';
import { ensureBuilt, hash64, processesUnder, sleep, SWM } from '../watch/cli-fixtures.js';
import { compareKeys } from '../../src/keys.js';

/** how long the writer runs. */
const SOAK_MINUTES = Number(process.env.SOAK_MINUTES) > 0 ? Number(process.env.SOAK_MINUTES) : 10;
/** seed of the writer's choices and of the proxy's faults (SOAK_SEED to replay another run). */
const SEED = Number(process.env.SOAK_SEED) > 0 ? Number(process.env.SOAK_SEED) : 20_260_607;
const INTERVAL_SECONDS = 2;
/** share of S3 requests the proxy faults, every kind alike. */
const FAULT_RATE = 0.05;
/** a stalled answer is dropped by the proxy after this long; the client gives up after IDLE_TIMEOUT_MS and retries first. */
const STALL_MS = 10_000;
const IDLE_TIMEOUT_MS = 4_000;
const INITIAL_FILES = 300;
/** the writer steers the workspace between these file counts. */
const MIN_FILES = 150;
const MAX_FILES = 700;
/** big files (a few MiB) alive at once, at most. */
const MAX_BIG_FILES = 6;
const MiB = 1024 * 1024;
/** the daemon must have caught up within this long after the writer stops. */
const CATCH_UP_TIMEOUT_MS = 10 * 60_000;
const LOG_FILE = 'logs/train.log';

/** SwmRun is one finished `swm` child process. */
interface SwmRun {
  code: number | null;
  stdout: string;
  stderr: string;
  json: Record<string, unknown>[];
}

/** runSwm runs `node dist/cli/main.js sync <args>` with env and waits for it (SIGKILL after timeoutMs). */
function runSwm(args: string[], env: Record<string, string>, cwd: string, timeoutMs: number): Promise<SwmRun> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [SWM, 'sync', ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
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

/** seededBytes fills n bytes from the PRNG (incompressible, reproducible). */
function seededBytes(rng: () => number, n: number): Buffer {
  const buf = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) buf.writeUInt32LE(Math.floor(rng() * 4294967296) >>> 0, i);
  for (; i < n; i++) buf[i] = Math.floor(rng() * 256);
  return buf;
}

/** WriterFigures count what the writer did. */
interface WriterFigures {
  ops: number;
  created: number;
  createdBig: number;
  rewritten: number;
  appended: number;
  deleted: number;
  foldersDeleted: number;
  filesInDeletedFolders: number;
  renamed: number;
  foldersRenamed: number;
  foldersMovedIn: number;
  filesMovedIn: number;
  logAppends: number;
  bytesWritten: number;
}

/**
 * SoakWriter changes a workspace the way a training job and its user do: new files (mostly small, now and then a few MiB
 * written in chunks), in-place and replace-by-rename rewrites, appends, deletions of files and whole folders, renames of
 * files and folders, folders moved in whole, and a log appended to on every step. Every choice comes from a seeded PRNG.
 */
class SoakWriter {
  readonly figures: WriterFigures = {
    ops: 0, created: 0, createdBig: 0, rewritten: 0, appended: 0, deleted: 0, foldersDeleted: 0, filesInDeletedFolders: 0,
    renamed: 0, foldersRenamed: 0, foldersMovedIn: 0, filesMovedIn: 0, logAppends: 0, bytesWritten: 0,
  };
  /** the files the writer made that exist now (relative paths), and whether each is a big one. */
  private readonly files = new Map<string, { big: boolean }>();
  private counter = 0;

  constructor(private readonly ws: string, private readonly outside: string, readonly rng: () => number) {}

  /** fileCount is how many files (besides the log) the writer knows of. */
  get fileCount(): number {
    return this.files.size;
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.rng() * items.length)]!;
  }

  private abs(rel: string): string {
    return join(this.ws, rel);
  }

  /** dirs are the folders holding the writer's files (and their ancestors), the log folder left out. */
  private dirs(): string[] {
    const out = new Set<string>();
    for (const path of this.files.keys()) {
      let d = dirname(path);
      while (d !== '.') {
        out.add(d);
        d = dirname(d);
      }
    }
    out.delete('logs');
    return [...out].sort(compareKeys);
  }

  /** someDir is an existing folder most of the time, else a new one (at most three levels deep). */
  private someDir(): string {
    const dirs = this.dirs();
    if (dirs.length > 0 && this.rng() < 0.75) return this.pick(dirs);
    const shallow = dirs.filter((d) => d.split('/').length < 3);
    const parent = shallow.length > 0 && this.rng() < 0.5 ? this.pick(shallow) : undefined;
    const name = `d${++this.counter}`;
    return parent ? `${parent}/${name}` : name;
  }

  private fileName(): string {
    const n = ++this.counter;
    const r = this.rng();
    if (r < 0.06) return `note ${n}.md`;
    if (r < 0.1) return `données-${n}.txt`;
    return r < 0.55 ? `f${n}.txt` : `f${n}.bin`;
  }

  private smallSize(): number {
    const r = this.rng();
    if (r < 0.03) return 0;
    if (r < 0.45) return 1 + Math.floor(this.rng() * 512);
    return 512 + Math.floor(this.rng() * 64 * 1024);
  }

  private bigSize(): number {
    // now and then one past the single-PUT limit (16 MiB), so a multipart upload meets the faults too
    return this.rng() < 0.1 ? 18 * MiB + Math.floor(this.rng() * MiB) : MiB + Math.floor(this.rng() * 4 * MiB);
  }

  private bigCount(): number {
    let n = 0;
    for (const f of this.files.values()) if (f.big) n++;
    return n;
  }

  /** writeSlowly writes a big body in 1 MiB chunks with pauses, truncating first: the daemon can meet it half-written. */
  private async writeSlowly(path: string, body: Buffer): Promise<void> {
    const fd = openSync(path, 'w');
    try {
      for (let at = 0; at < body.length; at += MiB) {
        writeSync(fd, body, at, Math.min(MiB, body.length - at));
        await sleep(20);
      }
    } finally {
      closeSync(fd);
    }
    this.figures.bytesWritten += body.length;
  }

  private writeNow(path: string, body: Buffer): void {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, body);
    this.figures.bytesWritten += body.length;
  }

  /** seed writes the initial tree: `count` small files in a few folders, two of them a few MiB. */
  seed(count: number): void {
    for (let i = 0; i < count; i++) {
      const dir = `d${i % 17}${i % 3 === 0 ? `/s${i % 5}` : ''}`;
      const rel = `${dir}/${this.fileName()}`;
      const big = i < 2;
      this.writeNow(this.abs(rel), seededBytes(this.rng, big ? 2 * MiB + i : this.smallSize()));
      this.files.set(rel, { big });
    }
    this.writeNow(this.abs(LOG_FILE), Buffer.from('step 0\n'));
  }

  /** step does one random change (the kinds are weighted, and steered to keep the file count between MIN and MAX) and appends to the log. */
  async step(): Promise<void> {
    this.figures.ops++;
    const line = `step ${this.figures.ops} ${new Date().toISOString()}\n`;
    appendFileSync(this.abs(LOG_FILE), line);
    this.figures.logAppends++;
    this.figures.bytesWritten += line.length;

    const n = this.files.size;
    const grow = n < MIN_FILES ? 3 : n > MAX_FILES ? 0.2 : 1;
    const shrink = n > MAX_FILES ? 3 : n < MIN_FILES ? 0.1 : 1;
    const weights: [string, number][] = [
      ['create', 30 * grow],
      ['createBig', this.bigCount() < MAX_BIG_FILES ? 1.5 : 0],
      ['rewrite', 18],
      ['append', 14],
      ['delete', 16 * shrink],
      ['deleteFolder', 1.5 * shrink],
      ['rename', 9],
      ['renameFolder', 1.5],
      ['moveIn', 1.2 * grow],
    ];
    const total = weights.reduce((s, [, w]) => s + w, 0);
    let r = this.rng() * total;
    let kind = weights[0]![0];
    for (const [k, w] of weights) {
      if (r < w) {
        kind = k;
        break;
      }
      r -= w;
    }
    if (n === 0 && kind !== 'createBig' && kind !== 'moveIn') kind = 'create';
    switch (kind) {
      case 'create': {
        const rel = `${this.someDir()}/${this.fileName()}`;
        this.writeNow(this.abs(rel), seededBytes(this.rng, this.smallSize()));
        this.files.set(rel, { big: false });
        this.figures.created++;
        return;
      }
      case 'createBig': {
        const rel = `${this.someDir()}/big-${++this.counter}.bin`;
        mkdirSync(dirname(this.abs(rel)), { recursive: true });
        this.files.set(rel, { big: true });
        await this.writeSlowly(this.abs(rel), seededBytes(this.rng, this.bigSize()));
        this.figures.created++;
        this.figures.createdBig++;
        return;
      }
      case 'rewrite': {
        const rel = this.pick([...this.files.keys()]);
        const big = this.files.get(rel)!.big;
        const body = seededBytes(this.rng, big ? this.bigSize() : this.smallSize());
        if (this.rng() < 0.5) {
          // replace by rename, as editors and checkpoint writers do
          const temp = join(dirname(this.abs(rel)), `.${++this.counter}.partial`);
          writeFileSync(temp, body);
          this.figures.bytesWritten += body.length;
          renameSync(temp, this.abs(rel));
        } else if (big) await this.writeSlowly(this.abs(rel), body);
        else this.writeNow(this.abs(rel), body);
        this.figures.rewritten++;
        return;
      }
      case 'append': {
        const rel = this.pick([...this.files.keys()]);
        const body = seededBytes(this.rng, 1 + Math.floor(this.rng() * 4096));
        appendFileSync(this.abs(rel), body);
        this.figures.bytesWritten += body.length;
        this.figures.appended++;
        return;
      }
      case 'delete': {
        const rel = this.pick([...this.files.keys()]);
        unlinkSync(this.abs(rel));
        this.files.delete(rel);
        this.figures.deleted++;
        return;
      }
      case 'deleteFolder': {
        const dirs = this.dirs().filter((d) => this.filesUnder(d).length <= 80);
        if (dirs.length === 0) return;
        const dir = this.pick(dirs);
        const inside = this.filesUnder(dir);
        rmSync(this.abs(dir), { recursive: true, force: true });
        for (const p of inside) this.files.delete(p);
        this.figures.foldersDeleted++;
        this.figures.filesInDeletedFolders += inside.length;
        return;
      }
      case 'rename': {
        const rel = this.pick([...this.files.keys()]);
        const ext = rel.endsWith('.bin') ? '.bin' : '.txt';
        const to = `${this.rng() < 0.5 ? dirname(rel) : this.someDir()}/r${++this.counter}${ext}`;
        mkdirSync(dirname(this.abs(to)), { recursive: true });
        renameSync(this.abs(rel), this.abs(to));
        this.files.set(to, this.files.get(rel)!);
        this.files.delete(rel);
        this.figures.renamed++;
        return;
      }
      case 'renameFolder': {
        const dirs = this.dirs();
        if (dirs.length === 0) return;
        const dir = this.pick(dirs);
        const parent = dirname(dir);
        const to = `${parent === '.' ? '' : `${parent}/`}n${++this.counter}`;
        renameSync(this.abs(dir), this.abs(to));
        for (const p of this.filesUnder(dir)) {
          this.files.set(to + p.slice(dir.length), this.files.get(p)!);
          this.files.delete(p);
        }
        this.figures.foldersRenamed++;
        return;
      }
      case 'moveIn': {
        // a folder that arrives whole (its contents are not reported one by one by inotify)
        const name = `m${++this.counter}`;
        const built = join(this.outside, name);
        const count = 3 + Math.floor(this.rng() * 20);
        const made: string[] = [];
        for (let i = 0; i < count; i++) {
          const rel = `${i % 4 === 0 ? 'sub/' : ''}${this.fileName()}`;
          this.writeNow(join(built, rel), seededBytes(this.rng, this.smallSize()));
          made.push(rel);
        }
        const parent = this.rng() < 0.5 && this.dirs().length > 0 ? `${this.pick(this.dirs())}/` : '';
        mkdirSync(this.abs(parent || '.'), { recursive: true });
        renameSync(built, this.abs(parent + name));
        for (const rel of made) this.files.set(`${parent}${name}/${rel}`, { big: false });
        this.figures.foldersMovedIn++;
        this.figures.filesMovedIn += count;
        return;
      }
    }
  }

  private filesUnder(dir: string): string[] {
    return [...this.files.keys()].filter((p) => p.startsWith(dir + '/'));
  }
}

/** LocalEntry is one workspace path as the comparison sees it: a file, or an empty folder (key ending in '/'). */
interface LocalEntry {
  type: 'file' | 'dir';
  size: number;
  mtimeMs: number;
  sha256: string;
  xxh64: string;
}

/** readWorkspace walks the workspace (without .swm/): every file with its hashes, every empty folder as `path/`. */
async function readWorkspace(root: string): Promise<Map<string, LocalEntry>> {
  const out = new Map<string, LocalEntry>();
  const walk = async (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      if (path === '.swm') continue;
      const st = lstatSync(join(root, path));
      if (st.isDirectory()) {
        if (readdirSync(join(root, path)).length === 0) out.set(`${path}/`, { type: 'dir', size: 0, mtimeMs: 0, sha256: '', xxh64: '' });
        else await walk(path);
      } else {
        const body = readFileSync(join(root, path));
        out.set(path, {
          type: 'file',
          size: body.length,
          mtimeMs: Math.floor(st.mtimeMs),
          sha256: createHash('sha256').update(body).digest('hex'),
          xxh64: await hash64(body),
        });
      }
    }
  };
  await walk('');
  return out;
}

/** RemoteEntry is one object under the dest, read straight from MinIO. */
interface RemoteEntry {
  size: number;
  sha256: string;
  /** xxh64 of the bytes, computed here. */
  xxh64: string;
  meta: Record<string, string>;
}

/** readBucket lists and reads every object under dest with the raw SDK (8 reads at a time). */
async function readBucket(client: S3Client, bucket: string, dest: string): Promise<Map<string, RemoteEntry>> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: dest, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const out = new Map<string, RemoteEntry>();
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const body = Buffer.from(await r.Body!.transformToByteArray());
      out.set(key.slice(dest.length), {
        size: body.length,
        sha256: createHash('sha256').update(body).digest('hex'),
        xxh64: await hash64(body),
        meta: r.Metadata ?? {},
      });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return out;
}

/** Differences are what keeps the bucket from equalling the workspace (each a list of paths), plus informational mtime drift. */
interface Differences {
  /** files with no object. */
  missing: string[];
  /** objects of no workspace file or empty folder (stale folder markers left out). */
  extra: string[];
  /** empty folders with no `path/` marker object (SPEC §6: empty folders are preserved). */
  missingMarkers: string[];
  /**
   * informational: markers of folders that exist but are no longer empty. A pull recreates the same tree from them, and a
   * plain push leaves them too (it never deletes without --delete), so they are reported, not failed.
   */
  staleMarkers: string[];
  content: string[];
  hashMeta: string[];
  typeMeta: string[];
  /** informational: the object's swm-mtime is not the file's mtime (contents equal). */
  mtime: string[];
}

function compareTrees(local: Map<string, LocalEntry>, remote: Map<string, RemoteEntry>): Differences {
  const d: Differences = { missing: [], extra: [], missingMarkers: [], staleMarkers: [], content: [], hashMeta: [], typeMeta: [], mtime: [] };
  const nonEmptyFolders = new Set<string>();
  for (const [path, l] of local) {
    if (l.type !== 'file') continue;
    for (let at = path.indexOf('/'); at >= 0; at = path.indexOf('/', at + 1)) nonEmptyFolders.add(path.slice(0, at + 1));
  }
  for (const [path, l] of local) {
    const r = remote.get(path);
    if (!r) {
      (l.type === 'dir' ? d.missingMarkers : d.missing).push(path);
      continue;
    }
    if (r.meta['swm-type'] !== l.type) d.typeMeta.push(`${path} (swm-type ${r.meta['swm-type']})`);
    if (l.type === 'dir') continue;
    if (r.sha256 !== l.sha256) d.content.push(`${path} (local ${l.size} B, remote ${r.size} B)`);
    // the metadata must name the content the object holds, and that must be the file's
    if (r.meta['swm-hash'] !== r.xxh64 || r.meta['swm-hash'] !== l.xxh64) d.hashMeta.push(`${path} (swm-hash ${r.meta['swm-hash']}, object ${r.xxh64}, file ${l.xxh64})`);
    if (r.sha256 === l.sha256 && r.meta['swm-mtime'] !== String(l.mtimeMs)) d.mtime.push(`${path} (swm-mtime ${r.meta['swm-mtime']}, file ${l.mtimeMs})`);
  }
  for (const path of remote.keys()) {
    if (local.has(path)) continue;
    (path.endsWith('/') && nonEmptyFolders.has(path) ? d.staleMarkers : d.extra).push(path);
  }
  for (const list of Object.values(d)) list.sort(compareKeys);
  return d;
}

/** CycleLine is one `cycle …` line of daemon.log. */
interface CycleLine {
  endedAt: number;
  startedAt: number;
  result: string;
  files: number;
  bytes: number;
  idle: boolean;
  text: string;
}

const CYCLE_LINE = /^(\S+) cycle (\w+): (\d+) files, (\d+) bytes in ([\d.]+)s \((.*)$/;

/** daemonLogLines reads daemon.log (after its rotated generation, if any). */
function daemonLogLines(ws: string): string[] {
  const lines: string[] = [];
  for (const f of ['daemon.log.1', 'daemon.log']) {
    const p = join(ws, '.swm', f);
    if (existsSync(p)) lines.push(...readFileSync(p, 'utf8').split('\n').filter((l) => l.length > 0));
  }
  return lines;
}

function cycleLines(lines: readonly string[]): CycleLine[] {
  const out: CycleLine[] = [];
  for (const text of lines) {
    const m = CYCLE_LINE.exec(text);
    if (!m) continue;
    const endedAt = Date.parse(m[1]!);
    out.push({
      endedAt,
      startedAt: endedAt - Number(m[5]) * 1000,
      result: m[2]!,
      files: Number(m[3]),
      bytes: Number(m[4]),
      idle: m[2] === 'ok' && m[6]!.startsWith('nothing changed)'),
      text,
    });
  }
  return out;
}

const fmtBytes = (n: number) => (n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

describe('soak: auto -i 2 under a changing workspace and a faulty network', () => {
  let server: S3Server;
  let proxy: FaultProxy;
  let direct: S3Client;
  let root: string;
  let ws: string;
  let env: Record<string, string>;
  let target: string[];
  let passed = false;
  const dest = `soak/${SEED}/`;

  const swm = (args: string[], timeoutMs = 120_000) => runSwm(args, env, ws, timeoutMs);

  beforeAll(async () => {
    ensureBuilt();
    server = await startS3Server({ bucket: 'swm-soak' });
    proxy = await startFaultProxy(server.endpoint);
    direct = new S3Client({
      endpoint: server.endpoint,
      region: server.region,
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    root = realpathSync(mkdtempSync(join(tmpdir(), 'swm-soak-')));
    ws = join(root, 'ws');
    mkdirSync(ws);
    mkdirSync(join(root, 'outside'));
    env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: join(root, 'home'),
      XDG_CONFIG_HOME: join(root, 'home/.config'),
      XDG_DATA_HOME: join(root, 'home/.local/share'),
      XDG_STATE_HOME: join(root, 'home/.local/state'),
      XDG_CACHE_HOME: join(root, 'home/.cache'),
      LANG: 'C.UTF-8',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_REGION: server.region,
      AWS_ENDPOINT_URL: proxy.url,
      SWM_S3_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
    };
    mkdirSync(env.XDG_CONFIG_HOME!, { recursive: true });
    target = ['soak', ws, '-b', `s3:${server.bucket}`, '-d', dest];
  });

  afterAll(async () => {
    // stop what this test started: the daemon and the watcher by their own commands, then anything left by pid
    if (ws && existsSync(join(ws, '.swm'))) {
      await runSwm(['auto', ...target, '--stop'], env, ws, 30_000).catch(() => undefined);
      await runSwm(['watch', ...target, '--stop'], env, ws, 30_000).catch(() => undefined);
    }
    if (root) {
      for (let round = 0; round < 50; round++) {
        const left = processesUnder(root);
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
    }
    direct?.destroy();
    await proxy?.close();
    await server?.stop();
    if (root) {
      if (passed || !process.env.SOAK_KEEP) rmSync(root, { recursive: true, force: true });
      else console.log(`soak: kept ${root} for inspection (SOAK_KEEP)`);
    }
  });

  it(`keeps the bucket equal to the workspace over ${SOAK_MINUTES} minutes of changes with ${FAULT_RATE * 100}% of requests faulted`, async () => {
    const rng = mulberry32(SEED);
    const writer = new SoakWriter(ws, join(root, 'outside'), rng);
    writer.seed(INITIAL_FILES);
    proxy.setScript({ seed: SEED, rate: FAULT_RATE, kinds: ALL_FAULT_KINDS, stallMs: STALL_MS });

    // the first push goes through the faults too: repeat it until it succeeds
    let pushAttempts = 0;
    for (;;) {
      pushAttempts++;
      const r = await swm(['push', ...target, '--json'], 600_000);
      if (r.code === 0) break;
      if (pushAttempts >= 10) throw new Error(`the first push failed ${pushAttempts} times; last: ${r.stderr}`);
    }
    let r = await swm(['watch', ...target, '--json']);
    expect(r.code, r.stderr).toBe(0);
    r = await swm(['auto', ...target, '-i', String(INTERVAL_SECONDS), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const daemonPid = r.json.find((j) => j.type === 'auto')?.pid as number;
    expect(daemonPid).toBeGreaterThan(0);

    // the writer
    const writerStarted = Date.now();
    const writeUntil = writerStarted + SOAK_MINUTES * 60_000;
    let bursts = 0;
    while (Date.now() < writeUntil) {
      await writer.step();
      if (rng() < 0.04) {
        bursts++;
        const burst = 10 + Math.floor(rng() * 30);
        for (let i = 0; i < burst && Date.now() < writeUntil; i++) await writer.step();
      }
      await sleep(50 + Math.floor(rng() * 350));
    }
    const writerStopped = Date.now();

    // catch-up: two consecutive idle cycles that both started after the writer stopped
    let caughtUpAt: number | undefined;
    let daemonDied = false;
    const catchUpDeadline = writerStopped + CATCH_UP_TIMEOUT_MS;
    while (Date.now() < catchUpDeadline) {
      const after = cycleLines(daemonLogLines(ws)).filter((c) => c.startedAt > writerStopped);
      const [a, b] = after.slice(-2);
      if (a?.idle && b?.idle) {
        caughtUpAt = a.startedAt;
        break;
      }
      try {
        process.kill(daemonPid, 0);
      } catch {
        daemonDied = true;
        break;
      }
      await sleep(1000);
    }

    const status = await swm(['auto', ...target, '--status', '--json']);
    const report = (status.json[0] ?? {}) as { running?: boolean; pid?: number; totals?: { cycles: number; files: number; bytes: number; errors: number } };
    const faultsWhileRunning = { ...proxy.counts, byKind: { ...proxy.counts.byKind } };
    proxy.clearFaults();
    const stopAuto = await swm(['auto', ...target, '--stop']);
    const stopWatch = await swm(['watch', ...target, '--stop']);
    const leftover = processesUnder(root);

    // the comparison, straight from MinIO
    const local = await readWorkspace(ws);
    const remote = await readBucket(direct, server.bucket, dest);
    const diff = compareTrees(local, remote);

    const logLines = daemonLogLines(ws);
    const cycles = cycleLines(logLines);
    const byResult = new Map<string, number>();
    for (const c of cycles) byResult.set(c.result, (byResult.get(c.result) ?? 0) + 1);
    const warnings = logLines.filter((l) => / warning: /.test(l));
    const fatal = logLines.filter((l) => / fatal: /.test(l));
    const fullPushes = logLines.filter((l) => / full push: /.test(l));
    const watcherStarts = logLines.filter((l) => / watcher (started|restarted) /.test(l));
    const watcherLog = existsSync(join(ws, '.swm/watcher.log')) ? readFileSync(join(ws, '.swm/watcher.log'), 'utf8').split('\n') : [];
    const watcherGaps = watcherLog.filter((l) => / gap: /.test(l));
    const watcherTrouble = watcherLog.filter((l) => /error|failed|could not|fatal|stopping/i.test(l));
    const files = [...local.values()].filter((e) => e.type === 'file');
    const mismatches = diff.missing.length + diff.extra.length + diff.missingMarkers.length + diff.content.length + diff.hashMeta.length + diff.typeMeta.length;
    const result = mismatches === 0 && caughtUpAt !== undefined && !daemonDied && leftover.length === 0 ? 'PASS' : 'FAIL';
    const w = writer.figures;
    const rows: [string, string | number][] = [
      ['minutes run (writer)', ((writerStopped - writerStarted) / 60_000).toFixed(2)],
      ['seed', SEED],
      ['first push attempts', pushAttempts],
      ['writer steps (bursts)', `${w.ops} (${bursts})`],
      ['files created (of them big)', `${w.created} (${w.createdBig})`],
      ['files rewritten / appended', `${w.rewritten} / ${w.appended}`],
      ['files deleted (single / in folders)', `${w.deleted + w.filesInDeletedFolders} (${w.deleted} / ${w.filesInDeletedFolders})`],
      ['folders deleted', w.foldersDeleted],
      ['files renamed / folders renamed', `${w.renamed} / ${w.foldersRenamed}`],
      ['folders moved in whole (files)', `${w.foldersMovedIn} (${w.filesMovedIn})`],
      ['log appends', w.logAppends],
      ['bytes written', fmtBytes(w.bytesWritten)],
      ['daemon cycles (totals)', report.totals?.cycles ?? '?'],
      ['cycles by result (log)', [...byResult].map(([k, v]) => `${k} ${v}`).join(', ')],
      ['files moved by daemon / bytes', `${report.totals?.files ?? '?'} / ${fmtBytes(report.totals?.bytes ?? 0)}`],
      ['daemon error cycles', report.totals?.errors ?? '?'],
      ['daemon warnings / fatal', `${warnings.length} / ${fatal.length}`],
      ['full (non-journal) pushes', fullPushes.length],
      ['watcher (re)starts by daemon', watcherStarts.length],
      ['watcher gaps (resubscribed, reconciled)', watcherGaps.length],
      ['watcher errors (log)', watcherTrouble.length],
      ['daemon pid unchanged', report.pid === daemonPid ? 'yes' : `no (${report.pid ?? 'not running'})`],
      ['S3 requests through proxy (whole run)', faultsWhileRunning.requests],
      ['faults injected', faultsWhileRunning.injected],
      ...ALL_FAULT_KINDS.map((k): [string, number] => [`  ${k}`, faultsWhileRunning.byKind[k]]),
      ['catch-up (writer stop → first idle cycle)', caughtUpAt !== undefined ? `${((caughtUpAt - writerStopped) / 1000).toFixed(1)} s` : daemonDied ? 'daemon died' : 'timed out'],
      ['final files / bytes', `${files.length} / ${fmtBytes(files.reduce((s, f) => s + f.size, 0))}`],
      ['final empty folders', local.size - files.length],
      ['objects in bucket', remote.size],
      ['files missing / extra objects', `${diff.missing.length} / ${diff.extra.length}`],
      ['empty folders without marker', diff.missingMarkers.length],
      ['stale folder markers (info)', diff.staleMarkers.length],
      ['content / swm-hash / swm-type mismatches', `${diff.content.length} / ${diff.hashMeta.length} / ${diff.typeMeta.length}`],
      ['swm-mtime drift (info)', diff.mtime.length],
      ['processes left after stop', leftover.length],
      ['result', result],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    const table = rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n');
    const show = (title: string, list: string[]) => (list.length ? `\n${title} (${list.length}):\n    ${list.slice(0, 20).join('\n    ')}` : '');
    console.log(
      `\nswm soak figures\n${table}` +
        show('missing from the bucket', diff.missing) +
        show('extra in the bucket', diff.extra) +
        show('empty folders without a marker object', diff.missingMarkers) +
        show('markers of folders no longer empty', diff.staleMarkers) +
        show('content differs', diff.content) +
        show('swm-hash inconsistent', diff.hashMeta) +
        show('swm-type wrong', diff.typeMeta) +
        show('swm-mtime drift', diff.mtime) +
        show('daemon warnings', warnings) +
        show('error cycles', cycles.filter((c) => c.result !== 'ok').map((c) => c.text)) +
        show('full pushes', fullPushes) +
        show('watcher gaps', watcherGaps) +
        show('watcher errors', watcherTrouble) +
        (result === 'PASS' ? '' : `\ndaemon log tail:\n    ${logLines.slice(-25).join('\n    ')}`),
    );

    expect(stopAuto.code, stopAuto.stderr).toBe(0);
    expect(stopWatch.code, stopWatch.stderr).toBe(0);
    expect(leftover).toEqual([]);
    expect(daemonDied).toBe(false);
    expect(caughtUpAt, 'the daemon caught up (two idle cycles after the writer stopped)').toBeDefined();
    expect(diff.missing).toEqual([]);
    expect(diff.extra).toEqual([]);
    expect(diff.missingMarkers).toEqual([]);
    expect(diff.content).toEqual([]);
    expect(diff.hashMeta).toEqual([]);
    expect(diff.typeMeta).toEqual([]);
    expect(files.length).toBeGreaterThan(0);
    passed = true;
  });
});
