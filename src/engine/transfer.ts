// Stage: move bytes. Upload a local entry (hashed and torn-checked in the same read), download an object (verified, temp + rename), delete a local file.
import { open as openCallback, createReadStream, createWriteStream, writeSync, mkdirSync, realpathSync, symlinkSync, renameSync, unlinkSync, chmodSync, utimesSync, futimesSync, fchmodSync, fstatSync, lstatSync, openSync, closeSync, rmdirSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pipeline as pipeStreams, Transform, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ObjectInfo, Storage } from '../storage/types.js';
import type { StateEntry } from '../state/store.js';
import { tempPathFor } from '../state/atomic.js';
import { errnoCode, failure, isSwmError, SwmError, ExitCode } from '../errors.js';
import { readAndHash, hashBytes, xxh, hex64, ChangedWhileReading, SMALL_FILE_BYTES } from './hash.js';
import { metaFor, type RemoteEntry } from './remote.js';
import { statLocal, type LocalEntry } from './scan.js';
import { remoteSeen, sameStat, stateOf } from './plan.js';
import type { ProgressSink } from './progress.js';
import type { ResumableUploads } from './resumable-upload.js';

export interface TransferContext {
  root: string;
  storage: Storage;
  dest: string;
  progress: ProgressSink;
  signal?: AbortSignal;
  /** resume records of this target (push on a storage that can resume): big files go through resumable multipart uploads. */
  uploads?: ResumableUploads;
  /** called with (path, hash) right before an object is written (state/intents.ts: a crash then leaves a trace of it). */
  onUploadIntent?: (path: string, hash: string) => void;
}

/**
 * UploadOutcome: uploaded (new state; `bytes` sent now, `resumed` bytes stored by an interrupted earlier run and not sent
 * again), unchanged content (state refresh only), or unstable (changed while read: next time).
 */
export type UploadOutcome =
  | { kind: 'uploaded'; entry: StateEntry; bytes: number; resumed?: number }
  | { kind: 'unchanged'; entry: StateEntry }
  | { kind: 'unstable'; path: string };

/**
 * uploadEntry reads a local entry once (hash + body for small files; hash pass then streamed body for big ones),
 * skips the upload when the content equals `base`, and never stores a file whose size or mtime moved while read.
 */
export async function uploadEntry(local: LocalEntry, base: StateEntry | undefined, ctx: TransferContext): Promise<UploadOutcome> {
  const key = ctx.dest + local.path;
  assertKeyFits(key);
  const abs = join(ctx.root, local.path);
  let hash: string;
  let body: Buffer | undefined;
  if (local.type === 'file') {
    try {
      const read = await readAndHash(abs, local, true);
      hash = read.hash;
      body = read.data;
    } catch (e) {
      if (e instanceof ChangedWhileReading || errnoCode(e) === 'ENOENT') return { kind: 'unstable', path: local.path };
      throw e;
    }
  } else {
    body = Buffer.from(local.type === 'symlink' ? (local.target ?? '') : '');
    hash = await hashBytes(body);
  }
  if (base && base.hash === hash && base.mode === local.mode && base.type === local.type && base.target === local.target) {
    return { kind: 'unchanged', entry: { ...stateOf(local, hash), etag: base.etag, ...(base.remoteTime !== undefined ? { remoteTime: base.remoteTime } : {}) } };
  }
  ctx.onUploadIntent?.(local.path, hash);
  if (!base || base.hash !== hash || base.etag === '') return sendObject(local, hash, key, abs, body, ctx);
  // same content, other metadata (a chmod): on S3 the ETag digests the content only, so other workspaces see the rewrite
  // by its LastModified, which has whole seconds. Rewrite until it lands in another second than the object it replaces.
  const before = await ctx.storage.head(key);
  for (let attempt = 1; ; attempt++) {
    const sent = await sendObject(local, hash, key, abs, body, ctx);
    if (sent.kind !== 'uploaded' || before?.lastModified === undefined || sent.entry.etag !== before.etag) return sent;
    const after = await ctx.storage.head(key);
    const sameSecond = after?.etag === before.etag && after.lastModified !== undefined &&
      Math.floor(after.lastModified / 1000) === Math.floor(before.lastModified / 1000);
    if (!sameSecond || attempt === REWRITE_ATTEMPTS) return sent;
    await sleep(1000, undefined, { signal: ctx.signal });
  }
}

