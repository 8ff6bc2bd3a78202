// The embedded `file:` bucket: a local folder acting as an S3 bucket, with atomic writes and one metadata sidecar per object.
//
// Layout under <root>:
//   objects/                the key space; created on the first write
//     <seg>%/               the folder for the key prefix "seg/" (the trailing % keeps folders apart from objects,
//                           so `a` and `a/b` can both exist, as in S3)
//     <seg>                 the bytes of the object whose last key segment is seg: a plain file any tool can read
//     .<seg>%m              its sidecar: JSON {size, mtimeNs, meta} naming the exact data file version it describes
//     .<random>%t           a write in progress; renamed into place when complete, removed by abortStaleUploads if stale
// Segments are escaped so every key has exactly one path and no object name can look like a folder, sidecar or temp:
// "%" → "%25", NUL → "%00", "." → "%2E", ".." → "%2E%2E", "" → "%2F" (folder markers `dir/` and `a//b` keys).
//
// Consistency: the data file is renamed into place first (the commit point), its sidecar second. Every put stamps the
// data file with a fresh mtime strictly after the version it replaces, and the etag is that mtime (ns) plus the size.
// A sidecar counts only when its recorded size and mtime match the data file, so a reader that races a put (or finds
// what a crash between the two renames left) sees the object without meta, never with another version's meta.
import { randomBytes, randomInt } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  fstatSync,
  fsync,
  futimesSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  write,
  writeSync,
  type BigIntStats,
} from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import { errnoCode, failure, isSwmError } from '../errors.js';
import { compareKeys } from '../keys.js';
import { decodeMeta, encodeMeta } from './meta.js';
import { validateRange } from './range.js';
import { StorageError } from './storage-error.js';
import {
  INVALID_RANGE,
  NO_SUCH_KEY,
  PRECONDITION_FAILED,
  type ByteRange,
  type GetResult,
  type ObjectInfo,
  type PutOptions,
  type Storage,
} from './types.js';

/** FileStorageOptions: `create` makes check() and first use create a missing root folder (the embedded default bucket). */
export interface FileStorageOptions {
  create?: boolean;
}

/** OBJECTS_DIR is the folder under the bucket root that holds the key space. */
export const OBJECTS_DIR = 'objects';
const DIR_SUFFIX = '%';
const META_SUFFIX = '%m';
const TEMP_SUFFIX = '%t';
/** NAME_MAX is the longest file name (bytes) Linux file systems accept. */
const NAME_MAX = 255;
/** Buffers up to this size are written with one synchronous call (NOTES: sync I/O is 4–9× faster than the promise API for small files). */
const SYNC_WRITE_LIMIT = 1024 * 1024;
/** fsyncFd flushes a descriptor on the libuv pool: several puts' fsyncs overlap, where fsyncSync would serialize them. */
const fsyncFd = promisify(fsync);
const writeFd = promisify(write);
/** delete() and prune yield to the event loop after this many synchronous unlinks. */
const DELETE_CHUNK = 256;
/** How often a reader re-reads a sidecar that does not match its data file (a put between its two renames). */
const SIDECAR_RETRIES = 3;
const SIDECAR_RETRY_MS = 2;

/** encodeSegment maps one key segment to its on-disk name (see the layout above). */
export function encodeSegment(segment: string): string {
  if (segment === '') return '%2F';
  if (segment === '.') return '%2E';
  if (segment === '..') return '%2E%2E';
  return segment.replace(/[%\0]/g, (c) => (c === '%' ? '%25' : '%00'));
}

/** decodeSegment maps an on-disk name back to its key segment, or undefined when no segment encodes to exactly that name. */
export function decodeSegment(name: string): string | undefined {
  let segment: string;
  if (name === '%2F') segment = '';
  else if (name === '%2E') segment = '.';
  else if (name === '%2E%2E') segment = '..';
  else segment = name.replace(/%(25|00)/g, (_, hex: string) => (hex === '25' ? '%' : '\0'));
  return encodeSegment(segment) === name ? segment : undefined;
}

