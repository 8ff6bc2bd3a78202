// Extracts a tar (or tar.gz) byte stream into a folder, checking every entry before anything is written.
//
// Refused (SwmError exit 2, `refusing tar entry "<name>": <reason>`, extraction stops):
// - names that are absolute, contain `..`, `.` or empty segments, a backslash or NUL (src/keys.ts unsafeRelativePath;
//   one leading "./" is accepted and dropped, as GNU tar writes it);
// - any entry whose parent folders include a symlink, whether the archive created it or it was already on disk;
// - symlinks whose target is absolute, climbs above the workspace, or uses `..` after a normal segment (`a/../b`):
//   only leading `../` are accepted, so the link resolves inside the workspace whatever its components turn out to be;
// - hard links (never produced by swm's packer), device files and FIFOs;
// - a file or symlink where a non-empty folder exists.
// setuid/setgid/sticky bits are stripped; other permission bits and the pax sub-second mtime are restored.
// Regular files are written to a temp name in their folder and renamed into place, so every file extracted before a
// failure is complete and an interrupted one leaves nothing. Files, symlinks and empty folders in the way of an entry
// of another type are replaced. Folders get their mode and mtime after all their contents are written.
// Every regular file is hashed (xxh64) as it is written. With `expectedHashes` (a snapshot's per-file hashes), a file
// whose bytes hash otherwise, or that the list does not name, is never renamed into place: its temp file is removed
// and extraction stops (exit 1, TarEntryHashMismatch), so a damaged archive never overwrites a good local file.
// Checks are made against the disk as it is during extraction; a concurrent local attacker racing the extractor is
// out of scope.
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  fchmodSync,
  futimesSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  realpathSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { open as openAsync, unlink as unlinkAsync } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { extract as tarExtract, type Extract, type Header } from 'tar-stream';
import { SwmError, ExitCode, errnoCode, failure, isSwmError } from '../errors.js';
import { unsafeRelativePath } from '../keys.js';
import { SWM_DIR } from '../state/paths.js';
import { tempPathFor } from '../state/atomic.js';
import { TEMP_INFIX } from '../state/paths.js';
import { xxh, hex64 } from '../engine/hash.js';
import { parsePaxTime } from './pax-time.js';
import type { TarSourceEntry } from './pack.js';

type Hasher = Awaited<ReturnType<typeof xxh>>;

/**
 * ExtractedEntry is one entry written by extractTar, as it now is on disk (for the caller's state): the same shape as
 * what packTar takes, with no trailing slash on folders, setuid/setgid/sticky stripped from `mode`, and files' xxh64.
 */
export interface ExtractedEntry extends TarSourceEntry {
  /** regular files: xxh64 (16 hex digits) of the bytes written. */
  hash?: string;
}

/** ExtractResult counts what extractTar wrote. */
export interface ExtractResult {
  files: number;
  dirs: number;
  symlinks: number;
  /** bytes of regular-file data written. */
  bytes: number;
  entries: ExtractedEntry[];
}

/** ExtractTarOptions: cancellation and a per-entry report. */
export interface ExtractTarOptions {
  signal?: AbortSignal;
  /** called after each entry is in place. */
  onEntry?(e: { path: string; type: ExtractedEntry['type']; size: number }): void;
  /** an entry (already checked safe) for which this returns true is read past and not written (the caller's excludes). */
  skip?(path: string, type: ExtractedEntry['type']): boolean;
  /**
   * xxh64 (16 hex digits) of every regular file the archive holds, by workspace-relative path. When given, a file that
   * hashes otherwise or is not listed is not written, and extraction fails with TarEntryHashMismatch (exit 1).
   */
  expectedHashes?: ReadonlyMap<string, string>;
}

