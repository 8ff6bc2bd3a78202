// The per-path sync state in `.swm/state-<target>.tsv`: one JSON line per path in S3 key order, with a checksummed trailer.
// Read as a stream (memory does not grow with the tree); rewritten atomically by merging in a batch of updates.
import { openSync, readSync, writeSync, fsyncSync, closeSync, renameSync, mkdirSync, unlinkSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { createHash } from 'node:crypto';
import { join, dirname } from 'node:path';
import { compareKeys } from '../keys.js';
import { swmPaths } from './paths.js';
import { tempPathFor } from './atomic.js';
import { errnoCode } from '../errors.js';

/** StateEntry is what the last successful sync saw for one path (SPEC §5). */
export interface StateEntry {
  /** workspace-relative path; folders (empty-folder markers) end in '/'. */
  path: string;
  type: 'file' | 'symlink' | 'dir';
  size: number;
  mtimeMs: number;
  mode: number;
  /** xxh64 of the content (symlink: of its target), 16 hex digits. */
  hash: string;
  /** remote ETag as last seen; '' when never seen (raw or skip-pull push records the put's etag). */
  etag: string;
  /** symlink target. */
  target?: string;
  /**
   * the remote object's last-modified time in whole seconds, as last seen in a listing, GET or HEAD; absent when the
   * ETag came from a put (whose answer has no time). S3 ETags digest the content only: a rewrite that changed only the
   * metadata (a chmod) keeps the ETag and moves this time (engine/plan.ts compareRemote).
   */
  remoteTime?: number;
}

const HEADER = '#swm-state 1';
const TRAILER = '#end';

/** StateCorruptError means state.tsv failed validation; callers warn and rebuild from a full compare. */
export class StateCorruptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateCorruptError';
  }
}

function encodeEntry(e: StateEntry): string {
  const row: unknown[] = [e.path, e.type[0], e.size, e.mtimeMs, e.mode, e.hash, e.etag];
  if (e.target !== undefined || e.remoteTime !== undefined) row.push(e.target ?? null);
  if (e.remoteTime !== undefined) row.push(e.remoteTime);
  return JSON.stringify(row);
}

const TYPES = { f: 'file', s: 'symlink', d: 'dir' } as const;

/** decodeRow parses one state line into its checked row: [path, type letter, size, mtimeMs, mode, hash, etag, target?, remoteTime?]. */
function decodeRow(line: string): unknown[] {
  const row = JSON.parse(line) as unknown;
  if (!Array.isArray(row) || row.length < 7 || row.length > 9) throw new StateCorruptError('malformed state line');
  const [path, t, size, mtimeMs, mode, hash, etag, target, remoteTime] = row as unknown[];
  if (typeof path !== 'string' || typeof t !== 'string' || !(t in TYPES) || typeof size !== 'number' || typeof mtimeMs !== 'number' ||
      typeof mode !== 'number' || typeof hash !== 'string' || typeof etag !== 'string' ||
      (target !== undefined && target !== null && typeof target !== 'string') || (remoteTime !== undefined && typeof remoteTime !== 'number')) {
    throw new StateCorruptError('malformed state line');
  }
  return row;
}

/** entryOfRow builds the StateEntry of a row decodeRow checked. */
function entryOfRow(row: unknown[]): StateEntry {
  const [path, t, size, mtimeMs, mode, hash, etag, target, remoteTime] = row as [string, keyof typeof TYPES, number, number, number, string, string, unknown, unknown];
  const e: StateEntry = { path, type: TYPES[t], size, mtimeMs, mode, hash, etag };
  if (typeof target === 'string') e.target = target;
  if (typeof remoteTime === 'number') e.remoteTime = remoteTime;
  return e;
}

/** StateKind picks the state file: per-file objects (`files`) or the `--tar` snapshot (`tar`). */
export type StateKind = 'files' | 'tar';

/**
 * stateFileFor names the state file of one (bucket, dest) pair: state is what was synced WITH a target, so a push of
 * the same folder to another bucket or dest starts from no state instead of reading the old target's files as deleted.
 */
export function stateFileFor(workspace: string, bucketText: string, dest: string, kind: StateKind): string {
  const id = createHash('sha1').update(`${bucketText}\0${dest}`).digest('hex').slice(0, 12);
  return join(swmPaths(workspace).dir, `${kind === 'tar' ? 'tar-state' : 'state'}-${id}.tsv`);
}

/**
 * CHUNK_BYTES is how much of a state file is read at a time: one read, one digest update and one batch (~1,000 entries)
 * per chunk. Small enough that a batch is used up before the young generation of the heap is collected.
 */