/** SidecarRecord is the JSON kept in `.<seg>%m`: the data file version it belongs to, and the user meta. */
interface SidecarRecord {
  size: number;
  mtimeNs: string;
  meta: Record<string, string>;
}

/** ObjectLocation is where one key's files live. */
interface ObjectLocation {
  key: string;
  dir: string;
  dataPath: string;
  metaPath: string;
}

/** createFileStorage opens the folder `root` as a bucket (a `file:` bucket spec). */
export function createFileStorage(root: string, options: FileStorageOptions = {}): Storage {
  return new FileStorage(resolve(root), options.create ?? false);
}

class FileStorage implements Storage {
  readonly description: string;
  readonly features = { resumableMultipart: false };
  private readonly objectsDir: string;
  private rootChecked: Promise<void> | undefined;

  constructor(
    private readonly root: string,
    private readonly create: boolean,
  ) {
    this.description = `file:${root}`;
    this.objectsDir = join(root, OBJECTS_DIR);
  }

  async check(): Promise<void> {
    await this.ensureRoot();
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    await this.ensureRoot();
    const cut = prefix.lastIndexOf('/') + 1;
    const dirKey = prefix.slice(0, cut);
    const dir = this.dirFor(dirKey);
    if (dir === undefined) return;
    yield* this.walk(dir, dirKey, prefix.slice(cut));
  }

  /** walk yields the objects under dir in key order; only entries whose segment starts with `partial` at this level. */
  private async *walk(dir: string, keyPrefix: string, partial = ''): AsyncGenerator<ObjectInfo> {
    const entries = await this.readEntries(dir, partial);
    for (const e of entries) {
      if (e.isDir) {
        yield* this.walk(join(dir, e.name), `${keyPrefix}${e.segment}/`);
        continue;
      }
      let st: BigIntStats | undefined;
      try {
        st = lstatSync(join(dir, e.name), { bigint: true, throwIfNoEntry: false });
      } catch (err) {
        throw this.fsFailure(`list ${keyPrefix}${e.segment}`, err);
      }
      if (st?.isFile()) yield infoFromStat(keyPrefix + e.segment, st);
    }
  }

  /** readEntries reads one folder's objects and subfolders, sorted so that walking them yields keys in S3 byte order. */
  private async readEntries(dir: string, partial: string): Promise<{ name: string; segment: string; isDir: boolean; sortKey: string }[]> {
    let dirents;
    try {
      dirents = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return [];
      throw this.fsFailure('list', err);
    }
    const entries: { name: string; segment: string; isDir: boolean; sortKey: string }[] = [];
    for (const d of dirents) {
      if (d.isDirectory()) {
        if (!d.name.endsWith(DIR_SUFFIX)) continue;
        const segment = decodeSegment(d.name.slice(0, -DIR_SUFFIX.length));
        if (segment === undefined || !segment.startsWith(partial)) continue;
        // every key below this folder starts with "segment/", and no sibling key falls between them
        entries.push({ name: d.name, segment, isDir: true, sortKey: `${segment}/` });
      } else if (d.isFile()) {
        const segment = decodeSegment(d.name); // rejects sidecars, temps and foreign names
        if (segment === undefined || !segment.startsWith(partial)) continue;
        entries.push({ name: d.name, segment, isDir: false, sortKey: segment });
      }
    }
    entries.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    return entries;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    await this.ensureRoot();
    const loc = this.locate(key);
    if (!loc) return undefined;
    for (let attempt = 0; ; attempt++) {
      let st: BigIntStats | undefined;
      try {
        st = lstatSync(loc.dataPath, { bigint: true, throwIfNoEntry: false });
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw this.fsFailure(`head ${key}`, err);
      }
      if (!st?.isFile()) return undefined;
      const sidecar = this.readSidecar(loc.metaPath);
      if (sidecarMatches(sidecar, st)) return { ...infoFromStat(key, st), meta: decodeMeta(sidecar!.meta) };
      if (attempt >= SIDECAR_RETRIES) return { ...infoFromStat(key, st), meta: {} };
      await sleep(SIDECAR_RETRY_MS);
    }
  }

