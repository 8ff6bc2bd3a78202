// Packs workspace entries into a tar byte stream, reading files ahead of the writer so the consumer never waits on the disk.
//
// Format: POSIX ustar, with a pax extended header when a name or symlink target is long or non-ASCII, or when the
// mtime has a sub-second part (`mtime=<seconds>.<micro>`, the standard pax record GNU tar reads and writes).
// Directories (including empty ones) are entries; symlinks keep their target verbatim; modes keep their 12
// permission bits (extract strips setuid/setgid/sticky); owners are not recorded (uid/gid 0).
//
// Reading: files up to SMALL_FILE_MAX are read whole with synchronous reads in batches (4–9× faster than the
// promise API for small files, see NOTES), bigger ones in CHUNK_BYTES async reads; everything read but not yet
// handed to the tar packer stays under `readAheadBytes`. Each file is opened with O_NOFOLLOW (and O_NONBLOCK, so a
// FIFO swapped in never blocks). A small file is read, then fstat'ed once (open, read, fstat, close: four calls);
// a big one is fstat'ed before and after its read. If it no longer matches its entry (size, mtime) or changed while
// being read, the stream fails with an error naming it (after `onChangedWhileReading`): a header never claims a size
// its data does not have. A file that vanished (or stopped being a regular file) since the scan is skipped before
// its header is written.
//
// Throughput: entries may come one by one or in arrays (a scan's batches: no await per entry); tar-stream's output,
// a handful of small pushes per entry, is gathered into OUT_CHUNK_BYTES buffers before it leaves, so what reads the
// stream (hashing, the upload) sees a few hundred chunks per 100,000 files instead of half a million.
//
// Hashes: with `onFileHashed`, each regular file's xxh64 is computed from the very bytes that go into the archive as
// they are read (whole for small files, chunk by chunk for big ones) and reported once the file is known unchanged, so
// a pull can verify every file before it writes it (see engine/tar-layout.ts).
import { Readable, pipeline } from 'node:stream';
import { createGzip } from 'node:zlib';
import { closeSync, constants as fsConstants, fstatSync, openSync, read, readSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { pack as tarPack, type Header } from 'tar-stream';
import { SwmError, ExitCode, errnoCode, failure } from '../errors.js';
import { xxh, hex64 } from '../engine/hash.js';
import { formatPaxTime } from './pax-time.js';

type Hasher = Awaited<ReturnType<typeof xxh>>;

/** TarSourceEntry is one workspace entry to pack, as the scan saw it. */
export interface TarSourceEntry {
  /** workspace-relative, '/'-separated. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  mtimeMs: number;
  mode: number;
  /** symlink target, verbatim; read from disk when absent. */
  target?: string;
}

/** TarEntrySource is what packTar packs, in order: entries one by one, or arrays of them (e.g. a scan's batches). */
export type TarEntrySource = AsyncIterable<TarSourceEntry | readonly TarSourceEntry[]> | Iterable<TarSourceEntry>;

/** PackTarOptions tunes packTar and receives its per-file reports. */
export interface PackTarOptions {
  /** bytes read from disk but not yet handed to the tar packer (default 64 MiB; one file or chunk may exceed it). */
  readAheadBytes?: number;
  /** a file changed between the scan and the end of its read; the stream then fails with an error naming it. */
  onChangedWhileReading?: (path: string) => void;
  /** a file or symlink vanished (or is no longer a regular file) since the scan; it is skipped. */
  onVanished?: (path: string) => void;
  /** a file could not be read (EACCES, EIO…); when given, the file is skipped and reported here, else the stream fails. */
  onUnreadable?: (path: string, error: Error) => void;
  /**
   * a regular file was read whole and found unchanged: `hash` is the xxh64 (16 hex digits) of exactly the bytes its
   * entry carries. Called once per packed file, in archive order, before the stream ends.
   */
  onFileHashed?: (path: string, hash: string) => void;
  /** gzip the tar stream (true = level 1, the fast one; or a level 1–9). Off by default. */
  gzip?: boolean | number;
  /** aborting destroys the stream with the signal's reason and closes every open file. */
  signal?: AbortSignal;
}

/** DEFAULT_READ_AHEAD_BYTES bounds the memory held by read-ahead. */
export const DEFAULT_READ_AHEAD_BYTES = 64 * 1024 * 1024;
/** SMALL_FILE_MAX: files up to this size are read whole, synchronously. */
const SMALL_FILE_MAX = 1024 * 1024;
/** CHUNK_BYTES: big files are read (and handed to the packer) in chunks of this size. */
const CHUNK_BYTES = 1024 * 1024;
/** A batch of synchronous reads yields to the event loop after this many bytes or files. */
const BATCH_BYTES = 4 * 1024 * 1024;
const BATCH_FILES = 128;
/** Bytes handed to tar-stream but not yet emitted by it; above this the writer waits. */
const PACK_HIGH_WATER = 2 * 1024 * 1024;
/** What a header costs in the archive at most (ustar block + pax header block + pax data block). */
const HEADER_COST = 1536;
/** Readable buffer of the returned stream. */
const OUT_HIGH_WATER = 1024 * 1024;
/** tar-stream's output is gathered into chunks of this size before it is pushed on. */
const OUT_CHUNK_BYTES = 512 * 1024;

/** How files are opened: read-only, never through a symlink, never blocking on a FIFO swapped in since the scan. */
const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;

/** ChangedWhilePacking is the error a file that changed under the packer fails the stream with (exit 1). */
export class ChangedWhilePacking extends SwmError {
  constructor(readonly path: string) {
    super(ExitCode.failed, `"${path}" changed while it was being packed into the tar`, {
      hint: 'push again once it is no longer being written',
    });
  }
}

/** changedWhilePacking makes the error a file that changed under the packer fails the stream with. */
export function changedWhilePacking(path: string): SwmError {
  return new ChangedWhilePacking(path);
}

/** packTar turns workspace entries (in the order given) into a tar byte stream; see the module comment for the format. */
export function packTar(
  root: string,
  entries: TarEntrySource,
  opts: PackTarOptions = {},
): Readable {
  const packer = new TarPacker(root, entries, opts);
  const raw = packer.output;
  if (!opts.gzip) return raw;
  const level = typeof opts.gzip === 'number' ? opts.gzip : 1;
  return pipeline(raw, createGzip({ level }), () => {
    /* errors reach the returned stream: pipeline destroys it with them */
  });
}

type PreparedEntry =
  | { kind: 'header'; header: Header }
  | { kind: 'buffer'; header: Header; data: Buffer }
  | { kind: 'chunks'; header: Header; chunks: AsyncQueue<Buffer> };

/** TarPacker runs the read-ahead producer and the tar-writing consumer behind one Readable. */
class TarPacker {
  readonly output: Readable;
  private readonly pack = tarPack();
  private readonly budget: ByteBudget;
  private readonly prepared = new AsyncQueue<PreparedEntry>();
  private started = false;
  private stopped = false;
  /** bytes handed to tar-stream and bytes it has emitted: their difference is its queue. */
  private handed = 0;
  private emitted = 0;
  private packWaiter: (() => void) | undefined;
  /** tar-stream output not yet pushed on (gathered into OUT_CHUNK_BYTES chunks). */
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;
  /** set before the first entry is read, when the caller wants per-file hashes. */
  private hasher: Hasher | undefined;
  /** root ending in '/': a (workspace-relative) entry's file is this plus its path. */
  private readonly base: string;

  constructor(
    private readonly root: string,
    private readonly entries: TarEntrySource,
    private readonly opts: PackTarOptions,
  ) {
    this.budget = new ByteBudget(opts.readAheadBytes ?? DEFAULT_READ_AHEAD_BYTES);
    this.base = join(root, '/');
    this.output = new Readable({
      highWaterMark: OUT_HIGH_WATER,
      read: () => {
        if (!this.started) this.start();
        this.pack.resume();
      },
      destroy: (err, cb) => {
        this.stop(err ?? undefined);
        cb(err);
      },
    });
    this.pack.on('data', (data: unknown) => {
      const chunk = data as Buffer;
      this.emitted += chunk.length;
      if (this.packWaiter && this.handed - this.emitted < PACK_HIGH_WATER / 2) this.wakeWriter();
      this.gathered.push(chunk);
      this.gatheredBytes += chunk.length;
      if (this.gatheredBytes >= OUT_CHUNK_BYTES && !this.pushGathered()) this.pack.pause();
    });
    this.pack.on('end', () => {
      this.pushGathered();
      this.output.push(null);
    });
    this.pack.on('error', (err: Error) => this.fail(err));

    const signal = opts.signal;
    if (signal) {
      const onAbort = () => this.fail(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (signal.aborted) queueMicrotask(onAbort);
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.output.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
  }

  /** pushGathered pushes what tar-stream emitted so far as one chunk; false when the output wants no more for now. */
  private pushGathered(): boolean {
    if (this.gatheredBytes === 0) return true;
    const chunk = this.gathered.length === 1 ? this.gathered[0]! : Buffer.concat(this.gathered, this.gatheredBytes);
    this.gathered = [];
    this.gatheredBytes = 0;
    return this.output.push(chunk);
  }

  private start(): void {
    this.started = true;
    this.produce().catch((err) => this.fail(err));
    this.consume().catch((err) => this.fail(err));
  }

  private fail(err: unknown): void {
    if (this.output.destroyed) return;
    this.output.destroy(err instanceof Error ? err : new Error(String(err)));
  }

  /** stop ends all work: called when the output is destroyed (with the error, or none after a normal end or an early destroy). */
  private stop(err: Error | undefined): void {
    if (this.stopped) return;
    this.stopped = true;
    this.budget.close();
    this.prepared.fail(err ?? new Error('tar stream closed'));
    this.wakeWriter();
    if (err) this.pack.destroy(err);
    else this.pack.destroy();
    // open files are closed by the reader that holds them (never under an in-flight read: the number could be reused)
  }

  private wakeWriter(): void {
    const w = this.packWaiter;
    this.packWaiter = undefined;
    w?.();
  }

  /** roomInPack waits while tar-stream holds more than PACK_HIGH_WATER bytes not yet read from it. */
  private async roomInPack(): Promise<void> {
    while (!this.stopped && this.handed - this.emitted > PACK_HIGH_WATER) {
      await new Promise<void>((resolve) => (this.packWaiter = resolve));
    }
  }

  // ---- producer: turns entries into prepared entries, reading file data ahead ----

  private async produce(): Promise<void> {
    if (this.opts.onFileHashed) this.hasher = await xxh();
    let batchBytes = 0;
    let batchFiles = 0;
    for await (const item of this.entries) {
      for (const entry of isEntryList(item) ? item : [item]) {
        if (this.stopped) return;
        if (this.budget.full()) {
          await this.budget.waitForRoom();
          if (this.stopped) return;
        }
        if (entry.type === 'dir') {
          this.prepared.push({ kind: 'header', header: tarHeader(entry, 'directory', entry.mtimeMs) });
        } else if (entry.type === 'symlink') {
          const target = entry.target ?? this.readTarget(entry);
          if (target !== undefined) this.prepared.push({ kind: 'header', header: { ...tarHeader(entry, 'symlink', entry.mtimeMs), linkname: target } });
        } else if (entry.size <= SMALL_FILE_MAX) {
          const read = this.readSmallFile(entry);
          batchBytes += entry.size;
          batchFiles++;
          if (read) {
            this.budget.take(read.data.length);
            this.prepared.push(read);
          }
        } else {
          await this.readBigFile(entry);
          batchBytes = batchFiles = 0;
        }
        if (batchBytes >= BATCH_BYTES || batchFiles >= BATCH_FILES) {
          batchBytes = batchFiles = 0;
          await yieldToEventLoop();
        }
      }
    }
    this.prepared.end();
  }

  private readTarget(entry: TarSourceEntry): string | undefined {
    try {
      return readlinkSync(join(this.root, entry.path));
    } catch (e) {
      this.skipUnopenable(entry, e);
      return undefined;
    }
  }

  /** openEntry opens a file without following a symlink; undefined (after reporting) when it vanished or is unreadable. */
  private openEntry(entry: TarSourceEntry): { fd: number; stat: Stats } | undefined {
    let fd: number;
    try {
      fd = openSync(join(this.root, entry.path), OPEN_FLAGS);
    } catch (e) {
      this.skipUnopenable(entry, e);
      return undefined;
    }
    let stat: Stats;
    try {
      stat = fstatSync(fd);
    } catch (e) {
      closeQuietly(fd);
      throw e;
    }
    if (!stat.isFile()) {
      closeQuietly(fd);
      this.opts.onVanished?.(entry.path);
      return undefined;
    }
    // the scan records whole milliseconds (state and metadata do too), so compare at that precision
    if (stat.size !== entry.size || Math.floor(stat.mtimeMs) !== Math.floor(entry.mtimeMs)) {
      closeQuietly(fd);
      this.opts.onChangedWhileReading?.(entry.path);
      throw changedWhilePacking(entry.path);
    }
    return { fd, stat };
  }

  private skipUnopenable(entry: TarSourceEntry, e: unknown): void {
    const code = errnoCode(e);
    // ELOOP: the path is now a symlink (O_NOFOLLOW); ENOTDIR: a parent is no longer a folder.
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR' || code === 'EINVAL') {
      this.opts.onVanished?.(entry.path);
      return;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    if (this.opts.onUnreadable) {
      this.opts.onUnreadable(entry.path, err);
      return;
    }
    throw failure(`cannot read "${entry.path}" for the tar: ${code ?? err.message}`, e, 'fix its permissions or exclude it with -x');
  }

  /**
   * readSmallFile reads a whole file synchronously, then fstat()s it once: still a regular file, of the scan's size and
   * mtime, so neither a change before the read nor one during it goes unnoticed. Undefined when it was skipped
   * (vanished, unreadable and reported).
   */
  private readSmallFile(entry: TarSourceEntry): (PreparedEntry & { kind: 'buffer' }) | undefined {
    let fd: number;
    try {
      fd = openSync(this.base + entry.path, OPEN_FLAGS);
    } catch (e) {
      this.skipUnopenable(entry, e);
      return undefined;
    }
    try {
      const data = Buffer.allocUnsafe(entry.size);
      let got = 0;
      let readError: unknown;
      try {
        while (got < data.length) {
          const n = readSync(fd, data, got, data.length - got, got);
          if (n === 0) break;
          got += n;
        }
      } catch (e) {
        readError = e; // EISDIR, EAGAIN (a FIFO) or EIO: what it is now decides between vanished and unreadable
      }
      const stat = fstatSync(fd);
      if (!stat.isFile()) {
        this.opts.onVanished?.(entry.path);
        return undefined;
      }
      if (readError !== undefined) throw readError;
      // the scan records whole milliseconds (state and metadata do too), so compare at that precision
      if (got !== entry.size || stat.size !== entry.size || Math.floor(stat.mtimeMs) !== Math.floor(entry.mtimeMs)) {
        this.opts.onChangedWhileReading?.(entry.path);
        throw changedWhilePacking(entry.path);
      }
      if (this.hasher) this.opts.onFileHashed!(entry.path, hex64(this.hasher.h64Raw(data)));
      return { kind: 'buffer', header: { ...tarHeader(entry, 'file', stat.mtimeMs), size: entry.size }, data };
    } catch (e) {
      if (e instanceof SwmError) throw e;
      this.skipUnopenable(entry, e);
      return undefined;
    } finally {
      closeQuietly(fd);
    }
  }

  /** readBigFile queues the file's entry, then reads its data in chunks as the read-ahead budget allows. */
  private async readBigFile(entry: TarSourceEntry): Promise<void> {
    const opened = this.openEntry(entry);
    if (!opened) return;
    const { fd, stat } = opened;
    const chunks = new AsyncQueue<Buffer>();
    const hashState = this.hasher?.create64();
    try {
      this.prepared.push({ kind: 'chunks', header: { ...tarHeader(entry, 'file', stat.mtimeMs), size: entry.size }, chunks });
      let pos = 0;
      while (pos < entry.size) {
        await this.budget.waitForRoom();
        if (this.stopped) return;
        const buf = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, entry.size - pos));
        let got = 0;
        while (got < buf.length) {
          const n = await readAt(fd, buf, got, pos + got);
          if (n === 0) break;
          got += n;
        }
        pos += got;
        // the last chunk is released only once the file is known unchanged: the archive never gets a torn file's tail.
        if (got < buf.length || (pos === entry.size && changedSince(stat, fstatSync(fd)))) {
          this.opts.onChangedWhileReading?.(entry.path);
          throw changedWhilePacking(entry.path);
        }
        hashState?.update(buf);
        this.budget.take(got);
        chunks.push(buf);
      }
      if (hashState) this.opts.onFileHashed!(entry.path, hex64(hashState.digest()));
      chunks.end();
    } catch (e) {
      if (this.stopped) return;
      const err = e instanceof SwmError ? e : failure(`cannot read "${entry.path}" for the tar: ${errnoCode(e) ?? String(e)}`, e);
      chunks.fail(err);
      throw err;
    } finally {
      closeQuietly(fd);
    }
  }

  // ---- consumer: hands prepared entries to tar-stream in order, with backpressure ----

  private async consume(): Promise<void> {
    const onEntryDone = (err?: Error | null) => {
      if (err && !this.stopped) this.fail(err);
    };
    for (;;) {
      const item = this.prepared.shift() ?? (await this.prepared.next());
      if (item === undefined || this.stopped) break;
      if (this.handed - this.emitted > PACK_HIGH_WATER) await this.roomInPack();
      if (this.stopped) break;
      if (item.kind === 'header') {
        this.handed += HEADER_COST;
        this.pack.entry(item.header, onEntryDone).on('error', ignoreSinkError);
      } else if (item.kind === 'buffer') {
        this.handed += HEADER_COST + item.data.length;
        this.pack.entry(item.header, item.data, onEntryDone).on('error', ignoreSinkError);
        this.budget.release(item.data.length);
      } else {
        this.handed += HEADER_COST;
        const sink = this.pack.entry(item.header, onEntryDone);
        sink.on('error', ignoreSinkError);
        for (;;) {
          const chunk = await item.chunks.next();
          if (chunk === undefined || this.stopped) break;
          await this.roomInPack();
          if (this.stopped) break;
          this.handed += chunk.length;
          sink.write(chunk);
          this.budget.release(chunk.length);
        }
        if (this.stopped) break;
        sink.end(undefined);
      }
    }
    if (!this.stopped) this.pack.finalize();
  }
}

/** tarHeader builds the tar-stream header for an entry; a pax record carries a sub-second mtime. */
function tarHeader(entry: TarSourceEntry, type: 'file' | 'directory' | 'symlink', mtimeMs: number): Header {
  const header: Header = {
    name: entry.path,
    type,
    size: 0,
    mode: entry.mode & 0o7777,
    mtime: new Date(Math.max(0, Math.floor(mtimeMs / 1000) * 1000)),
    uid: 0,
    gid: 0,
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  };
  const paxTime = formatPaxTime(mtimeMs);
  if (paxTime !== undefined) header.pax = { mtime: paxTime };
  return header;
}

function isEntryList(item: TarSourceEntry | readonly TarSourceEntry[]): item is readonly TarSourceEntry[] {
  return Array.isArray(item);
}

/** ignoreSinkError: an entry sink's error also reaches its callback and the pack; without a listener streamx would throw it. */
function ignoreSinkError(): void {}

function changedSince(before: Stats, after: Stats): boolean {
  return before.size !== after.size || before.mtimeMs !== after.mtimeMs || before.ino !== after.ino;
}

function readAt(fd: number, buf: Buffer, offset: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, offset, buf.length - offset, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

/** ByteBudget counts bytes held in memory and lets a producer wait until they drop under a limit. */
class ByteBudget {
  private held = 0;
  private closed = false;
  private waiters: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  /** full: as many bytes as the limit are held (waitForRoom would wait). */
  full(): boolean {
    return !this.closed && this.held > 0 && this.held >= this.limit;
  }

  take(n: number): void {
    this.held += n;
  }

  release(n: number): void {
    this.held -= n;
    if (this.held < this.limit) this.wakeAll();
  }

  /** waitForRoom resolves once fewer than `limit` bytes are held (at once when nothing is held, or after close). */
  async waitForRoom(): Promise<void> {
    while (!this.closed && this.held > 0 && this.held >= this.limit) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** close releases every waiter for good (the stream stopped). */
  close(): void {
    this.closed = true;
    this.wakeAll();
  }

  private wakeAll(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
}

/** AsyncQueue is a single-consumer queue: push/end/fail on one side, `await next()` (undefined at the end) on the other. */
class AsyncQueue<T> {
  private items: T[] = [];
  private head = 0;
  private ended = false;
  private error: Error | undefined;
  private waiter: (() => void) | undefined;

  push(item: T): void {
    this.items.push(item);
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(err: Error): void {
    this.error ??= err;
    this.wake();
  }

  /** shift takes the next item when one is waiting (undefined otherwise, or at the end: then call next()); throws after fail. */
  shift(): T | undefined {
    if (this.error) throw this.error;
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head++] = undefined as T;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  async next(): Promise<T | undefined> {
    for (;;) {
      const item = this.shift();
      if (item !== undefined) return item;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