/** REWRITE_ATTEMPTS bounds how often a metadata-only rewrite is repeated to move its LastModified into a new second. */
const REWRITE_ATTEMPTS = 4;

/** sendObject writes one local entry's object: a small body in one put, a big file resumably or streamed and re-checked. */
async function sendObject(local: LocalEntry, hash: string, key: string, abs: string, body: Buffer | undefined, ctx: TransferContext): Promise<UploadOutcome> {
  const meta = metaFor(local, hash);
  const onProgress = (bytes: number) => ctx.progress.next({ type: 'bytes', path: local.path, bytes, total: local.size });
  if (body) {
    const { etag } = await ctx.storage.put(key, body, { size: body.length, meta, signal: ctx.signal, onProgress });
    return { kind: 'uploaded', entry: { ...stateOf(local, hash), etag }, bytes: body.length };
  }
  if (ctx.uploads?.applies(local.size)) {
    // resumable multipart upload: continues the parts an interrupted push left, checks the bytes against the hash as it reads
    const out = await ctx.uploads.upload(
      { key, abs, size: local.size, mtimeMs: local.mtimeMs, mode: local.mode, hash, meta },
      { signal: ctx.signal, onProgress },
    );
    if (out.kind === 'changed') return { kind: 'unstable', path: local.path };
    return { kind: 'uploaded', entry: { ...stateOf(local, hash), etag: out.etag }, bytes: out.sent, resumed: out.resumed };
  }
  // big file: stream exactly the bytes that were hashed, checking on the way that they still hash the same. A file changed
  // since the hash pass fails its body before the end, and the backends store nothing whose body did not end cleanly: the
  // object never holds bytes other than the ones its swm-hash names (the old version stays until the next try)
  const fd = openSync(abs, 'r');
  const check = contentCheck(abs, hash, await xxh());
  try {
    const stream = createReadStream('', { fd, autoClose: false, start: 0, end: local.size - 1, highWaterMark: 1 << 20 });
    let etag: string;
    try {
      ({ etag } = await ctx.storage.put(key, pipeStreams(stream, check.stream, () => {}), { size: local.size, meta, signal: ctx.signal, onProgress }));
    } catch (e) {
      if (check.mismatch()) return { kind: 'unstable', path: local.path };
      throw e;
    }
    return { kind: 'uploaded', entry: { ...stateOf(local, hash), etag }, bytes: local.size };
  } finally {
    closeSync(fd);
  }
}

/** contentCheck passes a file's bytes through, failing the stream at its end when they do not hash to `expected`. */
function contentCheck(path: string, expected: string, hasher: Awaited<ReturnType<typeof xxh>>): { stream: Transform; mismatch: () => boolean } {
  const h = hasher.create64();
  let mismatch = false;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      h.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      mismatch = hex64(h.digest()) !== expected;
      done(mismatch ? new ChangedWhileReading(path) : null);
    },
  });
  return { stream, mismatch: () => mismatch };
}

/** MAX_KEY_BYTES is S3's limit on an object key in UTF-8 bytes; every backend holds to it, so a workspace pushes alike everywhere. */
export const MAX_KEY_BYTES = 1024;

/** assertKeyFits refuses (exit 1, for this path only) a key longer than S3 accepts, before any byte is read or sent. */
function assertKeyFits(key: string): void {
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) {
    throw failure(`object key is ${bytes} bytes, over S3's limit of ${MAX_KEY_BYTES}: not uploaded; shorten the path or -d/--dest, or exclude it with -x`);
  }
}