  async get(key: string, range?: ByteRange): Promise<GetResult> {
    await this.ensureRoot();
    if (range) validateRange(key, range);
    const loc = this.locate(key);
    if (!loc) throw this.noSuchKey(key);
    for (let attempt = 0; ; attempt++) {
      let fd: number;
      try {
        fd = openSync(loc.dataPath, 'r');
      } catch (err) {
        if (isMissing(err)) throw this.noSuchKey(key);
        throw this.fsFailure(`get ${key}`, err);
      }
      try {
        const st = fstatSync(fd, { bigint: true });
        if (!st.isFile()) throw this.noSuchKey(key);
        const sidecar = this.readSidecar(loc.metaPath);
        const matches = sidecarMatches(sidecar, st);
        if (!matches && attempt < SIDECAR_RETRIES) {
          closeSync(fd);
          await sleep(SIDECAR_RETRY_MS);
          continue;
        }
        const info: ObjectInfo = { ...infoFromStat(key, st), meta: matches ? decodeMeta(sidecar!.meta) : {} };
        const size = info.size;
        if (range && range.start >= size) {
          throw new StorageError(INVALID_RANGE, `range ${range.start}-${range.end} of ${key} starts beyond its ${size} bytes in ${this.description}`);
        }
        // the open descriptor keeps this version readable even if a put replaces the file meanwhile
        const body = createReadStream('', { fd, autoClose: true, ...(range ? { start: range.start, end: Math.min(range.end, size) - 1 } : {}) });
        return { info, body };
      } catch (err) {
        try {
          closeSync(fd);
        } catch {
          // already closed
        }
        if (isSwmError(err)) throw err;
        throw this.fsFailure(`get ${key}`, err);
      }
    }
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions): Promise<{ etag: string }> {
    const loc = this.locate(key);
    if (!loc || key.length === 0) {
      throw failure(`cannot store "${key}" in ${this.description}: empty key or a path segment longer than ${NAME_MAX - 3} bytes`);
    }
    await this.ensureRoot();
    const signal = options.signal;
    signal?.throwIfAborted();
    const temps: string[] = [];
    try {
      if (options.ifNoneMatch && lstatSync(loc.dataPath, { throwIfNoEntry: false })) throw this.preconditionFailed(key);
      let st: BigIntStats;
      if (Buffer.isBuffer(body) && body.length <= SYNC_WRITE_LIMIT) {
        st = await this.writeBuffered(loc, body, options, temps);
        options.onProgress?.(body.length);
      } else {
        st = await this.writeStreamed(loc, body, options, temps);
      }
      signal?.throwIfAborted();
      await this.commit(key, loc, temps, st, options);
      return { etag: etagOf(st) };
    } catch (err) {
      for (const t of temps) unlinkQuietly(t);
      await this.pruneEmptyDirs([loc.dir]);
      if (signal?.aborted) throw signal.reason;
      if (isSwmError(err) || errnoCode(err) === undefined) throw err;
      throw this.fsFailure(`put ${key}`, err);
    }
  }

  /** writeBuffered writes a small Buffer to a temp file beside the target in one synchronous call, fsyncs it and stamps its mtime. */
  private async writeBuffered(loc: ObjectLocation, body: Buffer, options: PutOptions, temps: string[]): Promise<BigIntStats> {
    const { path, fd } = this.createTemp(loc.dir);
    temps.push(path);
    try {
      let offset = 0;
      while (offset < body.length) offset += writeSync(fd, body, offset, body.length - offset);
      this.checkLength(loc, body.length, options);
      await fsyncFd(fd);
      return stampFreshMtime(fd, loc.dataPath);
    } finally {
      closeSync(fd);
    }
  }

