// Writes the entries of an extracted tar to disk, in archive order: the file-system half of tar/extract.ts (which parses
// the archive and refuses bad names before anything gets here).
//
// Checked against the disk (refused with SwmError exit 2, `refusing tar entry "<name>": <reason>`): a parent folder that
// is a symlink (from the archive or already on disk) or not a folder; a file or symlink where a non-empty folder is.
// Files, symlinks and empty folders in the way of an entry of another type are replaced.
//
// Where files go, so that a reader never sees a half-written one:
// - A folder that does not exist yet (a fresh pull: every folder) is built under a hidden temp name beside its place,
//   `.name.swm-tmp-XXXXXXXX`, files written straight to their names inside it, and renamed into place whole once the
//   archive moves past it (its entries are contiguous in any archive swm or GNU tar writes; one that comes back to it
//   later finds it in place and takes the way below). One rename per new folder instead of one per file, and no temp
//   name per file. Before it is renamed it is invisible under its name; the scan skips temp names, and a run that
//   takes the lock from a killed one removes the temp folder (state/stale-temps.ts).
// - Into a folder that exists, each regular file is written to a temp name beside its place and renamed there.
// Either way every file written before a failure is complete and in place (`abandon` renames the temp folder into
// place with what it holds, which is only complete files: the file being written is removed first).
//
// Every regular file is hashed (xxh64) as it is written. With an expected hash (a snapshot's per-file hashes), a file
// whose bytes hash otherwise is never put in place (TarEntryHashMismatch, exit 1). Folders get their mode and mtime in
// `finish`, once all their contents are written. A concurrent local attacker racing the writer is out of scope.
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
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
  writevSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { SwmError, ExitCode, errnoCode, failure } from '../errors.js';
import { tempPathFor } from '../state/atomic.js';
import { xxh, hex64 } from '../engine/hash.js';

type Hasher = Awaited<ReturnType<typeof xxh>>;
type HashState = ReturnType<Hasher['create64']>;

/** WriteOp is one step of writing the tree; `rel` is a checked workspace-relative path, `raw` the entry's name as archived. */
export type WriteOp =
  | { t: 'file'; rel: string; raw: string; mode: number; mtimeMs: number; expected?: string; data: Buffer }
  /** a big file: its data follows in `chunk` ops, then `close`. */
  | { t: 'open'; rel: string; raw: string; mode: number; mtimeMs: number; size: number; expected?: string }
  | { t: 'chunk'; data: Buffer }
  | { t: 'close' }
  | { t: 'dir'; rel: string; raw: string; mode: number; mtimeMs: number }
  | { t: 'symlink'; rel: string; raw: string; target: string; mtimeMs: number };

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

/** refuseEntry is the error for an entry that must not be written. */
export function refuseEntry(name: string, reason: string): SwmError {
  return new SwmError(ExitCode.usage, `refusing tar entry ${JSON.stringify(name)}: ${reason}`, {
    hint: 'the archive is unsafe or damaged; nothing outside the workspace was written',
  });
}

/** A big file's data is written in batches of at least this many bytes. */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** How files are created: never over something already there, never through a symlink. */
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

interface DirToFinish {
  /** workspace-relative: a folder built in a temp folder has moved by the time it is finished. */
  rel: string;
  mode: number;
  mtimeMs: number;
}

/** StagedFolder is a folder that did not exist, being built under a temp name beside its place. */
interface StagedFolder {
  /** workspace-relative path of its place. */
  rel: string;
  /** its temp folder, absolute. */
  tmp: string;
}

/** CreatedFile is a file createFile opened: at `path`, its mode already final when `modeSet`. */
interface CreatedFile {
  fd: number;
  path: string;
  modeSet: boolean;
}

/** OpenFile is the big file being written chunk by chunk. */
interface OpenFile extends CreatedFile {
  rel: string;
  raw: string;
  abs: string;
  mode: number;
  mtimeMs: number;
  size: number;
  expected?: string;
  written: number;
  hash: HashState;
  /** data received but not yet written (up to WRITE_BATCH_BYTES). */
  batch: Buffer[];
  batchBytes: number;
}