/** realRoots: each workspace root resolved once per process (it is checked before every rename of a download). */
const realRoots = new Map<string, string>();

/**
 * assertInsideWorkspace checks that a folder resolves (symlinks followed) inside the workspace, so nothing is written
 * through a link out. The common case costs one lstat per level below the root: a chain of real folders is inside by
 * construction. Only a chain with a symlink (or a component gone meanwhile) is resolved with realpath and compared.
 */
function assertInsideWorkspace(root: string, dir: string, path: string): void {
  if (isChainOfFolders(root, dir)) return;
  let realRoot = realRoots.get(root);
  if (realRoot === undefined) realRoots.set(root, (realRoot = realpathSync.native(root)));
  // the native realpath: one libc call instead of Node's JavaScript walk with an lstat per path component
  const real = realpathSync.native(dir);
  if (real !== realRoot && !real.startsWith(realRoot + '/')) {
    throw new SwmError(ExitCode.usage, `refusing to write ${path}: its folder resolves outside the workspace (through a symlink)`);
  }
}

/** isChainOfFolders: dir is root or below it, and every component from root down to dir is a folder, not a symlink. */
function isChainOfFolders(root: string, dir: string): boolean {
  const base = join(root, '/');
  const abs = join(dir, '/');
  if (!abs.startsWith(base)) return false;
  let current = base.slice(0, -1);
  for (const part of abs.slice(base.length).split('/')) {
    if (part === '') continue;
    current += '/' + part;
    if (!lstatSync(current, { throwIfNoEntry: false })?.isDirectory()) return false;
  }
  return true;
}

function ensureFolder(root: string, relDir: string, path: string): string {
  const abs = join(root, relDir);
  // walk down so that an existing symlinked component is caught before anything is created through it
  let current = root;
  for (const part of relDir.split('/').filter(Boolean)) {
    current = join(current, part);
    let st;
    try {
      st = lstatSync(current);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
      mkdirSync(current);
      continue;
    }
    if (st.isSymbolicLink()) assertInsideWorkspace(root, current, path);
    else if (!st.isDirectory()) throw failure(`cannot write ${path}: ${relDir} exists locally and is not a folder`);
  }
  return abs;
}

function localStillAsPlanned(root: string, path: string, expected: LocalEntry | undefined): boolean {
  const now = statLocal(root, path);
  if (!expected) return now === undefined;
  if (!now) return false;
  return now.type === expected.type && now.size === expected.size && now.mtimeMs === expected.mtimeMs && now.mode === expected.mode && now.target === expected.target;
}

/** DownloadOutcome: written (new state) or skipped because the local file changed after it was compared (a conflict). */
export type DownloadOutcome =
  | { kind: 'downloaded'; entry: StateEntry; bytes: number }
  | { kind: 'changed-locally'; path: string };

/**
 * DOWNLOAD_ATTEMPTS bounds how often one object is fetched when its body breaks off, stalls or fails its xxh64: the SDK
 * retries a GET only until the headers arrive, so what goes wrong in the body is retried here (with jittered backoff).
 */
export const DOWNLOAD_ATTEMPTS = 5;

/** ContentMismatch: the bytes received do not hash to the object's swm-hash (a cut or corrupt body): retried, then reported. */
class ContentMismatch extends SwmError {}

