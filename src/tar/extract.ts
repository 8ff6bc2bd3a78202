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
// Checks against the disk (symlinked or non-folder parents, a non-empty folder in the way), where files go (new folders
// built under a temp name and renamed into place whole, files into existing folders by temp + rename; never a
// half-written file in place) and per-file hash checks are tar/tree-writer.ts's, which applies the entries in order.
// Every regular file is hashed (xxh64) as it is written. With `expectedHashes` (a snapshot's per-file hashes), a file
// whose bytes hash otherwise, or that the list does not name, is never put in place and extraction stops (exit 1,
// TarEntryHashMismatch), so a damaged archive never overwrites a good local file. Every file extracted before a
// failure is complete and in place.
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { mkdirSync, realpathSync } from 'node:fs';
import { extract as tarExtract, type Extract, type Header } from 'tar-stream';
import { SwmError, ExitCode, errnoCode, failure, isSwmError } from '../errors.js';
import { unsafeRelativePath } from '../keys.js';
import { SWM_DIR } from '../state/paths.js';
import { parsePaxTime } from './pax-time.js';
import type { TarSourceEntry } from './pack.js';
import { TarEntryHashMismatch, TreeWriter, refuseEntry } from './tree-writer.js';

export { TarEntryHashMismatch, refuseEntry };

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

/** Files up to this size are read whole from the archive and written in one go (synchronous calls: faster for small files). */
const SMALL_FILE_MAX = 1024 * 1024;
/** Trailing bytes kept to check that the archive ends with an end-of-archive block. */
const TAIL_KEEP_BYTES = 1024 * 1024;

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
  const writer = await TreeWriter.create(realpathSync(root));
  return new TarExtractor(opts, writer).run(input);
}

/** EntryData is an entry's byte stream from tar-stream (a streamx Readable). */
type EntryData = AsyncIterable<unknown>;

/** TarExtractor parses one archive, checks each entry's name and hands the entries to the writer in order; keeps the counts. */
class TarExtractor {
  private readonly result: ExtractResult = { files: 0, dirs: 0, symlinks: 0, bytes: 0, entries: [] };
  private inputError: unknown;
  private stopping = false;
  private decodeError: unknown;
  /** decompressed bytes written into the parser, and the most recent of them. */
  private total = 0;
  private tail: Array<{ offset: number; buf: Buffer }> = [];
  /** where the last entry's data (with padding) ends: the end-of-archive block must start there. */
  private lastEntryEnd = 0;

  constructor(
    private readonly opts: ExtractTarOptions,
    private readonly writer: TreeWriter,
  ) {}

  async run(input: Readable): Promise<ExtractResult> {
    const extract = tarExtract();
    const signal = this.opts.signal;
    const onAbort = () => extract.destroy(abortReason(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });
    const pumping = this.pump(input, extract);
    try {
      if (signal?.aborted) throw abortReason(signal);
      for await (const entry of extract) {
        await this.extractEntry(entry.header, entry, entry.offset);
      }
      await pumping;
      this.checkEndOfArchive();
      this.writer.finish();
      return this.result;
    } catch (e) {
      this.stopping = true; // what the destroys below make the pump see is not an input failure
      extract.destroy();
      input.destroy();
      await pumping.catch(() => {});
      this.writer.abandon();
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

  private async extractEntry(header: Header, entryData: EntryData, headerOffset: number): Promise<void> {
    this.lastEntryEnd = headerOffset + 512 + padded(header.size);
    const rawName = header.name;
    const name = entryPath(header);
    if (name === undefined) return void (await drain(entryData)); // "./": the root itself
    const why = name.endsWith('/') ? 'a name ending in "/" that is not a folder' : unsafeRelativePath(name);
    if (why) throw refuseEntry(rawName, why);
    if (name === SWM_DIR || name.startsWith(SWM_DIR + '/')) throw refuseEntry(rawName, `${SWM_DIR}/ holds swm's own state and is never extracted`);
    const kind = header.type === 'directory' ? 'dir' : header.type === 'symlink' ? 'symlink' : header.type === 'file' || header.type === 'contiguous-file' ? 'file' : undefined;
    if (kind !== undefined && this.opts.skip?.(name, kind)) return void (await drain(entryData));
    const mode = header.mode & 0o777;
    const mtimeMs = parsePaxTime((header.pax as Record<string, string> | null | undefined)?.mtime) ?? header.mtime.getTime();
    switch (header.type) {
      case 'file':
      case 'contiguous-file': {
        const expectedHashes = this.opts.expectedHashes;
        if (expectedHashes && !expectedHashes.has(name)) throw new TarEntryHashMismatch(name, undefined, undefined);
        const expected = expectedHashes?.get(name);
        const size = header.size;
        let hash: string | undefined;
        if (size <= SMALL_FILE_MAX) {
          const data = await readAll(entryData, size);
          hash = this.writer.apply({ t: 'file', rel: name, raw: rawName, mode, mtimeMs, expected, data });
        } else {
          this.writer.apply({ t: 'open', rel: name, raw: rawName, mode, mtimeMs, size, expected });
          for await (const chunk of entryData) this.writer.apply({ t: 'chunk', data: chunk as Buffer });
          hash = this.writer.apply({ t: 'close' });
        }
        this.record({ path: name, type: 'file', size, mtimeMs, mode, hash });
        this.result.files++;
        this.result.bytes += size;
        return;
      }
      case 'directory':
        await drain(entryData);
        this.writer.apply({ t: 'dir', rel: name, raw: rawName, mode, mtimeMs });
        this.record({ path: name, type: 'dir', size: 0, mtimeMs, mode });
        this.result.dirs++;
        return;
      case 'symlink': {
        const target = header.linkname ?? '';
        const bad = unsafeSymlinkTarget(name, target);
        if (bad) throw refuseEntry(rawName, bad);
        await drain(entryData);
        this.writer.apply({ t: 'symlink', rel: name, raw: rawName, target, mtimeMs });
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

function padded(size: number): number {
  return Math.ceil(size / 512) * 512;
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