  /** writeStreamed copies a stream (or a large Buffer) to a temp file beside the target, fsyncs it and stamps its mtime. */
  private async writeStreamed(loc: ObjectLocation, body: Readable | Buffer, options: PutOptions, temps: string[]): Promise<BigIntStats> {
    const { path, fd } = this.createTemp(loc.dir);
    temps.push(path);
    try {
      const written = await writeBody(fd, body, options);
      this.checkLength(loc, written, options);
      await fsyncFd(fd);
      return stampFreshMtime(fd, loc.dataPath);
    } finally {
      closeSync(fd);
    }
  }

  private checkLength(loc: ObjectLocation, written: number, options: PutOptions): void {
    if (options.size !== undefined && written !== options.size) {
      throw failure(`cannot store ${loc.key} in ${this.description}: the body was ${written} bytes, ${options.size} were announced`);
    }
  }

  /**
   * commit writes the sidecar to a temp file, then renames the data into place (or links it, for ifNoneMatch: link fails
   * when the key exists, which makes the check atomic) and the sidecar after it.
   */
  private async commit(key: string, loc: ObjectLocation, temps: string[], st: BigIntStats, options: PutOptions): Promise<void> {
    const dataTemp = temps[0]!;
    const sidecar: SidecarRecord = { size: Number(st.size), mtimeNs: String(st.mtimeNs), meta: encodeMeta(options.meta) };
    const { path: metaTemp, fd } = this.createTemp(loc.dir);
    temps.push(metaTemp);
    try {
      writeSync(fd, JSON.stringify(sidecar));
      await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
    if (options.ifNoneMatch) {
      try {
        linkSync(dataTemp, loc.dataPath);
      } catch (err) {
        if (errnoCode(err) === 'EEXIST') throw this.preconditionFailed(key);
        throw err;
      }
      unlinkQuietly(dataTemp);
    } else {
      renameSync(dataTemp, loc.dataPath);
    }
    renameSync(metaTemp, loc.metaPath);
  }

  async delete(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.ensureRoot();
    const dirs = new Set<string>();
    for (const [i, key] of keys.entries()) {
      const loc = this.locate(key);
      if (!loc) continue;
      try {
        unlinkIfPresent(loc.dataPath);
        unlinkIfPresent(loc.metaPath);
      } catch (err) {
        throw this.fsFailure(`delete ${key}`, err);
      }
      dirs.add(loc.dir);
      if (i % DELETE_CHUNK === DELETE_CHUNK - 1) await yieldToLoop();
    }
    await this.pruneEmptyDirs([...dirs]);
  }

  async abortStaleUploads(prefix: string, olderThanMs: number): Promise<number> {
    await this.ensureRoot();
    const cut = prefix.lastIndexOf('/') + 1;
    const top = this.dirFor(prefix.slice(0, cut));
    if (top === undefined) return 0;
    const partial = prefix.slice(cut);
    const cutoff = Date.now() - olderThanMs;
    const visited: string[] = [];
    let aborted = 0;
    const sweep = async (dir: string, isTop: boolean): Promise<void> => {
      let dirents;
      try {
        dirents = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (isMissing(err)) return;
        throw this.fsFailure('abort stale uploads', err);
      }
      visited.push(dir);
      for (const d of dirents) {
        const path = join(dir, d.name);
        if (d.isDirectory() && d.name.endsWith(DIR_SUFFIX)) {
          const segment = decodeSegment(d.name.slice(0, -DIR_SUFFIX.length));
          if (segment !== undefined && (!isTop || segment.startsWith(partial))) await sweep(path, false);
          continue;
        }
        if (!d.isFile() || !d.name.startsWith('.')) continue;
        const isTemp = d.name.endsWith(TEMP_SUFFIX);
        const isSidecar = d.name.endsWith(META_SUFFIX);
        if (isTemp && isTop && partial !== '') continue; // a temp's key is unknown: only sweep folders wholly under prefix
        if (!isTemp && !isSidecar) continue;
        const st = lstatSync(path, { throwIfNoEntry: false });
        if (!st || st.mtimeMs >= cutoff) continue;
        if (isSidecar) {
          // an orphaned sidecar (its object deleted by a crashed delete): remove it, it is not an upload
          const segment = decodeSegment(d.name.slice(1, -META_SUFFIX.length));
          if (segment === undefined || !segment.startsWith(isTop ? partial : '')) continue;
          if (lstatSync(join(dir, d.name.slice(1, -META_SUFFIX.length)), { throwIfNoEntry: false })) continue;
          unlinkQuietly(path);
          continue;
        }
        unlinkQuietly(path);
        aborted++;
      }
    };
    await sweep(top, true);
    await this.pruneEmptyDirs(visited);
    return aborted;
  }

  async close(): Promise<void> {}

  /** ensureRoot checks once that the bucket folder exists (creating it when allowed). */
  private ensureRoot(): Promise<void> {
    this.rootChecked ??= this.checkRoot().catch((err) => {
      this.rootChecked = undefined;
      throw err;
    });
    return this.rootChecked;
  }

  private async checkRoot(): Promise<void> {
    try {
      const st = await stat(this.root);
      if (!st.isDirectory()) {
        throw failure(`bucket ${this.description} is not a folder: point -b at a folder, e.g. file:/path/to/bucket`);
      }
    } catch (err) {
      if (isSwmError(err)) throw err;
      if (errnoCode(err) !== 'ENOENT') throw this.fsFailure('open bucket', err);
      if (!this.create) {
        throw failure(`bucket ${this.description} does not exist: create the folder (mkdir -p ${this.root}) or choose another bucket with -b`);
      }
      try {
        mkdirSync(this.root, { recursive: true });
      } catch (mkErr) {
        throw this.fsFailure('create bucket folder', mkErr);
      }
    }
  }

  /** locate maps a key to its files; undefined when some segment is too long to be a file name (so it cannot exist). */
  private locate(key: string): ObjectLocation | undefined {
    const segments = key.split('/');
    const last = encodeSegment(segments.pop()!);
    if (Buffer.byteLength(last) > NAME_MAX - 1 - META_SUFFIX.length) return undefined;
    const dir = this.dirFor(segments.length === 0 ? '' : `${segments.join('/')}/`);
    if (dir === undefined) return undefined;
    return { key, dir, dataPath: join(dir, last), metaPath: join(dir, `.${last}${META_SUFFIX}`) };
  }

  /** dirFor maps a key prefix ending in "/" (or "") to its folder. */
  private dirFor(dirKey: string): string | undefined {
    if (dirKey === '') return this.objectsDir;
    const names = dirKey.slice(0, -1).split('/').map((s) => encodeSegment(s) + DIR_SUFFIX);
    if (names.some((n) => Buffer.byteLength(n) > NAME_MAX)) return undefined;
    return join(this.objectsDir, ...names);
  }

  /** createTemp creates a new hidden temp file in dir (made if needed), retrying if a concurrent delete prunes dir. */
  private createTemp(dir: string): { path: string; fd: number } {
    for (let attempt = 0; ; attempt++) {
      mkdirSync(dir, { recursive: true });
      const path = join(dir, `.${randomBytes(8).toString('hex')}${TEMP_SUFFIX}`);
      try {
        return { path, fd: openSync(path, 'wx', 0o644) };
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT' || attempt >= 3) throw err;
      }
    }
  }

  private readSidecar(path: string): SidecarRecord | undefined {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw this.fsFailure('read metadata', err);
    }
    try {
      const parsed = JSON.parse(text) as SidecarRecord;
      return typeof parsed === 'object' && parsed !== null ? parsed : undefined;
    } catch {
      return undefined; // a damaged sidecar means "no meta", never wrong meta
    }
  }