/** TarEntryHashMismatch: a file's bytes in the archive do not hash to the expected xxh64 (or none is listed); it was not written. */
export class TarEntryHashMismatch extends SwmError {
  constructor(
    readonly path: string,
    readonly actual: string | undefined,
    readonly expected: string | undefined,
  ) {
    super(
      ExitCode.failed,
      expected === undefined
        ? `${JSON.stringify(path)} has no xxh64 in the snapshot's list, so it cannot be verified: the snapshot is corrupt; nothing written for it`
        : `${JSON.stringify(path)} does not match its xxh64 (${actual} ≠ ${expected}): the snapshot is corrupt; nothing written for it`,
      { hint: 'files extracted before it were verified; push --tar again from an intact copy' },
    );
  }
}

/** Files up to this size are gathered in memory and written with synchronous calls (much faster for small files). */
const SMALL_FILE_MAX = 1024 * 1024;
/** Big files are written in batches of at least this many bytes. */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** Trailing bytes kept to check that the archive ends with an end-of-archive block. */
const TAIL_KEEP_BYTES = 1024 * 1024;
/** Longest file name on Linux filesystems, in bytes. */
const NAME_MAX = 255;

/** refuseEntry is the error for an entry that must not be written. */
export function refuseEntry(name: string, reason: string): SwmError {
  return new SwmError(ExitCode.usage, `refusing tar entry ${JSON.stringify(name)}: ${reason}`, {
    hint: 'the archive is unsafe or damaged; nothing outside the workspace was written',
  });
}

/** corruptTar is the error for a stream that is not a complete, well-formed tar. */
function corruptTar(detail: string, cause?: unknown): SwmError {
  return new SwmError(ExitCode.usage, `corrupt tar stream: ${detail}`, {
    cause,
    hint: 'the object is truncated or not a tar made by swm; push it again with --tar',
  });
}

/** extractTar writes the entries of a tar (or gzip-compressed tar) stream under root; see the module comment for what is refused. */
export async function extractTar(input: Readable, root: string, opts: ExtractTarOptions = {}): Promise<ExtractResult> {
  mkdirSync(root, { recursive: true });
  const extractor = new TarExtractor(realpathSync(root), opts, await xxh());
  return extractor.run(input);
}

/** EntryData is an entry's byte stream from tar-stream (a streamx Readable). */
type EntryData = AsyncIterable<unknown>;

interface DirToFinish {
  abs: string;
  mode: number;
  mtimeMs: number;
}

/** TarExtractor holds one extraction's state: the folders known safe, the folders to finish, the counts. */
class TarExtractor {
  private readonly result: ExtractResult = { files: 0, dirs: 0, symlinks: 0, bytes: 0, entries: [] };
  /** workspace-relative folders checked (or created) as real folders, not symlinks. */
  private readonly safeDirs = new Set<string>();
  private readonly dirsToFinish: DirToFinish[] = [];
  private inputError: unknown;
  private stopping = false;
  private decodeError: unknown;
  /** decompressed bytes written into the parser, and the most recent of them. */
  private total = 0;
  private tail: Array<{ offset: number; buf: Buffer }> = [];
  /** where the last entry's data (with padding) ends: the end-of-archive block must start there. */
  private lastEntryEnd = 0;

  constructor(
    private readonly root: string,
    private readonly opts: ExtractTarOptions,
    private readonly hasher: Hasher,
  ) {}

