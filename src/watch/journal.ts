// The watcher journal (`.swm/journal/`): append-only JSON-lines segments of create/update/delete events, read back from a cursor
// as coalesced per-path deltas; and the coverage check that decides whether recorded deletions may be mirrored.
import { closeSync, fdatasyncSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, unlinkSync, writeSync, chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { swmPaths } from '../state/paths.js';
import { writeFileAtomicSync } from '../state/atomic.js';
import { compareKeys } from '../keys.js';
import { errnoCode } from '../errors.js';
import { inspectWatcher, type WatcherGap } from './watcher-record.js';

/** JOURNAL_SEGMENT_BYTES is the size past which the writer starts a new segment file. */
export const JOURNAL_SEGMENT_BYTES = 8 * 1024 * 1024;
/** JOURNAL_SYNC_DELAY_MS is how long appended lines may wait for their fsync (lines are batched into one fdatasync). */
export const JOURNAL_SYNC_DELAY_MS = 100;
/** JOURNAL_CHUNK_LINES is how many lines go into one write when a large batch (a rescan) is appended. */
const JOURNAL_CHUNK_LINES = 1000;
const SEGMENT_RE = /^(\d{10})\.jsonl$/;
const READ_CHUNK = 1024 * 1024;

/**
 * JournalCursor is a position in the journal: the journal's identity (a new journal after `.swm/` was deleted starts over),
 * a segment number and a byte offset in it. Opaque to callers; JSON-serializable (the stamp stores it).
 */
export interface JournalCursor {
  journal: string;
  seg: number;
  off: number;
}

/** FileEventLine is one change: c = create, u = update, d = delete. `d: 1` marks a folder; `r: 1` an event found by a rescan or snapshot. */
export interface FileEventLine {
  t: number;
  e: 'c' | 'u' | 'd';
  p: string;
  d?: 1;
  r?: 1;
}

/** JournalLine is one line of a journal segment: a file event or a watcher control record (start, gap, stop). */
export type JournalLine =
  | FileEventLine
  | { t: number; e: 'start'; pid: number; fp: string }
  | { t: number; e: 'gap'; reason: string; reconciled?: 'snapshot' }
  | { t: number; e: 'stop'; reason: string };

/** JournalDeltas is what changed after a cursor, one entry per path (the last event wins). */
export interface JournalDeltas {
  changed: string[];
  deleted: string[];
  cursor: JournalCursor;
}

/** journalFiles names the files of the journal folder. */
export function journalFiles(workspace: string) {
  const dir = swmPaths(workspace).journal;
  return {
    dir,
    /** random identity of this journal; a cursor from another journal reads from the start. */
    id: join(dir, 'id'),
    /** metadata of the last @parcel/watcher snapshot (watch/snapshot.ts). */
    snapshotMeta: join(dir, 'snapshot.json'),
    /** paths the auto daemon must push again next cycle (files that were changing while read). */
    retry: join(dir, 'retry.json'),
    /** recorded deletions a cycle could not mirror (no watcher coverage then): mirrored once coverage is back. */
    deferredDeletions: join(dir, 'deferred-deletions.json'),
    segment: (seq: number) => join(dir, `${String(seq).padStart(10, '0')}.jsonl`),
  };
}

/** isJournalCursor checks that an opaque value (read back from the stamp) is a cursor. */
export function isJournalCursor(v: unknown): v is JournalCursor {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  return typeof c.journal === 'string' && Number.isInteger(c.seg) && Number.isInteger(c.off) && (c.off as number) >= 0;
}

/** readJournalId returns the identity of the workspace's journal, or undefined when there is no journal yet. */
export function readJournalId(workspace: string): string | undefined {
  try {
    const id = readFileSync(journalFiles(workspace).id, 'utf8').trim();
    return id.length > 0 ? id : undefined;
  } catch {
    return undefined;
  }
}

/** listSegments returns the sequence numbers of the journal's segment files, ascending. */
export function listSegments(workspace: string): number[] {
  let names: string[];
  try {
    names = readdirSync(journalFiles(workspace).dir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return [];
    throw e;
  }
  const seqs: number[] = [];
  for (const n of names) {
    const m = SEGMENT_RE.exec(n);
    if (m) seqs.push(Number(m[1]));
  }
  return seqs.sort((a, b) => a - b);
}

/**
 * JournalWriter appends lines to the journal (one writer: the watcher process). Every append is one write() per chunk of lines,
 * fdatasync'd within JOURNAL_SYNC_DELAY_MS; each open starts a new segment, so a torn tail left by a crash is never appended to.
 */
export class JournalWriter {
  private fd: number | undefined;
  private seq = 0;
  private size = 0;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;

  constructor(readonly workspace: string, private readonly rotateBytes = JOURNAL_SEGMENT_BYTES) {}

  /** open creates `.swm/journal/` (0700) and its identity if needed, and starts a new segment. */
  open(): void {
    const files = journalFiles(this.workspace);
    const swmDir = swmPaths(this.workspace).dir;
    if (!existsSync(swmDir)) mkdirSync(swmDir, { recursive: true, mode: 0o700 });
    mkdirSync(files.dir, { recursive: true, mode: 0o700 });
    chmodSync(files.dir, 0o700);
    if (!readJournalId(this.workspace)) writeFileAtomicSync(files.id, randomBytes(8).toString('hex') + '\n');
    const seqs = listSegments(this.workspace);
    this.seq = (seqs.at(-1) ?? 0) + 1;
    this.openSegment();
  }

  private openSegment(): void {
    this.fd = openSync(journalFiles(this.workspace).segment(this.seq), 'a', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  /** append writes lines (in chunks) and schedules their fsync; rotates to a new segment when this one is large. */
  append(lines: readonly JournalLine[]): void {
    if (this.fd === undefined) throw new Error('journal is not open');
    for (let i = 0; i < lines.length; i += JOURNAL_CHUNK_LINES) {
      const chunk = lines.slice(i, i + JOURNAL_CHUNK_LINES);
      const data = Buffer.from(chunk.map((l) => JSON.stringify(l)).join('\n') + '\n');
      let written = 0;
      while (written < data.length) written += writeSync(this.fd, data, written, data.length - written);
      this.size += data.length;
      this.dirty = true;
      if (this.size >= this.rotateBytes) this.rotate();
    }
    this.scheduleSync();
  }

  private rotate(): void {
    this.sync();
    closeSync(this.fd!);
    this.seq += 1;
    this.openSegment();
  }

  private scheduleSync(): void {
    if (this.syncTimer || !this.dirty) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.sync();
    }, JOURNAL_SYNC_DELAY_MS);
    this.syncTimer.unref();
  }

  /** sync flushes appended lines to disk now. */
  sync(): void {
    if (this.fd === undefined || !this.dirty) return;
    this.dirty = false;
    try {
      fdatasyncSync(this.fd);
    } catch {
      /* the file may sit in a deleted folder (workspace root removed): nothing left to protect */
    }
  }

  /** close syncs and closes the current segment. */
  close(): void {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    this.sync();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** currentLocation is where the open segment is now (follows renames of the workspace, via /proc/self/fd); undefined if unknown. */
  currentLocation(): string | undefined {
    if (this.fd === undefined) return undefined;
    try {
      return readlinkSync(`/proc/self/fd/${this.fd}`);
    } catch {
      return undefined;
    }
  }
}

/**
 * readJournalLines calls onLine for every complete line after `from` (all of the journal when from is undefined or names
 * another journal) and returns the cursor just past the last complete line. A torn last line (no newline yet) is left for later;
 * unparsable lines are skipped. Only bytes after the cursor are read.
 */
export function readJournalLines(workspace: string, from: JournalCursor | undefined, onLine: (line: JournalLine) => void): JournalCursor {
  const id = readJournalId(workspace) ?? '';
  const start = from && from.journal === id ? from : undefined;
  const seqs = listSegments(workspace).filter((s) => !start || s >= start.seg);
  let cursor: JournalCursor = start ?? { journal: id, seg: 0, off: 0 };
  const files = journalFiles(workspace);
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i]!;
    const isLast = i === seqs.length - 1;
    let offset = start && seq === start.seg ? start.off : 0;
    let fd: number;
    try {
      fd = openSync(files.segment(seq), 'r');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') continue; // pruned meanwhile
      throw e;
    }
    try {
      const size = fstatSync(fd).size;
      if (offset > size) offset = size;
      let pending = Buffer.alloc(0);
      let pos = offset;
      let consumed = offset;
      const buf = Buffer.alloc(READ_CHUNK);
      while (pos < size) {
        const n = readSync(fd, buf, 0, Math.min(READ_CHUNK, size - pos), pos);
        if (n <= 0) break;
        pos += n;
        const data = pending.length ? Buffer.concat([pending, buf.subarray(0, n)]) : buf.subarray(0, n);
        let lineStart = 0;
        for (let nl = data.indexOf(10, lineStart); nl >= 0; nl = data.indexOf(10, lineStart)) {
          const text = data.toString('utf8', lineStart, nl);
          consumed += nl + 1 - lineStart;
          lineStart = nl + 1;
          if (text.length === 0) continue;
          let parsed: JournalLine;
          try {
            parsed = JSON.parse(text) as JournalLine;
          } catch {
            continue; // a line torn by a crash and later followed by others: skip it
          }
          onLine(parsed);
        }
        pending = Buffer.from(data.subarray(lineStart));
      }
      // an incomplete tail is re-read later in the last segment; in an older one it can never complete: skip it
      cursor = { journal: id, seg: seq, off: isLast ? consumed : size };
    } finally {
      closeSync(fd);
    }
  }
  return cursor;
}

/**
 * readJournalDeltas coalesces every file event after `from`, per path, last event wins: create/update → changed,
 * delete → deleted; a delete of a folder also deletes every path under it recorded before it. Paths are workspace-relative,
 * '/'-separated, sorted with compareKeys. `changed` may name folders (created whole: walk them).
 */
export function readJournalDeltas(workspace: string, from: JournalCursor | undefined): JournalDeltas {
  let seq = 0;
  const last = new Map<string, { seq: number; deleted: boolean }>();
  const deletedAt = new Map<string, number>();
  const cursor = readJournalLines(workspace, from, (line) => {
    if (line.e !== 'c' && line.e !== 'u' && line.e !== 'd') return;
    if (typeof line.p !== 'string' || line.p.length === 0) return;
    seq += 1;
    const deleted = line.e === 'd';
    last.set(line.p, { seq, deleted });
    if (deleted) deletedAt.set(line.p, seq);
  });
  const changed: string[] = [];
  const deleted: string[] = [];
  for (const [path, own] of last) {
    let isDeleted = own.deleted;
    let latest = own.seq;
    if (deletedAt.size > 0) {
      for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
        const ancestorDeleted = deletedAt.get(path.slice(0, i));
        if (ancestorDeleted !== undefined && ancestorDeleted > latest) {
          latest = ancestorDeleted;
          isDeleted = true;
        }
      }
    }
    (isDeleted ? deleted : changed).push(path);
  }
  changed.sort(compareKeys);
  deleted.sort(compareKeys);
  return { changed, deleted, cursor };
}