  /** pruneEmptyDirs removes now-empty folders from each dir upwards, stopping at the first non-empty one and at objects/. */
  private async pruneEmptyDirs(dirs: string[]): Promise<void> {
    const sorted = [...new Set(dirs)].sort((a, b) => b.length - a.length);
    const removed = new Set<string>();
    for (let dir of sorted) {
      while (dir.startsWith(this.objectsDir + sep) && !removed.has(dir)) {
        try {
          rmdirSync(dir);
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') break; // ENOTEMPTY: still in use (a sibling may empty it later in this loop)
        }
        removed.add(dir);
        dir = dirname(dir);
      }
    }
  }

  private noSuchKey(key: string): StorageError {
    return new StorageError(NO_SUCH_KEY, `object ${key} does not exist in ${this.description}`);
  }

  private preconditionFailed(key: string): StorageError {
    return new StorageError(PRECONDITION_FAILED, `object ${key} already exists in ${this.description}`);
  }

  private fsFailure(what: string, err: unknown) {
    const msg = err instanceof Error ? err.message : String(err);
    return failure(`${what} in ${this.description} failed: ${msg.split('\n')[0]}`, err);
  }
}

/** etagOf is the file backend's version tag: the data file's mtime (ns) and size, in hex. */
function etagOf(st: BigIntStats): string {
  return `${st.mtimeNs.toString(16)}-${st.size.toString(16)}`;
}