/** retryableDownloadError: the body broke off (reset, truncated, idle timeout) or arrived corrupt; not a local or SDK-final failure. */
function retryableDownloadError(e: unknown): boolean {
  if (e instanceof ContentMismatch) return true;
  if (isSwmError(e)) return false; // already described by the storage layer, after its own retries
  const err = e as { name?: string; code?: string; message?: string; syscall?: string };
  if (err?.syscall !== undefined && err.syscall !== 'read') return false; // open/write/rename in the workspace: local
  return err?.name === 'TimeoutError' || err?.message === 'aborted' || ['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'ERR_STREAM_PREMATURE_CLOSE'].includes(err?.code ?? '');
}

/**
 * downloadEntry writes one remote object into the workspace: to a temp name in the same folder, verified against the
 * object's xxh64, mode and mtime restored, then renamed into place — readers never see a partial file. A body that
 * breaks off or fails its hash is fetched again (DOWNLOAD_ATTEMPTS in all); the temp file of a failed attempt is removed.
 */
export async function downloadEntry(remote: RemoteEntry, expectedLocal: LocalEntry | undefined, ctx: TransferContext, overwrite: boolean): Promise<DownloadOutcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await downloadOnce(remote, expectedLocal, ctx, overwrite);
    } catch (e) {
      if (ctx.signal?.aborted || !retryableDownloadError(e)) throw e;
      if (attempt >= DOWNLOAD_ATTEMPTS) {
        if (e instanceof ContentMismatch) throw e;
        throw failure(`download of ${remote.path} broke off ${attempt} times (last: ${(e as Error).message}); nothing partial was written, pull again`, e);
      }
      await sleep(Math.random() * Math.min(5_000, 200 * 2 ** attempt), undefined, ctx.signal ? { signal: ctx.signal } : undefined);
    }
  }
}

async function downloadOnce(remote: RemoteEntry, expectedLocal: LocalEntry | undefined, ctx: TransferContext, overwrite: boolean): Promise<DownloadOutcome> {
  const { path } = remote;
  if (path.endsWith('/')) {
    const rel = path.slice(0, -1);
    ensureFolder(ctx.root, rel, path);
    // the listing carries no metadata: read the folder's mode from the object, so a 0700 empty folder stays 0700
    const mode = (await ctx.storage.head(ctx.dest + path))?.meta?.mode;
    if (mode !== undefined) chmodSync(join(ctx.root, rel), mode & 0o7777);
    const st = lstatSync(join(ctx.root, rel));
    return { kind: 'downloaded', entry: { path, type: 'dir', size: 0, mtimeMs: Math.floor(st.mtimeMs), mode: st.mode & 0o7777, hash: await hashBytes(''), ...remoteSeen(remote.info) }, bytes: 0 };
  }
  const slash = path.lastIndexOf('/');
  const folder = ensureFolder(ctx.root, slash < 0 ? '' : path.slice(0, slash), path);
  const target = join(ctx.root, path);
  const tmp = tempPathFor(target);
  if (remote.info.size >= RANGED_DOWNLOAD_MIN) return downloadRanged(remote, expectedLocal, ctx, overwrite, { folder, target, tmp });
  const { info, body } = await ctx.storage.get(ctx.dest + path);
  const meta = info.meta ?? {};
  const hasher = await xxh();
  let bytes = 0;
  try {
    if (meta.type === 'symlink') {
      const linkTarget = await readWhole(body);
      const hash = hex64(hasher.h64Raw(linkTarget));
      bytes = linkTarget.length;
      verifyHash(path, meta.hash, hash);
      symlinkSync(linkTarget.toString(), tmp);
      return placeDownload(path, info, hash, bytes, expectedLocal, ctx, overwrite, { folder, target, tmp });
    }
    if (info.size <= SMALL_FILE_BYTES) {
      // small files: one buffer, hashed in one call, the temp file created on the threadpool (createExclusive) and the
      // rest done synchronously on its descriptor (write, mode, mtime, the stat for the state entry): the stream path
      // costs a threadpool hop per call, and with only 4 pool threads many small downloads queue behind each other
      // (NOTES.md). No 'bytes' event: 'done' follows in the same turn of the event loop.
      const data = await readWhole(body);
      if (data.length !== info.size) {
        throw new ContentMismatch(ExitCode.failed, `${path}: the download broke off (${data.length} of ${info.size} bytes); nothing written`);
      }
      const hash = hex64(hasher.h64Raw(data));
      verifyHash(path, meta.hash, hash);
      const written = writeWholeFile(await createExclusive(tmp), data, meta.mode, meta.mtimeMs, path);
      return placeDownload(path, info, hash, data.length, expectedLocal, ctx, overwrite, { folder, target, tmp }, written);
    }
    const h = hasher.create64();
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, done) {
        h.update(chunk);
        bytes += chunk.length;
        ctx.progress.next({ type: 'bytes', path, bytes, total: info.size });
        done(null, chunk);
      },
    });
    // opened here, not by the stream: its asynchronous open could create the file after a failed body's cleanup ran
    const out = createWriteStream(tmp, { fd: openSync(tmp, 'wx', 0o600), highWaterMark: 1 << 20 });
    await pipeline(body, hashing, out, { signal: ctx.signal });
    const hash = hex64(h.digest());
    verifyHash(path, meta.hash, hash);
    chmodSync(tmp, (meta.mode ?? 0o644) & 0o777);
    if (meta.mtimeMs !== undefined) setMtimeMs(tmp, meta.mtimeMs);
    return placeDownload(path, info, hash, bytes, expectedLocal, ctx, overwrite, { folder, target, tmp });
  } catch (e) {
    throw cleanedUp(e, tmp, path);
  }
}