/** pruneJournal deletes the segments entirely before `before` (already consumed and stamped). Returns how many it removed. */
export function pruneJournal(workspace: string, before: JournalCursor): number {
  if (before.journal !== readJournalId(workspace)) return 0;
  let removed = 0;
  for (const seq of listSegments(workspace)) {
    if (seq >= before.seg) break;
    try {
      unlinkSync(journalFiles(workspace).segment(seq));
      removed += 1;
    } catch {
      /* already gone */
    }
  }
  return removed;
}

/** CoverageResult says whether recorded deletions may be mirrored; when not, why (a sentence) and what to run. */
export type CoverageResult = { ok: true } | { ok: false; reason: string; hint: string };

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * checkWatcherCoverage is ok only when a watcher process is alive for this workspace now, its journal has held every change
 * (deletions included) since before sinceMs — it started before, or every restart/error since was reconciled from a
 * @parcel/watcher snapshot — no gap is waiting to be reconciled, and it applies the current exclude fingerprint.
 * `id` only names the workspace in the hint.
 */
export function checkWatcherCoverage(workspace: string, sinceMs: number, currentFingerprint: string, id = '<id>'): CoverageResult {
  const watch = `swm sync watch ${id}`;
  const push = `swm sync push ${id}`;
  const state = inspectWatcher(workspace);
  if (state.kind !== 'running') {
    return {
      ok: false,
      reason: state.kind === 'stale'
        ? `no watcher is running for this workspace (the one started at ${iso(state.record.startedAt)} has exited)`
        : 'no watcher is running for this workspace',
      hint: `run \`${watch}\`, then \`${push}\` once; deletions made after that push can be mirrored`,
    };
  }
  const rec = state.record;
  if (rec.fingerprint !== currentFingerprint) {
    return {
      ok: false,
      reason: "the watcher's excludes changed since it started (different defaults, -x/config excludes or .swmignore)",
      hint: `restart it with \`${watch} --stop\` and \`${watch}\`, then run \`${push}\` once`,
    };
  }
  if (rec.status !== 'watching' || rec.coveredSince === undefined) {
    return { ok: false, reason: 'the watcher is still starting', hint: `wait a moment and retry; \`swm sync status ${id}\` shows when it runs` };
  }
  // a gap not reconciled from a snapshot either is being reconciled now, or coverage restarted after it (coveredSince moved on)
  const open: WatcherGap | undefined = rec.gaps.find((g) => g.reconciled === false && g.at >= (rec.coveredSince ?? 0));
  if (open) {
    return {
      ok: false,
      reason: `the watcher may have missed events at ${iso(open.at)} (${open.reason}) and has not reconciled them yet`,
      hint: `retry in a minute; if it persists, restart it with \`${watch} --stop\` and \`${watch}\`, then run \`${push}\` once`,
    };
  }
  if (rec.coveredSince > sinceMs) {
    const gap = [...rec.gaps].reverse().find((g) => g.at > sinceMs);
    const reason = gap
      ? `the watcher's journal has a gap at ${iso(gap.at)} (${gap.reason}), after the last sync at ${iso(sinceMs)}`
      : `the watcher started at ${iso(rec.coveredSince)}, after the last sync at ${iso(sinceMs)}`;
    return { ok: false, reason, hint: `run \`${push}\` without --delete first; deletions made after it can be mirrored` };
  }
  return { ok: true };
}