/** TreeWriter applies WriteOps under one root; see the module comment. */
export class TreeWriter {
  /** root with a trailing '/': an entry's place is this plus its (checked) relative path. */
  private readonly base: string;
  /** workspace-relative folders checked (or created) as real folders, not symlinks. */
  private readonly safeDirs = new Set<string>();
  private readonly dirsToFinish: DirToFinish[] = [];
  /** the folder being built under a temp name, if any. */
  private staged: StagedFolder | undefined;
  private open: OpenFile | undefined;
  /** permission bits the umask clears (undefined: unknown, so every file's mode is set explicitly). */
  private readonly umask = currentUmask();

  private constructor(
    root: string,
    private readonly hasher: Hasher,
  ) {
    this.base = root.endsWith('/') ? root : root + '/';
  }

  /** create makes a writer for root (an existing folder, by its real path). */
  static async create(root: string): Promise<TreeWriter> {
    return new TreeWriter(root, await xxh());
  }

  /** apply performs one op; returns the xxh64 of the file a `file` or `close` op put in place. */
  apply(op: WriteOp): string | undefined {
    switch (op.t) {
      case 'file':
        this.enter(op.rel, op.raw);
        return this.writeFile(op);
      case 'open':
        this.enter(op.rel, op.raw);
        this.openFile(op);
        return undefined;
      case 'chunk':
        this.writeChunk(op.data);
        return undefined;
      case 'close':
        return this.closeFile();
      case 'dir':
        this.enter(op.rel, op.raw);
        this.makeDir(op.rel, op.mode, op.mtimeMs);
        return undefined;
      case 'symlink':
        this.enter(op.rel, op.raw);
        this.makeSymlink(op.rel, op.raw, op.target, op.mtimeMs);
        return undefined;
    }
  }

  /** finish puts the last staged folder in place and gives folders their modes and mtimes, deepest first. */
  finish(): void {
    this.commitStaged();
    for (let i = this.dirsToFinish.length - 1; i >= 0; i--) {
      const { rel, mode, mtimeMs } = this.dirsToFinish[i]!;
      const abs = this.base + rel;
      chmodSync(abs, mode);
      utimesSync(abs, Date.now() / 1000, utimeSeconds(mtimeMs));
    }
  }

  /**
   * abandon ends a writer that will get no more ops (extraction stopped early): the big file being written, if any,
   * is removed, and the staged folder is put in place with the complete files it holds; should that fail, it goes.
   */
  abandon(): void {
    const open = this.open;
    this.open = undefined;
    if (open) {
      closeQuietly(open.fd);
      unlinkQuietly(open.path);
    }
    try {
      this.commitStaged();
    } catch {
      /* the temp folder is removed; the error that stopped the extraction is the one to report */
    }
  }

  /** enter readies an entry's place: a staged folder it is not in is finished, and its parent folders made sure of. */
  private enter(rel: string, raw: string): void {
    if (this.open) throw new Error(`entry ${JSON.stringify(raw)} starts before the file ${JSON.stringify(this.open.raw)} is complete`);
    if (this.staged && !isWithin(rel, this.staged.rel)) this.commitStaged();
    this.ensureParents(rel, raw);
  }

  /** ensureParents makes sure every parent folder of rel is a real folder (never a symlink), creating missing ones. */
  private ensureParents(rel: string, rawName: string): void {
    let end = rel.indexOf('/');
    while (end !== -1) {
      const dir = rel.slice(0, end);
      if (!this.safeDirs.has(dir)) {
        const abs = this.placeOf(dir);
        const st = lstatOrUndefined(abs);
        if (st === undefined) this.newFolder(dir, abs, 0o755);
        else if (st.isSymbolicLink()) throw refuseEntry(rawName, `its folder ${JSON.stringify(dir)} is a symlink; writing through it is refused`);
        else if (!st.isDirectory()) throw refuseEntry(rawName, `${JSON.stringify(dir)} exists and is not a folder`);
        this.safeDirs.add(dir);
      }
      end = rel.indexOf('/', end + 1);
    }
  }

  /** placeOf is where a workspace-relative path is written now: inside the staged temp folder, or at its place. */
  private placeOf(rel: string): string {
    const staged = this.staged;
    if (staged && isWithin(rel, staged.rel)) return staged.tmp + rel.slice(staged.rel.length);
    return this.base + rel;
  }