  async run(input: Readable): Promise<ExtractResult> {
    const extract = tarExtract();
    const signal = this.opts.signal;
    const onAbort = () => extract.destroy(abortReason(signal!));
    if (signal?.aborted) throw abortReason(signal);
    signal?.addEventListener('abort', onAbort, { once: true });
    const pumping = this.pump(input, extract);
    try {
      for await (const entry of extract) {
        await this.extractEntry(entry.header, entry, entry.offset);
      }
      await pumping;
      this.checkEndOfArchive();
      this.finishDirs();
      return this.result;
    } catch (e) {
      this.stopping = true; // what the destroys below make the pump see is not an input failure
      extract.destroy();
      input.destroy();
      await pumping.catch(() => {});
      throw this.explain(e);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** explain maps whatever stopped the extraction to the error the user should see. */
  private explain(e: unknown): unknown {
    const signal = this.opts.signal;
    if (signal?.aborted) return abortReason(signal);
    if (isSwmError(e)) return e;
    if (this.inputError !== undefined) {
      const err = this.inputError;
      return isSwmError(err) ? err : failure(`reading the tar stream failed: ${messageOf(err)}`, err);
    }
    if (this.decodeError !== undefined) return corruptTar(`gzip: ${messageOf(this.decodeError)}`, this.decodeError);
    const code = errnoCode(e);
    if (code) return failure(`extracting the tar failed: ${messageOf(e)}`, e, code === 'ENOSPC' ? 'free some disk space and pull again' : undefined);
    return corruptTar(messageOf(e), e);
  }

  /** pump feeds the (decompressed) input into the parser with backpressure, then ends it. */
  private async pump(input: Readable, extract: Extract): Promise<void> {
    try {
      for await (const chunk of this.decoded(input)) {
        if (extract.destroying || extract.destroyed) return;
        this.remember(chunk);
        if (!extract.write(chunk)) await drainOrClose(extract);
      }
      if (!extract.destroying && !extract.destroyed) extract.end(undefined);
    } catch (e) {
      if (this.decodeError === undefined && !this.stopping) this.inputError = e;
      extract.destroy(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** decoded yields the input's bytes, gunzipped when they start with the gzip magic number. */
  private async *decoded(input: Readable): AsyncGenerator<Buffer> {
    const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
    const head: Buffer[] = [];
    let headBytes = 0;
    let done = false;
    while (headBytes < 2) {
      const n = await it.next();
      if (n.done) {
        done = true;
        break;
      }
      const buf = Buffer.isBuffer(n.value) ? n.value : Buffer.from(n.value);
      head.push(buf);
      headBytes += buf.length;
    }
    const rest = async function* (): AsyncGenerator<Buffer> {
      yield* head;
      if (done) return;
      for (;;) {
        const n = await it.next();
        if (n.done) return;
        yield Buffer.isBuffer(n.value) ? n.value : Buffer.from(n.value);
      }
    };
    const first = Buffer.concat(head);
    if (!(first[0] === 0x1f && first[1] === 0x8b)) {
      yield* rest();
      return;
    }
    let sourceError: unknown;
    const source = Readable.from(rest()).on('error', (e) => (sourceError = e));
    const gunzip = createGunzip();
    gunzip.on('error', (e) => {
      if (sourceError === undefined) this.decodeError = e;
    });
    try {
      for await (const chunk of pipeline(source, gunzip, () => {})) yield chunk as Buffer;
    } catch (e) {
      throw sourceError ?? e;
    }
    if (sourceError !== undefined) throw sourceError;
  }

  /** remember counts bytes fed to the parser and keeps the last TAIL_KEEP_BYTES of them. */
  private remember(chunk: Buffer): void {
    this.tail.push({ offset: this.total, buf: chunk });
    this.total += chunk.length;
    while (this.tail.length > 1 && this.total - (this.tail[0]!.offset + this.tail[0]!.buf.length) > TAIL_KEEP_BYTES) this.tail.shift();
  }

  /**
   * checkEndOfArchive fails when the stream stopped at an entry boundary or inside a long header instead of an
   * end-of-archive block: the parser alone accepts such a cut stream (and would silently drop the rest of the tree).
   */
  private checkEndOfArchive(): void {
    if (this.total <= this.lastEntryEnd) throw corruptTar('it ends without an end-of-archive block (truncated?)');
    const first = this.tail[0];
    if (!first || first.offset > this.lastEntryEnd) return; // more padding than we keep: nothing to check against
    const block = Buffer.alloc(512);
    for (const { offset, buf } of this.tail) {
      const from = Math.max(this.lastEntryEnd, offset);
      const to = Math.min(this.lastEntryEnd + 512, offset + buf.length);
      if (to > from) buf.copy(block, from - this.lastEntryEnd, from - offset, to - offset);
    }
    if (this.total < this.lastEntryEnd + 512 || block.some((b) => b !== 0)) {
      throw corruptTar('it ends inside an entry header (truncated?)');
    }
  }

  private async extractEntry(header: Header, data: EntryData, headerOffset: number): Promise<void> {
    this.lastEntryEnd = headerOffset + 512 + padded(header.size);
    const rawName = header.name;
    const name = entryPath(header);
    if (name === undefined) return void (await drain(data)); // "./": the root itself
    const why = name.endsWith('/') ? 'a name ending in "/" that is not a folder' : unsafeRelativePath(name);
    if (why) throw refuseEntry(rawName, why);
    if (name === SWM_DIR || name.startsWith(SWM_DIR + '/')) throw refuseEntry(rawName, `${SWM_DIR}/ holds swm's own state and is never extracted`);
    const kind = header.type === 'directory' ? 'dir' : header.type === 'symlink' ? 'symlink' : header.type === 'file' || header.type === 'contiguous-file' ? 'file' : undefined;
    if (kind !== undefined && this.opts.skip?.(name, kind)) return void (await drain(data));
    const mode = header.mode & 0o777;
    const mtimeMs = parsePaxTime((header.pax as Record<string, string> | null | undefined)?.mtime) ?? header.mtime.getTime();
    switch (header.type) {
      case 'file':
      case 'contiguous-file': {
        const expected = this.opts.expectedHashes;
        if (expected && !expected.has(name)) throw new TarEntryHashMismatch(name, undefined, undefined);
        this.ensureParents(name, rawName);
        const hash = await this.writeFile(name, rawName, data, header.size, mode, mtimeMs, expected?.get(name));
        this.record({ path: name, type: 'file', size: header.size, mtimeMs, mode, hash });
        this.result.files++;
        this.result.bytes += header.size;
        return;
      }
      case 'directory':
        this.ensureParents(name, rawName);
        await drain(data);
        this.makeDir(name, mode, mtimeMs);
        this.record({ path: name, type: 'dir', size: 0, mtimeMs, mode });
        this.result.dirs++;
        return;
      case 'symlink': {
        const target = header.linkname ?? '';
        const bad = unsafeSymlinkTarget(name, target);
        if (bad) throw refuseEntry(rawName, bad);
        this.ensureParents(name, rawName);
        await drain(data);
        this.makeSymlink(name, rawName, target, mtimeMs);
        this.record({ path: name, type: 'symlink', size: 0, mtimeMs, mode, target });
        this.result.symlinks++;
        return;
      }
      case 'link':
        throw refuseEntry(rawName, `hard links are not extracted (to ${JSON.stringify(header.linkname)})`);
      case 'character-device':
      case 'block-device':
      case 'fifo':
        throw refuseEntry(rawName, `${header.type} entries are not extracted`);
      default:
        throw refuseEntry(rawName, `unsupported entry type ${JSON.stringify(header.type)}`);
    }
  }

  private record(e: ExtractedEntry): void {
    this.result.entries.push(e);
    this.opts.onEntry?.({ path: e.path, type: e.type, size: e.size });
  }

  /** ensureParents makes sure every parent folder of rel is a real folder (never a symlink), creating missing ones. */
  private ensureParents(rel: string, rawName: string): void {
    let end = rel.indexOf('/');
    while (end !== -1) {
      const dir = rel.slice(0, end);
      if (!this.safeDirs.has(dir)) {
        const abs = join(this.root, dir);
        const st = lstatOrUndefined(abs);
        if (st === undefined) mkdirSync(abs, { mode: 0o755 });
        else if (st.isSymbolicLink()) throw refuseEntry(rawName, `its folder ${JSON.stringify(dir)} is a symlink; writing through it is refused`);
        else if (!st.isDirectory()) throw refuseEntry(rawName, `${JSON.stringify(dir)} exists and is not a folder`);
        this.safeDirs.add(dir);
      }
      end = rel.indexOf('/', end + 1);
    }
  }

  /** clearWayFor removes an empty folder where a file or symlink must go; a non-empty one refuses the entry. */
  private clearWayFor(rel: string, rawName: string, abs: string): void {
    const st = lstatOrUndefined(abs);
    if (!st?.isDirectory()) return;
    try {
      rmdirSync(abs);
    } catch (e) {
      if (errnoCode(e) === 'ENOTEMPTY' || errnoCode(e) === 'EEXIST') throw refuseEntry(rawName, 'a folder that is not empty is in its way');
      throw e;
    }
    this.safeDirs.delete(rel);
  }

  /**
   * writeFile writes an entry's data to a temp file beside its place and renames it there; returns its xxh64. When
   * `expectedHash` is given and differs, the temp file is removed (or never made) and TarEntryHashMismatch thrown.
   */
  private async writeFile(
    rel: string, rawName: string, data: EntryData, size: number, mode: number, mtimeMs: number, expectedHash: string | undefined,
  ): Promise<string> {
    const abs = join(this.root, rel);
    const tmp = tempPathBeside(abs);
    let hash: string;
    if (size <= SMALL_FILE_MAX) {
      const bytes = await readAll(data, size);
      hash = hex64(this.hasher.h64Raw(bytes));
      if (expectedHash !== undefined && hash !== expectedHash) throw new TarEntryHashMismatch(rel, hash, expectedHash);
      const fd = openSync(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
      try {
        for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
        fchmodSync(fd, mode);
        futimesSync(fd, Date.now() / 1000, utimeSeconds(mtimeMs));
        closeSync(fd);
      } catch (e) {
        closeQuietly(fd);
        unlinkQuietly(tmp);
        throw e;
      }
    } else {
      const fh = await openAsync(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
      const hashState = this.hasher.create64();
      try {
        let batch: Buffer[] = [];
        let batchBytes = 0;
        let written = 0;
        for await (const chunk of data) {
          batch.push(chunk as Buffer);
          hashState.update(chunk as Buffer);
          batchBytes += (chunk as Buffer).length;
          if (batchBytes >= WRITE_BATCH_BYTES) {
            await writeAllv(fh, batch);
            written += batchBytes;
            batch = [];
            batchBytes = 0;
          }
        }
        if (batchBytes > 0) await writeAllv(fh, batch);
        written += batchBytes;
        if (written !== size) throw new Error(`entry ${JSON.stringify(rawName)} has ${written} of its ${size} bytes`);
        hash = hex64(hashState.digest());
        if (expectedHash !== undefined && hash !== expectedHash) throw new TarEntryHashMismatch(rel, hash, expectedHash);
        await fh.chmod(mode);
        await fh.utimes(Date.now() / 1000, utimeSeconds(mtimeMs));
        await fh.close();
      } catch (e) {
        await fh.close().catch(() => {});
        await unlinkAsync(tmp).catch(() => {});
        throw e;
      }
    }
    try {
      this.clearWayFor(rel, rawName, abs);
      renameSync(tmp, abs);
    } catch (e) {
      unlinkQuietly(tmp);
      throw e;
    }
    return hash;
  }

  private makeDir(rel: string, mode: number, mtimeMs: number): void {
    const abs = join(this.root, rel);
    const st = lstatOrUndefined(abs);
    // owner rwx while extracting, so a read-only folder can still be filled; the real mode is set at the end
    if (st === undefined) mkdirSync(abs, { mode: mode | 0o700 });
    else if (st.isDirectory()) {
      if ((st.mode & 0o700) !== 0o700) chmodSync(abs, (st.mode & 0o777) | 0o700);
    } else {
      unlinkSync(abs); // a file or symlink in the way (unlinking a symlink never touches its target)
      mkdirSync(abs, { mode: mode | 0o700 });
    }
    this.safeDirs.add(rel);
    this.dirsToFinish.push({ abs, mode, mtimeMs });
  }

  private makeSymlink(rel: string, rawName: string, target: string, mtimeMs: number): void {
    const abs = join(this.root, rel);
    const tmp = tempPathBeside(abs);
    symlinkSync(target, tmp);
    try {
      lutimesSync(tmp, Date.now() / 1000, utimeSeconds(mtimeMs));
      this.clearWayFor(rel, rawName, abs);
      renameSync(tmp, abs);
    } catch (e) {
      unlinkQuietly(tmp);
      throw e;
    }
  }

  /** finishDirs applies folders' modes and mtimes, deepest first, once everything inside them is written. */
  private finishDirs(): void {
    for (let i = this.dirsToFinish.length - 1; i >= 0; i--) {
      const { abs, mode, mtimeMs } = this.dirsToFinish[i]!;
      chmodSync(abs, mode);
      utimesSync(abs, Date.now() / 1000, utimeSeconds(mtimeMs));
    }
  }
}

/** entryPath turns a header name into a workspace-relative path: one leading "./" and a folder's trailing "/" dropped; undefined for the root itself. */
function entryPath(header: Header): string | undefined {
  let name = header.name;
  if (name.startsWith('./')) name = name.slice(2);
  if (header.type === 'directory') {
    name = name.replace(/\/+$/, '');
    if (name === '' || name === '.') return undefined;
  }
  return name;
}

/**
 * unsafeSymlinkTarget says why a symlink at `linkPath` must not point at `target`, or undefined when it stays inside
 * the workspace: relative, `../` only as a prefix, and no more of them than the link's folder depth.
 */
export function unsafeSymlinkTarget(linkPath: string, target: string): string | undefined {
  if (target.length === 0) return 'symlink with an empty target';
  if (target.includes('\0')) return 'symlink target contains a NUL byte';
  if (target.startsWith('/')) return `symlink points outside the workspace (absolute target ${JSON.stringify(target)})`;
  const segments = target.split('/');
  let climbs = 0;
  let entered = false;
  for (const s of segments) {
    if (s === '..') {
      if (entered) return `symlink target ${JSON.stringify(target)} climbs back with ".." after entering a folder; only leading "../" are accepted`;
      climbs++;
    } else if (s !== '' && s !== '.') entered = true;
  }
  const depth = linkPath.split('/').length - 1;
  if (climbs > depth) return `symlink points outside the workspace (${JSON.stringify(target)})`;
  return undefined;
}

/** tempPathBeside is tempPathFor, shortened when the target's name is too long to take the temp suffix. */
function tempPathBeside(abs: string): string {
  const tmp = tempPathFor(abs);
  if (Buffer.byteLength(basename(tmp)) <= NAME_MAX) return tmp;
  return join(dirname(abs), `${TEMP_INFIX}${randomBytes(8).toString('hex')}`);
}

/**
 * utimeSeconds converts an mtime in ms (microsecond precision, as pax records carry it) to the seconds utimes takes.
 * A double holds a 2020s time only to ~0.12 µs and the kernel truncates it, so `ms / 1000` could land just below the
 * recorded microsecond, a millisecond early when that is a whole one; a quarter-microsecond bias lands it inside.
 */
function utimeSeconds(mtimeMs: number): number {
  return (Math.round(mtimeMs * 1000) + 0.25) / 1_000_000;
}

function padded(size: number): number {
  return Math.ceil(size / 512) * 512;
}

function lstatOrUndefined(abs: string): Stats | undefined {
  try {
    return lstatSync(abs);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

async function readAll(data: EntryData, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  for await (const chunk of data) {
    chunks.push(chunk as Buffer);
    got += (chunk as Buffer).length;
  }
  if (got !== size) throw new Error(`an entry has ${got} of its ${size} bytes`);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, got);
}

async function writeAllv(fh: Awaited<ReturnType<typeof openAsync>>, bufs: Buffer[]): Promise<void> {
  let pending = bufs;
  while (pending.length > 0) {
    let { bytesWritten } = await fh.writev(pending);
    const rest: Buffer[] = [];
    for (const b of pending) {
      if (bytesWritten >= b.length) bytesWritten -= b.length;
      else {
        rest.push(b.subarray(bytesWritten));
        bytesWritten = 0;
      }
    }
    pending = rest;
  }
}

async function drain(data: EntryData): Promise<void> {
  for await (const _ of data) {
    /* discard */
  }
}

function drainOrClose(stream: Extract): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}