const CHUNK_BYTES = 128 << 10;

/**
 * readStateBatches streams the state entries in key order, a batch (one chunk of the file) at a time. Throws
 * StateCorruptError (after yielding the entries before the fault) when the file is malformed, out of order or its
 * checksum does not match. No file, or an empty one → no entries.
 *
 * Cost per entry is about one JSON.parse: the file is read in synchronous chunks, and the checksum covers each chunk's
 * run of entry lines in one digest update (measured: readline and a digest update per line cost 2–3× the parse).
 */
export async function* readStateBatches(file: string): AsyncGenerator<StateEntry[]> {
  for await (const rows of readStateRows(file, false)) yield rows.entries;
}

/** StateRows is a batch of state entries, with their lines as read (when asked for) to copy them unchanged. */
interface StateRows {
  entries: StateEntry[];
  lines: string[];
}

/** readStateRows reads a state file as readStateBatches does; `keepLines` adds each entry's line, `build` false only checks it. */
async function* readStateRows(file: string, keepLines: boolean, build = true): AsyncGenerator<StateRows> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw e;
  }
  try {
    const reader = new StateReader(build);
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    const decoder = new StringDecoder('utf8');
    for (;;) {
      const n = readSync(fd, buffer, 0, CHUNK_BYTES, null);
      const rows: StateRows = { entries: [], lines: [] };
      const fault = reader.push(n === 0 ? decoder.end() : decoder.write(buffer.subarray(0, n)), n === 0, rows.entries, keepLines ? rows.lines : undefined);
      if (rows.entries.length > 0) yield rows;
      if (fault) throw fault;
      if (n === 0) return;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * readState streams the state entries in key order, one at a time (readStateBatches flattened). Throws StateCorruptError
 * (possibly after yielding some entries) when the file is malformed, out of order or its checksum does not match.
 */
export async function* readState(file: string): AsyncGenerator<StateEntry> {
  for await (const batch of readStateBatches(file)) yield* batch;
}

/**
 * StateReader checks and decodes a state file's text as it arrives in pieces. Lines end at '\n' (a '\r' before it is
 * dropped, as readline did); the checksum is SHA-1 over every entry line plus '\n'.
 */
class StateReader {
  /** `build` false only checks the file (validateState): no entries are made. */
  constructor(private readonly build = true) {}

  private carry = '';
  private first = true;
  private ended = false;
  private count = 0;
  private previous: string | undefined;
  private readonly digest = createHash('sha1');

  /**
   * push takes the next piece of text (`last`: the file ended) and appends its entries to `out` (and their lines to
   * `lines`, when given); returns the fault, if any.
   */
  push(piece: string, last: boolean, out: StateEntry[], lines?: string[]): StateCorruptError | undefined {
    let text = this.carry + piece;
    this.carry = '';
    if (text.includes('\r')) {
      // a '\r' at the very end may be the first half of a CRLF split between two pieces
      if (!last && text.endsWith('\r')) {
        this.carry = '\r';
        text = text.slice(0, -1);
      }
      text = text.replace(/\r\n?/g, '\n');
    }
    let end = text.lastIndexOf('\n');
    if (!last) {
      this.carry = text.slice(end + 1) + this.carry;
    } else if (end < text.length - 1) {
      text += '\n'; // a last line without its newline still counts, as readline reads it
      end = text.length - 1;
    }
    try {
      this.lines(text, end + 1, out, lines);
    } catch (e) {
      if (e instanceof StateCorruptError) return e;
      throw e;
    }
    if (last) {
      if (this.first) return undefined; // empty file: no state
      if (!this.ended) return new StateCorruptError('truncated (no trailer)');
    }
    return undefined;
  }

  /** lines handles the complete lines in text[0, end): each entry line is checked, decoded and counted. */
  private lines(text: string, end: number, out: StateEntry[], lines: string[] | undefined): void {
    let pos = 0;
    // entry lines are digested in runs: text[runStart, pos) is a run of whole entry lines, each with its '\n'
    let runStart = 0;
    while (pos < end) {
      const nl = text.indexOf('\n', pos);
      const line = text.slice(pos, nl);
      if (this.first) {
        if (line !== HEADER) throw new StateCorruptError('missing header');
        this.first = false;
        pos = runStart = nl + 1;
        continue;
      }
      if (this.ended) throw new StateCorruptError('data after trailer');
      if (line.startsWith(TRAILER)) {
        if (runStart < pos) this.digest.update(text.slice(runStart, pos));
        const [, n, sum] = line.split(' ');
        if (Number(n) !== this.count || sum !== this.digest.digest('hex')) throw new StateCorruptError('checksum mismatch');
        this.ended = true;
        pos = runStart = nl + 1;
        continue;
      }
      let row: unknown[];
      try {
        row = decodeRow(line);
      } catch {
        throw new StateCorruptError(`malformed line ${this.count + 2}`);
      }
      const path = row[0] as string;
      if (this.previous !== undefined && compareKeys(this.previous, path) >= 0) throw new StateCorruptError('entries out of order');
      this.previous = path;
      this.count++;
      if (this.build) {
        out.push(entryOfRow(row));
        lines?.push(line);
      }
      pos = nl + 1;
    }
    if (runStart < pos) this.digest.update(text.slice(runStart, pos));
  }
}

/** validateState reads the whole state once; returns undefined when valid, else the reason it is corrupt. */
export async function validateState(file: string): Promise<string | undefined> {
  try {
    for await (const _ of readStateRows(file, false, false)) { /* reading validates */ }
    return undefined;
  } catch (e) {
    if (e instanceof StateCorruptError) return e.message;
    throw e;
  }
}

/** StateUpdates collects changes during a run: an entry to set, or null to drop the path. */
export type StateUpdates = Map<string, StateEntry | null>;

/**
 * StateChanges collects a run's changes as StateUpdates does, compactly: each entry is kept as its encoded state line
 * (~130 bytes) rather than as an object (~350 bytes with its strings); and an entry that only learns its object's remote
 * time (the first pull pass after a push, for every object it put) as its path and that number, packed (RemoteTimes).
 * A run may change every path of the workspace.
 */
export class StateChanges {
  private readonly lines = new Map<string, string | null>();
  /** remote times to record in entries of the state file that are otherwise unchanged; `lines` wins over them. */
  private times = new RemoteTimes();

  get size(): number {
    return this.lines.size + this.times.count;
  }

  set(entry: StateEntry): void {
    this.lines.set(entry.path, encodeEntry(entry));
  }

  drop(path: string): void {
    this.lines.set(path, null);
  }

  /**
   * setRemoteTime records `entry`, which is the state file's entry for its path with only `remoteTime` new: kept as just
   * the time when the paths come in key order (a pass marching the state), else as a whole line.
   */
  setRemoteTime(entry: StateEntry): void {
    if (this.lines.has(entry.path) || !this.times.add(entry.path, entry.remoteTime!)) this.set(entry);
  }

  /** copy is a snapshot of the changes so far (a checkpoint commits it while the run goes on). */
  copy(): StateChanges {
    const out = new StateChanges();
    for (const [k, v] of this.lines) out.lines.set(k, v);
    out.times = this.times.copy();
    return out;
  }

  /** forget removes the changes of `committed` that are still the same here (they are in the state file now). */
  forget(committed: StateChanges): void {
    for (const [k, v] of committed.lines) if (this.lines.get(k) === v) this.lines.delete(k);
    this.times.forget(committed.times);
  }

  clear(): void {
    this.lines.clear();
    this.times = new RemoteTimes();
  }

  /** merge writes the changes into the entries of the state file in key order, through `emit` (an encoded line each). */
  async merge(old: AsyncIterable<StateRows>, emit: (line: string) => void): Promise<void> {
    const lines = inKeyOrder(this.lines);
    const times = this.times.entries();
    let change = lines.next();
    let time = times.next();
    for await (const rows of old) {
      for (let r = 0; r < rows.entries.length; r++) {
        const entry = rows.entries[r]!;
        while (!change.done && compareKeys(change.value[0], entry.path) < 0) {
          if (change.value[1] !== null) emit(change.value[1]);
          change = lines.next();
        }
        while (!time.done && compareKeys(time.value[0], entry.path) < 0) time = times.next(); // no longer in the state
        if (!change.done && change.value[0] === entry.path) {
          if (change.value[1] !== null) emit(change.value[1]);
          change = lines.next();
        } else if (!time.done && time.value[0] === entry.path) {
          emit(withRemoteTime(entry, rows.lines[r], time.value[1]));
        } else {
          emit(rows.lines[r] ?? encodeEntry(entry));
        }
      }
    }
    for (; !change.done; change = lines.next()) if (change.value[1] !== null) emit(change.value[1]);
  }
}

/**
 * withRemoteTime is the state line of `entry` with a remote time: its line as read with the time appended, when that line
 * is the 7-field form (no target, no time yet), else `entry` encoded anew.
 */
function withRemoteTime(entry: StateEntry, line: string | undefined, remoteTime: number): string {
  if (line !== undefined && entry.target === undefined && entry.remoteTime === undefined && line.endsWith('"]')) {
    return `${line.slice(0, -1)},null,${JSON.stringify(remoteTime)}]`;
  }
  return encodeEntry({ ...entry, remoteTime });
}

/**
 * RemoteTimes holds (path, remote time) pairs added in key order, packed: per chunk of 4,096, the paths joined by '\n' in
 * one string (~25 bytes a path instead of ~75 in a Map) and the times in a Float64Array.
 */
class RemoteTimes {
  private sealed: { paths: string; times: Float64Array; count: number }[] = [];
  private paths: string[] = [];
  private times: number[] = [];
  private last: string | undefined;
  count = 0;

  /** add appends a pair; false (nothing added) when the path is not after every path added so far, or holds a '\n'. */
  add(path: string, time: number): boolean {
    if (path.includes('\n') || (this.last !== undefined && compareKeys(this.last, path) >= 0)) return false;
    this.paths.push(path);
    this.times.push(time);
    this.last = path;
    this.count++;
    if (this.paths.length >= 4096) this.seal();
    return true;
  }

  private seal(): void {
    if (this.paths.length === 0) return;
    this.sealed.push({ paths: this.paths.join('\n'), times: Float64Array.from(this.times), count: this.paths.length });
    this.paths = [];
    this.times = [];
  }

  /** copy shares the packed chunks (they never change); later adds to either side stay their own. */
  copy(): RemoteTimes {
    this.seal();
    const out = new RemoteTimes();
    out.sealed = [...this.sealed];
    out.last = this.last;
    out.count = this.count;
    return out;
  }

  /** forget drops the chunks a copy of this one (now committed) holds: they are the first ones here. */
  forget(committed: RemoteTimes): void {
    const held = new Set(committed.sealed);
    const kept = this.sealed.filter((chunk) => !held.has(chunk));
    for (const chunk of this.sealed) if (held.has(chunk)) this.count -= chunk.count;
    this.sealed = kept;
  }

  *entries(): Generator<[string, number], undefined> {
    this.seal();
    for (const chunk of this.sealed) {
      const paths = chunk.paths.split('\n');
      for (let i = 0; i < chunk.count; i++) yield [paths[i]!, chunk.times[i]!];
    }
    return undefined;
  }
}

/** inKeyOrder iterates a map's entries in key order; they usually went in in key order already (the passes march in it), then no sort runs. */
function inKeyOrder<V>(map: ReadonlyMap<string, V>): Iterator<[string, V], undefined> {
  let previous: string | undefined;
  for (const key of map.keys()) {
    if (previous !== undefined && compareKeys(previous, key) > 0) {
      const keys = [...map.keys()].sort(compareKeys);
      return keys.map((k): [string, V] => [k, map.get(k)!])[Symbol.iterator]();
    }
    previous = key;
  }
  return map.entries();
}

/** discardState removes the state file (after corruption, so the next run does a full compare). */
export function discardState(file: string): void {
  try { unlinkSync(file); } catch { /* not there */ }
}

/**
 * commitState rewrites state.tsv as old state merged with updates, atomically (temp + fsync + rename).
 * Streams the old file, so memory holds only the updates. `replaceAll` starts from empty instead of the old file.
 */
export async function commitState(file: string, updates: StateUpdates | StateChanges, options: { replaceAll?: boolean } = {}): Promise<void> {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let changes = updates;
  if (!(changes instanceof StateChanges)) {
    changes = new StateChanges();
    for (const [path, entry] of updates as StateUpdates) entry ? changes.set(entry) : changes.drop(path);
  }
  const tmp = tempPathFor(file);
  const fd = openSync(tmp, 'w', 0o600);
  const digest = createHash('sha1');
  let count = 0;
  let buffer: string[] = [];
  const flush = (force = false) => {
    if (buffer.length === 0 || (!force && buffer.length < 512)) return;
    const text = buffer.join('\n') + '\n';
    digest.update(text);
    writeSync(fd, text);
    buffer = [];
  };
  try {
    writeSync(fd, HEADER + '\n');
    await changes.merge(options.replaceAll ? noRows() : readStateRows(file, true), (line) => {
      buffer.push(line);
      count++;
      flush();
    });
    flush(true);
    writeSync(fd, `${TRAILER} ${count} ${digest.digest('hex')}\n`);
    fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* gone */ }
    throw e;
  }
  renameSync(tmp, file);
}

async function* noRows(): AsyncGenerator<StateRows> {}