function infoFromStat(key: string, st: BigIntStats): ObjectInfo {
  return { key, size: Number(st.size), etag: etagOf(st), lastModified: Number(st.mtimeMs) };
}

function sidecarMatches(sidecar: SidecarRecord | undefined, st: BigIntStats): boolean {
  return sidecar !== undefined && sidecar.size === Number(st.size) && sidecar.mtimeNs === String(st.mtimeNs) && typeof sidecar.meta === 'object';
}

/**
 * stampFreshMtime sets the temp data file's mtime to now (with random sub-millisecond digits) and makes sure it is later
 * than the version it will replace, so the (size, mtime) pair — the etag and the sidecar's binding — changes on every put.
 */
function stampFreshMtime(fd: number, target: string): BigIntStats {
  const previous = lstatSync(target, { bigint: true, throwIfNoEntry: false });
  let want = BigInt(Date.now()) * 1_000_000n + BigInt(randomInt(1_000_000));
  let step = 1_000_000n;
  for (let attempt = 0; ; attempt++) {
    if (previous && want <= previous.mtimeNs) want = previous.mtimeNs + step;
    const seconds = Number(want / 1_000_000_000n) + Number(want % 1_000_000_000n) / 1e9;
    futimesSync(fd, seconds, seconds);
    const st = fstatSync(fd, { bigint: true });
    // a coarse file system clock may round the stamp back onto the previous one: step further
    if (!previous || st.mtimeNs > previous.mtimeNs || attempt >= 3) return st;
    step *= 1000n;
  }
}

/** writeBody copies a Buffer or stream into the temp file descriptor, reporting cumulative bytes; aborts stop it promptly. */
async function writeBody(fd: number, body: Readable | Buffer, options: PutOptions): Promise<number> {
  const signal = options.signal;
  if (Buffer.isBuffer(body)) {
    await writeAll(fd, body);
    options.onProgress?.(body.length);
    return body.length;
  }
  let written = 0;
  const onAbort = () => body.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of body) {
      signal?.throwIfAborted();
      const buf: Buffer = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      await writeAll(fd, buf);
      written += buf.length;
      options.onProgress?.(written);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  signal?.throwIfAborted();
  return written;
}

async function writeAll(fd: number, buf: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buf.length) offset += (await writeFd(fd, buf, offset, buf.length - offset)).bytesWritten;
}

function isMissing(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG';
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
