// Stage: move bytes. Upload a local entry (hashed and torn-checked in the same read), download an object (verified, temp + rename), delete a local file.
import { createReadStream, createWriteStream, mkdirSync, realpathSync, symlinkSync, renameSync, unlinkSync, chmodSync, utimesSync, lstatSync, fstatSync, openSync, closeSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import type { Storage } from '../storage/types.js';
import type { StateEntry } from '../state/store.js';
import { tempPathFor } from '../state/atomic.js';
import { errnoCode, failure, SwmError, ExitCode } from '../errors.js';
import { readAndHash, hashBytes, xxh, hex64, ChangedWhileReading } from './hash.js';
import { metaFor, type RemoteEntry } from './remote.js';
import { statLocal, type LocalEntry } from './scan.js';
import { sameStat, stateOf } from './plan.js';
import type { ProgressSink } from './progress.js';

export interface TransferContext {
  root: string;
  storage: Storage;
  dest: string;
  progress: ProgressSink;
  signal?: AbortSignal;
}

/** UploadOutcome: uploaded (new state), unchanged content (state refresh only), or unstable (changed while read: next time). */
export type UploadOutcome =
  | { kind: 'uploaded'; entry: StateEntry; bytes: number }
  | { kind: 'unchanged'; entry: StateEntry }
  | { kind: 'unstable'; path: string };

/**
 * uploadEntry reads a local entry once (hash + body for small files; hash pass then streamed body for big ones),
 * skips the upload when the content equals `base`, and never stores a file whose size or mtime moved while read.
 */
export async function uploadEntry(local: LocalEntry, base: StateEntry | undefined, ctx: TransferContext): Promise<UploadOutcome> {
  const key = ctx.dest + local.path;
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
    return { kind: 'unchanged', entry: { ...stateOf(local, hash), etag: base.etag } };
  }
  const meta = metaFor(local, hash);
  const onProgress = (bytes: number) => ctx.progress.next({ type: 'bytes', path: local.path, bytes, total: local.size });
  if (body) {
    const { etag } = await ctx.storage.put(key, body, { size: body.length, meta, signal: ctx.signal, onProgress });
    return { kind: 'uploaded', entry: { ...stateOf(local, hash), etag }, bytes: body.length };
  }
  // big file: stream it, then check nothing moved while it was sent
  const fd = openSync(abs, 'r');
  try {
    const stream = createReadStream('', { fd, autoClose: false, highWaterMark: 1 << 20 });
    const { etag } = await ctx.storage.put(key, stream, { size: local.size, meta, signal: ctx.signal, onProgress });
    const after = fstatSync(fd);
    if (after.size !== local.size || Math.floor(after.mtimeMs) !== local.mtimeMs) return { kind: 'unstable', path: local.path };
    return { kind: 'uploaded', entry: { ...stateOf(local, hash), etag }, bytes: local.size };
  } finally {
    closeSync(fd);
  }
}

/** insideWorkspace checks that a folder resolves (symlinks followed) inside the workspace, so nothing is written through a link out. */
function assertInsideWorkspace(root: string, dir: string, path: string): void {
  const realRoot = realpathSync(root);
  const real = realpathSync(dir);
  if (real !== realRoot && !real.startsWith(realRoot + '/')) {
    throw new SwmError(ExitCode.usage, `refusing to write ${path}: its folder resolves outside the workspace (through a symlink)`);
  }
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
 * downloadEntry writes one remote object into the workspace: to a temp name in the same folder, verified against the
 * object's xxh64, mode and mtime restored, then renamed into place — readers never see a partial file.
 */
export async function downloadEntry(remote: RemoteEntry, expectedLocal: LocalEntry | undefined, ctx: TransferContext, overwrite: boolean): Promise<DownloadOutcome> {
  const { path } = remote;
  if (path.endsWith('/')) {
    const rel = path.slice(0, -1);
    ensureFolder(ctx.root, rel, path);
    const st = lstatSync(join(ctx.root, rel));
    return { kind: 'downloaded', entry: { path, type: 'dir', size: 0, mtimeMs: Math.floor(st.mtimeMs), mode: st.mode & 0o7777, hash: await hashBytes(''), etag: remote.info.etag }, bytes: 0 };
  }
  const slash = path.lastIndexOf('/');
  const folder = ensureFolder(ctx.root, slash < 0 ? '' : path.slice(0, slash), path);
  const target = join(ctx.root, path);
  const { info, body } = await ctx.storage.get(ctx.dest + path);
  const meta = info.meta ?? {};
  const tmp = tempPathFor(target);
  const h = (await xxh()).create64();
  let bytes = 0;
  try {
    if (meta.type === 'symlink') {
      const chunks: Buffer[] = [];
      for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
      const linkTarget = Buffer.concat(chunks);
      h.update(linkTarget);
      bytes = linkTarget.length;
      verifyHash(path, meta.hash, hex64(h.digest()));
      symlinkSync(linkTarget.toString(), tmp);
    } else {
      const hashing = new Transform({
        transform(chunk: Buffer, _enc, done) {
          h.update(chunk);
          bytes += chunk.length;
          ctx.progress.next({ type: 'bytes', path, bytes, total: info.size });
          done(null, chunk);
        },
      });
      await pipeline(body, hashing, createWriteStream(tmp, { mode: 0o600, highWaterMark: 1 << 20 }), { signal: ctx.signal });
      verifyHash(path, meta.hash, hex64(h.digest()));
      chmodSync(tmp, (meta.mode ?? 0o644) & 0o777);
      if (meta.mtimeMs !== undefined) setMtimeMs(tmp, meta.mtimeMs);
    }
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
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* never created or already renamed */ }
    if (errnoCode(e) === 'ENOSPC') throw failure(`disk full while writing ${path}: free space and pull again (nothing partial was left)`, e);
    throw e;
  }
  const written = statLocal(ctx.root, path)!;
  return { kind: 'downloaded', entry: { ...stateOf(written, meta.hash ?? hex64(h.digest())), etag: info.etag }, bytes };
}

/**
 * setMtimeMs sets a file's mtime so that it reads back as exactly `ms` whole milliseconds: utimes takes float seconds,
 * and 1.7e9 s in a double carries ~0.2 µs of error, which can floor to the millisecond below; +0.1 ms absorbs it.
 */
export function setMtimeMs(path: string, ms: number): void {
  const seconds = (ms + 0.1) / 1000;
  utimesSync(path, seconds, seconds);
}

function verifyHash(path: string, expected: string | undefined, actual: string): void {
  if (expected !== undefined && expected !== actual) {
    throw failure(`${path}: downloaded content does not match its xxh64 (${actual} ≠ ${expected}); the object is corrupt or was changed behind swm's back, nothing written`);
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
