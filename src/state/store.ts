// The per-path sync state in `.swm/state-<target>.tsv`: one JSON line per path in S3 key order, with a checksummed trailer.
// Read as a stream (memory does not grow with the tree); rewritten atomically by merging in a batch of updates.
import { createReadStream, existsSync, openSync, writeSync, fsyncSync, closeSync, renameSync, mkdirSync, unlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';
import { join, dirname } from 'node:path';
import { compareKeys } from '../keys.js';
import { swmPaths } from './paths.js';
import { tempPathFor } from './atomic.js';

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

function decodeEntry(line: string): StateEntry {
  const row = JSON.parse(line) as unknown;
  if (!Array.isArray(row) || row.length < 7 || row.length > 9) throw new StateCorruptError('malformed state line');
  const [path, t, size, mtimeMs, mode, hash, etag, target, remoteTime] = row as unknown[];
  if (typeof path !== 'string' || typeof t !== 'string' || !(t in TYPES) || typeof size !== 'number' || typeof mtimeMs !== 'number' ||
      typeof mode !== 'number' || typeof hash !== 'string' || typeof etag !== 'string' ||
      (target !== undefined && target !== null && typeof target !== 'string') || (remoteTime !== undefined && typeof remoteTime !== 'number')) {
    throw new StateCorruptError('malformed state line');
  }
  const e: StateEntry = { path, type: TYPES[t as keyof typeof TYPES], size, mtimeMs, mode, hash, etag };
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
 * readState streams the state entries in key order. Throws StateCorruptError (possibly after yielding some entries)
 * when the file is malformed, out of order or its checksum does not match. No file → no entries.
 */
export async function* readState(file: string): AsyncGenerator<StateEntry> {
  if (!existsSync(file)) return;
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 }), crlfDelay: Infinity });
  const digest = createHash('sha1');
  let first = true;
  let count = 0;
  let previous: string | undefined;
  let ended = false;
  for await (const line of lines) {
    if (first) {
      if (line !== HEADER) throw new StateCorruptError('missing header');
      first = false;
      continue;
    }
    if (ended) throw new StateCorruptError('data after trailer');
    if (line.startsWith(TRAILER)) {
      const [, n, sum] = line.split(' ');
      if (Number(n) !== count || sum !== digest.digest('hex')) throw new StateCorruptError('checksum mismatch');
      ended = true;
      continue;
    }
    let entry: StateEntry;
    try {
      entry = decodeEntry(line);
    } catch {
      throw new StateCorruptError(`malformed line ${count + 2}`);
    }
    if (previous !== undefined && compareKeys(previous, entry.path) >= 0) throw new StateCorruptError('entries out of order');
    previous = entry.path;
    digest.update(line).update('\n');
    count++;
    yield entry;
  }
  if (first) return; // empty file: treat as no state
  if (!ended) throw new StateCorruptError('truncated (no trailer)');
}

/** validateState reads the whole state once; returns undefined when valid, else the reason it is corrupt. */
export async function validateState(file: string): Promise<string | undefined> {
  try {
    for await (const _ of readState(file)) { /* reading validates */ }
    return undefined;
  } catch (e) {
    if (e instanceof StateCorruptError) return e.message;
    throw e;
  }
}

/** StateUpdates collects changes during a run: an entry to set, or null to drop the path. */
export type StateUpdates = Map<string, StateEntry | null>;

/** discardState removes the state file (after corruption, so the next run does a full compare). */
export function discardState(file: string): void {
  try { unlinkSync(file); } catch { /* not there */ }
}

/**
 * commitState rewrites state.tsv as old state merged with updates, atomically (temp + fsync + rename).
 * Streams the old file, so memory holds only the updates. `replaceAll` starts from empty instead of the old file.
 */
export async function commitState(file: string, updates: StateUpdates, options: { replaceAll?: boolean } = {}): Promise<void> {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const pending = [...updates.entries()].sort((a, b) => compareKeys(a[0], b[0]));
  const tmp = tempPathFor(file);
  const fd = openSync(tmp, 'w', 0o600);
  const digest = createHash('sha1');
  let count = 0;
  let buffer: string[] = [HEADER];
  const flush = (force = false) => {
    if (!force && buffer.length < 4096) return;
    writeSync(fd, buffer.join('\n') + '\n');
    buffer = [];
  };
  const emit = (e: StateEntry) => {
    const line = encodeEntry(e);
    digest.update(line).update('\n');
    buffer.push(line);
    count++;
    flush();
  };
  try {
    let i = 0;
    const old = options.replaceAll ? (async function* () {})() : readState(file);
    for await (const entry of old) {
      while (i < pending.length && compareKeys(pending[i]![0], entry.path) < 0) {
        const u = pending[i++]![1];
        if (u) emit(u);
      }
      if (i < pending.length && pending[i]![0] === entry.path) {
        const u = pending[i++]![1];
        if (u) emit(u);
      } else {
        emit(entry);
      }
    }
    while (i < pending.length) {
      const u = pending[i++]![1];
      if (u) emit(u);
    }
    buffer.push(`${TRAILER} ${count} ${digest.digest('hex')}`);
    flush(true);
    fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* gone */ }
    throw e;
  }
  renameSync(tmp, file);
}