  /**
   * newFolder creates a folder that is not there: inside the staged folder as it is, else as a new staged folder (a
   * temp folder beside its place, where everything under it is written until the archive moves past it).
   */
  private newFolder(rel: string, abs: string, mode: number): void {
    if (this.staged) {
      mkdirSync(abs, { mode });
      return;
    }
    for (;;) {
      const tmp = tempPathFor(abs);
      try {
        mkdirSync(tmp, { mode });
      } catch (e) {
        if (errnoCode(e) === 'EEXIST') continue;
        throw e;
      }
      this.staged = { rel, tmp };
      return;
    }
  }

  /**
   * commitStaged renames the staged folder into place. Should something have appeared there meanwhile (nothing else
   * writes the workspace under the lock, but a user might), its contents are moved in one by one instead.
   */
  private commitStaged(): void {
    const staged = this.staged;
    if (!staged) return;
    this.staged = undefined;
    try {
      this.moveIntoPlace(staged.tmp, staged.rel);
    } catch (e) {
      rmSync(staged.tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** moveIntoPlace renames a folder built under a temp name to rel, merging it into a real folder found there. */
  private moveIntoPlace(tmp: string, rel: string): void {
    const abs = this.base + rel;
    try {
      renameSync(tmp, abs);
      return;
    } catch (e) {
      const code = errnoCode(e);
      if (code !== 'EEXIST' && code !== 'ENOTEMPTY' && code !== 'ENOTDIR') throw e;
    }
    const st = lstatOrUndefined(abs);
    if (!st?.isDirectory()) {
      throw failure(`cannot extract the folder ${JSON.stringify(rel)}: something that is not a folder appeared at its place while it was extracted`, undefined, 'pull again');
    }
    for (const name of readdirSync(tmp)) {
      const from = join(tmp, name);
      const childRel = `${rel}/${name}`;
      if (lstatSync(from).isDirectory()) this.moveIntoPlace(from, childRel);
      else {
        this.clearWayFor(childRel, childRel, this.base + childRel);
        renameSync(from, this.base + childRel);
      }
    }
    rmdirSync(tmp);
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

  /** writeFile writes a small file whole (after checking its hash); returns its xxh64. */
  private writeFile(op: WriteOp & { t: 'file' }): string {
    const hash = hex64(this.hasher.h64Raw(op.data));
    if (op.expected !== undefined && hash !== op.expected) throw new TarEntryHashMismatch(op.rel, hash, op.expected);
    const abs = this.placeOf(op.rel);
    const created = this.createFile(op.rel, abs, op.mode);
    const { fd } = created;
    try {
      writeAll(fd, op.data);
      if (!created.modeSet) fchmodSync(fd, op.mode);
      futimesSync(fd, Date.now() / 1000, utimeSeconds(op.mtimeMs));
      closeSync(fd);
    } catch (e) {
      closeQuietly(fd);
      unlinkQuietly(created.path);
      throw e;
    }
    this.putInPlace(op.rel, op.raw, created.path, abs);
    return hash;
  }

  private openFile(op: WriteOp & { t: 'open' }): void {
    const abs = this.placeOf(op.rel);
    const created = this.createFile(op.rel, abs, op.mode);
    this.open = {
      ...created, rel: op.rel, raw: op.raw, abs, mode: op.mode, mtimeMs: op.mtimeMs, size: op.size, expected: op.expected,
      written: 0, hash: this.hasher.create64(), batch: [], batchBytes: 0,
    };
  }

  private writeChunk(data: Buffer): void {
    const open = this.open;
    if (!open) throw new Error('file data without a file');
    open.hash.update(data);
    open.written += data.length;
    open.batch.push(data);
    open.batchBytes += data.length;
    if (open.batchBytes >= WRITE_BATCH_BYTES) this.writeBatch(open);
  }

  private writeBatch(open: OpenFile): void {
    try {
      writeAllv(open.fd, open.batch);
    } catch (e) {
      this.abandonOpenFile();
      throw e;
    }
    open.batch = [];
    open.batchBytes = 0;
  }

  /** closeFile completes the big file (its size and hash checked) and puts it in place; returns its xxh64. */
  private closeFile(): string {
    const open = this.open;
    if (!open) throw new Error('end of file data without a file');
    if (open.batchBytes > 0) this.writeBatch(open);
    let hash: string;
    try {
      if (open.written !== open.size) throw new Error(`entry ${JSON.stringify(open.raw)} has ${open.written} of its ${open.size} bytes`);
      hash = hex64(open.hash.digest());
      if (open.expected !== undefined && hash !== open.expected) throw new TarEntryHashMismatch(open.rel, hash, open.expected);
      if (!open.modeSet) fchmodSync(open.fd, open.mode);
      futimesSync(open.fd, Date.now() / 1000, utimeSeconds(open.mtimeMs));
      closeSync(open.fd);
    } catch (e) {
      this.abandonOpenFile();
      throw e;
    }
    this.open = undefined;
    this.putInPlace(open.rel, open.raw, open.path, open.abs);
    return hash;
  }

  private abandonOpenFile(): void {
    const open = this.open;
    this.open = undefined;
    if (!open) return;
    closeQuietly(open.fd);
    unlinkQuietly(open.path);
  }

  /** putInPlace renames a file written to a temp name onto its place (nothing to do for one written at its place). */
  private putInPlace(rel: string, raw: string, written: string, abs: string): void {
    if (written === abs) return;
    try {
      this.clearWayFor(rel, raw, abs);
      renameSync(written, abs);
    } catch (e) {
      unlinkQuietly(written);
      throw e;
    }
  }

  /**
   * createFile opens a new file for rel's data (abs: its place now). In a staged folder that is its place itself,
   * created with its final mode when the umask leaves that be (one call less); should something be there already (a
   * second entry for the same path, rare) it takes the way files into existing folders take: a private temp file
   * beside its place, renamed there once complete.
   */
  private createFile(rel: string, abs: string, mode: number): CreatedFile {
    if (this.staged !== undefined && isWithin(rel, this.staged.rel)) {
      const modeSet = this.umask !== undefined && (mode & this.umask) === 0;
      try {
        return { fd: openSync(abs, CREATE_FLAGS, modeSet ? mode : 0o600), path: abs, modeSet };
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
      }
    }
    for (;;) {
      const tmp = tempPathFor(abs);
      try {
        return { fd: openSync(tmp, CREATE_FLAGS, 0o600), path: tmp, modeSet: false };
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
      }
    }
  }

  private makeDir(rel: string, mode: number, mtimeMs: number): void {
    const abs = this.placeOf(rel);
    const st = lstatOrUndefined(abs);
    // owner rwx while extracting, so a read-only folder can still be filled; the real mode is set at the end
    if (st === undefined) this.newFolder(rel, abs, mode | 0o700);
    else if (st.isDirectory()) {
      if ((st.mode & 0o700) !== 0o700) chmodSync(abs, (st.mode & 0o777) | 0o700);
    } else {
      unlinkSync(abs); // a file or symlink in the way (unlinking a symlink never touches its target)
      mkdirSync(abs, { mode: mode | 0o700 });
    }
    this.safeDirs.add(rel);
    this.dirsToFinish.push({ rel, mode, mtimeMs });
  }

  private makeSymlink(rel: string, rawName: string, target: string, mtimeMs: number): void {
    const abs = this.placeOf(rel);
    const tmp = tempPathFor(abs);
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
}

/** isWithin: rel is folder or lies under it (both workspace-relative, no trailing '/'). */
function isWithin(rel: string, folder: string): boolean {
  return rel.length === folder.length ? rel === folder : rel.startsWith(folder) && rel.charCodeAt(folder.length) === 47; // '/'
}

/** currentUmask reads the process umask from /proc (Linux) without changing it; undefined elsewhere. */
function currentUmask(): number | undefined {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? parseInt(m[1]!, 8) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * utimeSeconds converts an mtime in ms (microsecond precision, as pax records carry it) to the seconds utimes takes.
 * A double holds a 2020s time only to ~0.12 µs and the kernel truncates it, so `ms / 1000` could land just below the
 * recorded microsecond, a millisecond early when that is a whole one; a quarter-microsecond bias lands it inside.
 */
function utimeSeconds(mtimeMs: number): number {
  return (Math.round(mtimeMs * 1000) + 0.25) / 1_000_000;
}

function lstatOrUndefined(abs: string): Stats | undefined {
  return lstatSync(abs, { throwIfNoEntry: false });
}

function writeAll(fd: number, data: Buffer): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
}

function writeAllv(fd: number, bufs: Buffer[]): void {
  let pending = bufs;
  while (pending.length > 0) {
    let written = writevSync(fd, pending);
    const rest: Buffer[] = [];
    for (const b of pending) {
      if (written >= b.length) written -= b.length;
      else {
        rest.push(b.subarray(written));
        written = 0;
      }
    }
    pending = rest;
  }
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