/**
 * readWhole buffers a (small) response body. Listens to the stream's events instead of iterating it: an async iterator
 * costs a handful of promises per chunk, and a small body is one or two chunks. A body that breaks off rejects with the
 * stream's error (a reset, "aborted", an idle timeout), or as a premature close when the stream closes without one.
 */
function readWhole(body: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let ended = false;
    body.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
    });
    body.once('end', () => {
      ended = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
    });
    body.once('error', reject);
    body.once('close', () => {
      // before 'end' (and without an 'error' first, which already rejected): the body was cut without an error of its own
      if (!ended) reject(Object.assign(new Error('the response body closed before its end'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    });
  });
}

/**
 * createExclusive creates `tmp` (O_EXCL, 0600) on the libuv threadpool. The one asynchronous call of a small download:
 * creating a file is by far its costliest system call (allocating the inode: ~0.1–0.3 ms of kernel time here), and off
 * the main thread it overlaps with the HTTP work of the other downloads instead of adding to it.
 */
function createExclusive(tmp: string): Promise<number> {
  return new Promise((resolve, reject) => openCallback(tmp, 'wx', 0o600, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/**
 * writeWholeFile writes `data` to the new temp file `fd`, applies mode and mtime through the same descriptor, closes it
 * and returns the file as the state records it (from fstat, so it describes exactly the bytes written here).
 */
function writeWholeFile(fd: number, data: Buffer, mode: number | undefined, mtimeMs: number | undefined, path: string): LocalEntry {
  try {
    for (let at = 0; at < data.length; ) at += writeSync(fd, data, at);
    fchmodSync(fd, (mode ?? 0o644) & 0o777);
    if (mtimeMs !== undefined) {
      const seconds = mtimeSeconds(mtimeMs);
      futimesSync(fd, seconds, seconds);
    }
    const st = fstatSync(fd);
    return { path, type: 'file', size: st.size, mtimeMs: Math.floor(st.mtimeMs), mode: st.mode & 0o7777 };
  } finally {
    closeSync(fd);
  }
}

/** DownloadPaths: the folder (as ensureFolder checked it), the final path and the temp file of one download. */
interface DownloadPaths {
  folder: string;
  target: string;
  tmp: string;
}

/** placeDownload renames a verified temp file into place, unless the local file changed since it was compared. */
function placeDownload(
  path: string, info: ObjectInfo, hash: string, bytes: number, expectedLocal: LocalEntry | undefined, ctx: TransferContext, overwrite: boolean,
  { folder, target, tmp }: DownloadPaths,
  /** the temp file as written (writeWholeFile's fstat): spares the lstat after the rename. */
  written?: LocalEntry,
): DownloadOutcome {
  if (!overwrite && !localStillAsPlanned(ctx.root, path, expectedLocal)) {
    unlinkSync(tmp);
    return { kind: 'changed-locally', path };
  }
  assertInsideWorkspace(ctx.root, folder, path);
  try {
    renameSync(tmp, target);
  } catch (e) {
    // a folder (or an empty one) where a file must go: an empty folder may be replaced, anything else is reported
    if (errnoCode(e) === 'EISDIR' || errnoCode(e) === 'ENOTEMPTY' || errnoCode(e) === 'EEXIST') {
      if (overwrite || expectedLocal?.type === 'dir') {
        rmdirSync(target);
        renameSync(tmp, target);
      } else throw failure(`cannot write ${path}: a folder is in the way`);
    } else throw e;
  }
  const entry = written ?? statLocal(ctx.root, path)!;
  return { kind: 'downloaded', entry: { ...stateOf(entry, hash), ...remoteSeen(info) }, bytes };
}

/** cleanedUp removes a failed download's temp file and returns the error to throw (disk full said plainly). */
function cleanedUp(e: unknown, tmp: string, path: string): unknown {
  try { unlinkSync(tmp); } catch { /* never created or already renamed */ }
  if (errnoCode(e) === 'ENOSPC') return failure(`disk full while writing ${path}: free space and pull again (nothing partial was left)`, e);
  return e;
}

/** RANGED_DOWNLOAD_MIN: objects of at least this size are fetched as parallel ranged GETs (one stream tops out far below the link). */
export const RANGED_DOWNLOAD_MIN = 32 * 1024 * 1024;
/** RANGE_BYTES is the size of one ranged GET; RANGES_IN_FLIGHT of one file are fetched (and buffered) at once, 8 × 8 MiB. */
const RANGE_BYTES = 8 * 1024 * 1024;
const RANGES_IN_FLIGHT = 8;

/**
 * downloadRanged fetches a big object as parallel ranged GETs, each written in place into the temp file, hashed in
 * order as the parts complete (at most RANGES_IN_FLIGHT parts ahead of the hash), every part checked to come from the
 * same object version (etag) and to be whole. Then verified, restored and renamed like any download.
 */
async function downloadRanged(remote: RemoteEntry, expectedLocal: LocalEntry | undefined, ctx: TransferContext, overwrite: boolean, paths: DownloadPaths): Promise<DownloadOutcome> {
  const { path } = remote;
  const key = ctx.dest + path;
  const h = (await xxh()).create64();
  const file = await openFile(paths.tmp, 'wx', 0o600);
  let bytes = 0;
  // part buffers are reused: a fresh 8 MiB buffer per part costs page faults (system time) on every part
  const spare: Buffer[] = [];
  try {
    const fetchPart = async (start: number, end: number, version?: ObjectInfo) => {
      const { info, body } = await ctx.storage.get(key, { start, end });
      const buf = (spare.pop() ?? Buffer.allocUnsafe(RANGE_BYTES)).subarray(0, end - start);
      let got = 0;
      try {
        if (version && (info.etag !== version.etag || info.size !== version.size)) {
          throw new ContentMismatch(ExitCode.failed, `${path}: the object changed while it was downloaded; nothing written`);
        }
        for await (const chunk of body as AsyncIterable<Buffer>) {
          if (got + chunk.length > buf.length) throw new ContentMismatch(ExitCode.failed, `${path}: a ranged download returned more bytes than asked for; nothing written`);
          chunk.copy(buf, got);
          got += chunk.length;
        }
      } finally {
        body.destroy();
      }
      if (got !== buf.length) throw new ContentMismatch(ExitCode.failed, `${path}: the download broke off (${got} of ${buf.length} bytes of a part); nothing written`);
      await file.write(buf, 0, buf.length, start);
      return { info, buf };
    };
    // the first part tells the object's size and version; the rest are planned from it
    const first = await fetchPart(0, Math.min(RANGE_BYTES, remote.info.size));
    const { info } = first;
    const meta = info.meta ?? {};
    if (meta.type === 'symlink' || info.size < first.buf.length) {
      throw new ContentMismatch(ExitCode.failed, `${path}: the object changed while it was downloaded; nothing written`);
    }
    const starts: number[] = [];
    for (let at = first.buf.length; at < info.size; at += RANGE_BYTES) starts.push(at);
    const done = new Map<number, Buffer>();
    let hashedUpTo = 0; // parts hashed, in order: 0 = none
    const hashReady = (index: number, buf: Buffer) => {
      done.set(index, buf);
      for (let next = done.get(hashedUpTo); next !== undefined; next = done.get(hashedUpTo)) {
        done.delete(hashedUpTo);
        h.update(next);
        bytes += next.length;
        spare.push(Buffer.from(next.buffer, next.byteOffset, RANGE_BYTES));
        hashedUpTo++;
        ctx.progress.next({ type: 'bytes', path, bytes, total: info.size });
      }
    };
    hashReady(0, first.buf);
    let nextPart = 0;
    let failed: unknown;
    const advanced: (() => void)[] = [];
    const worker = async () => {
      while (failed === undefined && nextPart < starts.length) {
        const index = ++nextPart; // part 0 is the first; starts[i] is part i + 1
        // stay within RANGES_IN_FLIGHT of the hash, so at most that many parts are held in memory
        while (failed === undefined && index - hashedUpTo >= RANGES_IN_FLIGHT) await new Promise<void>((wake) => advanced.push(wake));
        if (failed !== undefined) return;
        const start = starts[index - 1]!;
        try {
          ctx.signal?.throwIfAborted();
          const part = await fetchPart(start, Math.min(start + RANGE_BYTES, info.size), info);
          hashReady(index, part.buf);
        } catch (e) {
          failed ??= e;
        }
        for (const wake of advanced.splice(0)) wake();
      }
    };
    await Promise.all(Array.from({ length: Math.min(RANGES_IN_FLIGHT, starts.length) }, worker));
    if (failed !== undefined) throw failed;
    await file.close();
    const hash = hex64(h.digest());
    verifyHash(path, meta.hash, hash);
    chmodSync(paths.tmp, (meta.mode ?? 0o644) & 0o777);
    if (meta.mtimeMs !== undefined) setMtimeMs(paths.tmp, meta.mtimeMs);
    return placeDownload(path, info, hash, bytes, expectedLocal, ctx, overwrite, paths);
  } catch (e) {
    await file.close().catch(() => {});
    throw cleanedUp(e, paths.tmp, path);
  }
}

/** setMtimeMs sets a file's mtime so that it reads back as exactly `ms` whole milliseconds (see mtimeSeconds). */
export function setMtimeMs(path: string, ms: number): void {
  const seconds = mtimeSeconds(ms);
  utimesSync(path, seconds, seconds);
}

/**
 * mtimeSeconds is the utimes argument for an mtime of `ms` whole milliseconds: utimes takes float seconds, and 1.7e9 s
 * in a double carries ~0.2 µs of error, which can floor to the millisecond below; +0.1 ms absorbs it.
 */
function mtimeSeconds(ms: number): number {
  return (ms + 0.1) / 1000;
}

function verifyHash(path: string, expected: string | undefined, actual: string): void {
  if (expected !== undefined && expected !== actual) {
    throw new ContentMismatch(ExitCode.failed, `${path}: downloaded content does not match its xxh64 (${actual} ≠ ${expected}); the object is corrupt or was changed behind swm's back, nothing written`);
  }
}

/** deleteLocalEntry removes a local file, symlink or empty folder — only if it is still exactly as compared. */
export function deleteLocalEntry(root: string, path: string, expected: LocalEntry): boolean {
  const now = statLocal(root, path);
  if (!now || !sameStat(now, { ...stateOf(expected, ''), etag: '' })) return false;
  const abs = join(root, path.endsWith('/') ? path.slice(0, -1) : path);
  if (expected.type === 'dir') {
    try { rmdirSync(abs); } catch (e) { if (errnoCode(e) === 'ENOTEMPTY') return false; throw e; }
  } else unlinkSync(abs);
  return true;
}
