// Verb: auto. Start/restart/stop the detached auto-sync daemon, report its state, and the loop it runs: every interval,
// journal deltas ─▶ coalesce ─▶ push only those paths (and mirror recorded deletions) ─▶ stamp + cursor.
import { lstatSync, readdirSync, readFileSync, statSync, type Dirent, type Stats } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SyncTarget } from '../config/types.js';
import type { AutoStatusReport, CycleRecord, PushOptions, TransferSummary } from './types.js';
import { buildExcludeRules, type ExcludeRules } from '../engine/exclude.js';
import { readStamp, type Stamp } from '../state/stamp.js';
import { swmPaths } from '../state/paths.js';
import { writeFileAtomicSync } from '../state/atomic.js';
import { compareKeys } from '../keys.js';
import { errnoCode, ExitCode, failure, isSwmError, refusal, usageError } from '../errors.js';
import { compiledEntry, isProcessAlive, spawnDetached, stopProcess, waitFor, type ProcessIdentity } from '../daemon/process.js';
import { claimPidRecord, inspectPidFile, readPidRecord, removePidRecord, stopPidFileProcess, writePidRecord, type PidRecord } from '../daemon/pidfile.js';
import { logLine, logTail, rotateOpenLog } from '../daemon/log.js';
import { checkWatcherCoverage, isJournalCursor, journalFiles, pruneJournal, readJournalDeltas } from '../watch/journal.js';
import { liveWatcher } from '../watch/watcher-record.js';
import { excludedSafely } from '../watch/subtree.js';
import { watcherState, watchStart, watchStop } from './watch.js';

/** DAEMON_SCRIPT is the file name of the daemon's entry (dist/cli/auto-daemon.js). */
export const DAEMON_SCRIPT = 'auto-daemon.js';
/** LOG_TAIL_LINES is how many daemon log lines `auto --status` shows. */
const LOG_TAIL_LINES = 10;
const START_TIMEOUT_MS = 15_000;
/** WARNINGS_LOGGED caps the per-cycle warnings copied into daemon.log. */
const WARNINGS_LOGGED = 5;
/**
 * FILE_SETTLE_MS: a changed file modified less than this long ago may still be being written. The cycle waits until it is this
 * old and uploads it only if it did not change meanwhile; a file that keeps changing waits for a later cycle.
 */
export const FILE_SETTLE_MS = 1000;
/** MAX_SETTLE_WAIT_MS: a file that never stops changing (a log appended to all day) is uploaded anyway, as a consistent snapshot, after this long. */
export const MAX_SETTLE_WAIT_MS = 60_000;

/** DaemonOptions are what a running daemon was started with; starting again with other values restarts it. */
export interface DaemonOptions {
  interval: number;
  bucket: string;
  dest: string;
  excludes: string[];
}

/** DaemonTotals add up every cycle since the daemon started. */
export interface DaemonTotals {
  cycles: number;
  /** files uploaded plus remote objects deleted. */
  files: number;
  bytes: number;
  /** cycles that ended in an error. */
  errors: number;
}

/** DaemonRecord is daemon.json: the pid file of the auto daemon, with its options and its last cycle. */
export interface DaemonRecord extends PidRecord {
  workspace: string;
  id: string;
  options: DaemonOptions;
  lastCycle?: CycleRecord;
  totals: DaemonTotals;
}

/** AutoStatus is AutoStatusReport plus the running totals and the watcher's state. */
export interface AutoStatus extends AutoStatusReport {
  totals?: DaemonTotals;
  watcher: ReturnType<typeof watcherState>;
}

/** DaemonArgs is the JSON the daemon process receives on its command line. */
export interface DaemonArgs {
  target: SyncTarget;
  interval: number;
}

/** daemonIdentity is how the live daemon of this workspace is recognised (guards against pid reuse). */
export function daemonIdentity(workspace: string): ProcessIdentity {
  return { script: DAEMON_SCRIPT, arg: workspace };
}

function daemonOptions(target: SyncTarget, interval: number): DaemonOptions {
  return { interval, bucket: target.bucket.text, dest: target.dest, excludes: [...target.excludes] };
}

function sameOptions(a: DaemonOptions, b: DaemonOptions): boolean {
  return a.interval === b.interval && a.bucket === b.bucket && a.dest === b.dest
    && a.excludes.length === b.excludes.length && a.excludes.every((x, i) => x === b.excludes[i]);
}

/** stampTime is when the last push or pull of this target started (undefined: none, or the stamp is for another bucket/dest). */
export function stampTime(stamp: Stamp | undefined, target: SyncTarget): number | undefined {
  if (!stamp) return undefined;
  if (stamp.bucket !== undefined && (stamp.bucket !== target.bucket.text || stamp.dest !== target.dest)) return undefined;
  const at = Math.max(stamp.lastPush?.at ?? 0, stamp.lastPull?.at ?? 0);
  return at > 0 ? at : undefined;
}

/**
 * autoStart starts the daemon, or restarts it when it runs with other options (interval, bucket, dest, excludes); with the
 * same options it is left alone. Refuses (exit 4) without a previous successful push or pull of this target, unless force.
 */
export async function autoStart(target: SyncTarget, opts: { interval: number; force: boolean }): Promise<{ restarted: boolean; pid: number; alreadyRunning: boolean }> {
  const ws = target.workspace;
  try {
    if (!statSync(ws).isDirectory()) throw usageError(`workspace ${ws} is not a folder`, 'pass the folder to sync as [path]');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw usageError(`workspace ${ws} does not exist`, 'create it first, or pull into it');
    throw e;
  }
  if (!Number.isFinite(opts.interval) || opts.interval <= 0) throw usageError(`interval must be a positive number of seconds, not ${opts.interval}`);
  buildExcludeRules(ws, target.excludes); // a bad pattern is a usage error now, not a failing daemon
  if (!opts.force && stampTime(readStamp(ws), target) === undefined) {
    throw refusal(
      `auto-sync of ${target.id} needs a previous successful push or pull of this workspace to ${target.bucket.text}`,
      `run \`swm sync push ${target.id}\` first, or pass --force to start anyway`,
    );
  }
  const paths = swmPaths(ws);
  const identity = daemonIdentity(ws);
  const wanted = daemonOptions(target, opts.interval);
  let restarted = false;
  const state = inspectPidFile<DaemonRecord>(paths.daemon, identity);
  if (state.kind === 'running') {
    if (sameOptions(state.record.options, wanted)) return { restarted: false, pid: state.record.pid, alreadyRunning: true };
    await stopProcess(state.record.pid, identity);
    removePidRecord(paths.daemon, state.record.pid);
    restarted = true;
  } else if (state.kind === 'stale') {
    removePidRecord(paths.daemon, state.record.pid);
  }
  const args: DaemonArgs = { target: { ...target, interval: opts.interval }, interval: opts.interval };
  const script = compiledEntry(new URL('../cli/auto-daemon.js', import.meta.url));
  const pid = spawnDetached(script, [ws, JSON.stringify(args)], paths.daemonLog);
  const outcome = await waitFor(() => {
    if (readPidRecord(paths.daemon)?.pid === pid) return 'ready' as const;
    if (!isProcessAlive(pid, identity)) return 'exited' as const;
    return undefined;
  }, START_TIMEOUT_MS);
  if (outcome !== 'ready') {
    const other = inspectPidFile<DaemonRecord>(paths.daemon, identity);
    if (other.kind === 'running') return { restarted, pid: other.record.pid, alreadyRunning: true }; // a concurrent start won
    const why = logTail(paths.daemonLog, 1)[0] ?? 'no message';
    throw failure(`the auto-sync daemon of ${target.id} did not start: ${why}`, undefined, `see ${paths.daemonLog}`);
  }
  return { restarted, pid, alreadyRunning: false };
}

/** autoStop stops the daemon (SIGTERM: it finishes or aborts its cycle; SIGKILL after 5 s). The watcher keeps running. */
export async function autoStop(target: SyncTarget): Promise<{ wasRunning: boolean }> {
  return stopPidFileProcess(swmPaths(target.workspace).daemon, daemonIdentity(target.workspace));
}

/** daemonState is the daemon part of `swm sync status` (a dead pid counts as not running). */
export function daemonState(workspace: string): { running: boolean; pid?: number; since?: string; interval?: number; lastCycle?: CycleRecord } {
  const state = inspectPidFile<DaemonRecord>(swmPaths(workspace).daemon, daemonIdentity(workspace));
  if (state.kind !== 'running') return { running: false };
  const r = state.record;
  return { running: true, pid: r.pid, since: new Date(r.startedAt).toISOString(), interval: r.options.interval, lastCycle: r.lastCycle };
}

/** autoStatus reports the daemon (running, pid, interval, last cycle, totals), the watcher, and the tail of daemon.log. */
export async function autoStatus(target: SyncTarget): Promise<AutoStatus> {
  const ws = target.workspace;
  const paths = swmPaths(ws);
  const state = inspectPidFile<DaemonRecord>(paths.daemon, daemonIdentity(ws));
  let fingerprint = '';
  try {
    fingerprint = buildExcludeRules(ws, target.excludes).fingerprint;
  } catch {
    /* an invalid .swmignore: the watcher shows as drifted */
  }
  const base = { logTail: logTail(paths.daemonLog, LOG_TAIL_LINES), watcher: watcherState(ws, fingerprint) };
  if (state.kind !== 'running') return { running: false, ...base };
  const r = state.record;
  return {
    running: true,
    pid: r.pid,
    interval: r.options.interval,
    since: new Date(r.startedAt).toISOString(),
    lastCycle: r.lastCycle,
    totals: r.totals,
    ...base,
  };
}

/** readRetry returns the paths the daemon must push again (they were changing while read last cycle). */
/** readPathList reads a JSON list of workspace-relative paths kept beside the journal ([] when missing or unreadable). */
function readPathList(file: string): string[] {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return Array.isArray(v) ? v.filter((p): p is string => typeof p === 'string') : [];
  } catch {
    return [];
  }
}

function writePathList(file: string, paths: readonly string[]): void {
  writeFileAtomicSync(file, JSON.stringify([...new Set(paths)].sort(compareKeys)) + '\n');
}

function readRetry(workspace: string): string[] {
  return readPathList(journalFiles(workspace).retry);
}

function writeRetry(workspace: string, paths: readonly string[]): void {
  writePathList(journalFiles(workspace).retry, paths);
}

/** workspaceHasFiles tells whether any non-excluded file is left (an emptied or unmounted workspace mirrors no deletions). */
function workspaceHasFiles(root: string, rules: ExcludeRules, dir = '', depth = 0): boolean {
  let names: Dirent[];
  try {
    names = readdirSync(dir ? `${root}/${dir}` : root, { withFileTypes: true });
  } catch {
    return false;
  }
  for (const d of names) {
    const rel = dir ? `${dir}/${d.name}` : d.name;
    if (excludedSafely(rules, rel, d.isDirectory())) continue;
    if (!d.isDirectory()) return true;
    if (depth < 64 && workspaceHasFiles(root, rules, rel, depth + 1)) return true;
  }
  return false;
}

/** CycleMemory is what the loop carries from one cycle to the next. */
interface CycleMemory {
  /** a fingerprint drift that restarting the watcher did not cure ("old→new"): not retried every cycle. */
  incurableDrift?: string;
  /** when each file that is still changing was first held back (for MAX_SETTLE_WAIT_MS). */
  settlingSince: Map<string, number>;
}

/** FileVersion is what tells two looks at a file apart: replaced, appended to, or rewritten. */
type FileVersion = { ino: number; size: number; mtimeMs: number };

function versionOf(st: Stats): FileVersion {
  return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

function lstatQuiet(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/**
 * holdBackChanging splits the journal's changed paths into those to push now and those still being written. A file modified
 * within FILE_SETTLE_MS (or with an mtime in the future) is looked at again once it is that old: unchanged, it goes now;
 * changed, it waits for a later cycle (until it has waited MAX_SETTLE_WAIT_MS). Folders and vanished paths go now (push
 * walks folders and skips what is gone). The wait is aborted with the daemon.
 */
async function holdBackChanging(root: string, paths: readonly string[], signal: AbortSignal, memory: CycleMemory): Promise<{ ready: string[]; changing: string[] }> {
  const now = Date.now();
  const ready: string[] = [];
  const young = new Map<string, FileVersion>();
  let wait = 0;
  for (const path of paths) {
    const st = lstatQuiet(join(root, path));
    if (!st || st.isDirectory()) {
      ready.push(path);
      continue;
    }
    const age = now - st.mtimeMs;
    if (age >= FILE_SETTLE_MS) {
      ready.push(path);
      continue;
    }
    young.set(path, versionOf(st));
    wait = Math.max(wait, FILE_SETTLE_MS - Math.max(0, age));
  }
  const listed = new Set(paths);
  for (const path of memory.settlingSince.keys()) if (!listed.has(path) || !young.has(path)) memory.settlingSince.delete(path);
  if (young.size === 0) return { ready, changing: [] };
  await sleep(Math.ceil(wait), undefined, { signal });
  const changing: string[] = [];
  for (const [path, before] of young) {
    const st = lstatQuiet(join(root, path));
    const after = st && versionOf(st);
    const still = after !== undefined && after.ino === before.ino && after.size === before.size && after.mtimeMs === before.mtimeMs;
    const since = memory.settlingSince.get(path) ?? now;
    if (!st || still || Date.now() - since >= MAX_SETTLE_WAIT_MS) {
      memory.settlingSince.delete(path);
      ready.push(path);
    } else {
      memory.settlingSince.set(path, since);
      changing.push(path);
    }
  }
  return { ready: ready.sort(compareKeys), changing: changing.sort(compareKeys) };
}

/** ensureWatcher starts the watcher if none runs, and restarts it when its exclude fingerprint drifted. */
async function ensureWatcher(target: SyncTarget, fingerprint: string, memory: CycleMemory): Promise<void> {
  const ws = target.workspace;
  const rec = liveWatcher(ws);
  if (!rec) {
    const { pid } = await watchStart(target);
    logLine(`watcher started (pid ${pid})`);
    return;
  }
  if (rec.fingerprint === fingerprint) return;
  const drift = `${rec.fingerprint}→${fingerprint}`;
  if (memory.incurableDrift === drift) return;
  logLine(`the watcher's exclude fingerprint drifted (${drift}): restarting it`);
  await watchStop(target);
  const { pid } = await watchStart(target);
  const now = liveWatcher(ws);
  if (now && now.fingerprint !== fingerprint) {
    memory.incurableDrift = `${now.fingerprint}→${fingerprint}`;
    logLine(`warning: the restarted watcher (pid ${pid}) applies other excludes than this daemon (another swm version?): restart the daemon with \`swm sync auto ${target.id}\``);
  } else {
    logLine(`watcher restarted (pid ${pid})`);
  }
}

/**
 * runCycle is one auto-sync cycle. With a stamp, a journal cursor in it and a watcher that covered everything since, only the
 * journal's changed paths are pushed and its recorded deletions mirrored; otherwise a full stateful push without deletions
 * re-establishes the baseline. The stamp (with the new cursor) is written by push only once the remote has everything.
 */
async function runCycle(target: SyncTarget, signal: AbortSignal, memory: CycleMemory): Promise<CycleRecord> {
  const ws = target.workspace;
  const started = Date.now();
  const at = new Date(started).toISOString();
  let mode = 'journal';
  try {
    const rules = buildExcludeRules(ws, target.excludes);
    await ensureWatcher(target, rules.fingerprint, memory);
    const stamp = readStamp(ws);
    const since = stampTime(stamp, target);
    const cursor = isJournalCursor(stamp?.journalCursor) ? stamp.journalCursor : undefined;
    const deltas = readJournalDeltas(ws, cursor);
    const retry = readRetry(ws);
    // deletions recorded while a cycle had no coverage stay pending (the cursor moves past their events)
    const deferredFile = journalFiles(ws).deferredDeletions;
    const deferred = readPathList(deferredFile);
    const recordedDeletions = [...new Set([...deferred, ...deltas.deleted])].sort(compareKeys);
    let fullReason: string | undefined;
    if (since === undefined) fullReason = 'no previous push or pull of this target';
    else if (!cursor) fullReason = 'the last sync did not record a journal position';
    else {
      const coverage = checkWatcherCoverage(ws, since, rules.fingerprint, target.id);
      if (!coverage.ok) fullReason = coverage.reason;
    }
    if (!fullReason && deltas.changed.length === 0 && recordedDeletions.length === 0 && retry.length === 0) {
      const idle: CycleRecord = { at, result: 'ok', files: 0, bytes: 0 };
      logCycle(idle, started, 'nothing changed');
      return idle;
    }

    // progress (RxJS) loads with push, not with this module: `swm sync status` imports daemonState from here
    const [{ push }, { createProgress }] = await Promise.all([import('./push.js'), import('../engine/progress.js')]);
    const progress = createProgress();
    const warnings: string[] = [];
    progress.subscribe((ev) => {
      if (ev.type === 'warning') warnings.push(ev.message);
    });
    const ctx = { target, progress, force: false, dryRun: false, signal };
    let opts: PushOptions;
    let changing: string[] = [];
    if (fullReason) {
      mode = 'full';
      // the recorded deletions are kept, not lost: mirrored by a later cycle once the watcher covers the workspace again
      if (recordedDeletions.length > 0) writePathList(deferredFile, recordedDeletions);
      const later = recordedDeletions.length > 0 ? `; ${recordedDeletions.length} recorded deletions wait for watcher coverage` : '';
      logLine(`full push: ${fullReason}${later}`);
      opts = { raw: false, skipPull: false, delete: false, tar: false, journalCursor: deltas.cursor };
    } else {
      let deleted = recordedDeletions;
      if (deleted.length > 0 && !workspaceHasFiles(ws, rules)) {
        logLine(`the workspace has no files: ${deleted.length} recorded deletions are not mirrored (kept for later)`);
        writePathList(deferredFile, deleted);
        deleted = [];
      }
      const held = await holdBackChanging(ws, [...new Set([...deltas.changed, ...retry])].sort(compareKeys), signal, memory);
      changing = held.changing;
      if (held.ready.length === 0 && deleted.length === 0) {
        // everything is still being written: the journal is read again next cycle, these are retried
        writeRetry(ws, changing);
        const waiting: CycleRecord = { at, result: 'ok', files: 0, bytes: 0 };
        logCycle(waiting, started, `${changing.length} still changing (next cycle)`);
        return waiting;
      }
      // recorded before the push moves the journal cursor past their events, so a crash in between cannot lose them
      if (changing.length > 0) writeRetry(ws, [...retry, ...changing]);
      opts = { raw: false, skipPull: false, delete: deleted.length > 0, tar: false, only: { changed: held.ready, deleted }, journalCursor: deltas.cursor };
    }
    const summary: TransferSummary = await push(ctx, opts);
    for (const w of warnings.slice(0, WARNINGS_LOGGED)) logLine(`warning: ${w}`);
    if (warnings.length > WARNINGS_LOGGED) logLine(`(${warnings.length - WARNINGS_LOGGED} more warnings)`);

    const stamped = summary.errors.length === 0 && summary.conflicts.length === 0;
    writeRetry(ws, stamped ? [...changing, ...summary.unstable] : [...retry, ...changing, ...summary.unstable]);
    if (stamped) pruneJournal(ws, deltas.cursor);
    // a journal-mode push that went through has dealt with every recorded deletion (mirrored, or exists again)
    if (stamped && mode === 'journal' && deferred.length > 0 && opts.delete) writePathList(deferredFile, []);
    const record: CycleRecord = {
      at,
      result: summary.conflicts.length > 0 ? 'conflicts' : summary.errors.length > 0 ? 'error' : 'ok',
      files: summary.uploaded + summary.deletedRemote,
      bytes: summary.bytes,
    };
    if (summary.conflicts.length > 0) {
      record.error = `${summary.conflicts.length} conflicts (${summary.conflicts.slice(0, 3).join(', ')}): nothing uploaded; resolve them, then pull`;
    } else if (summary.errors.length > 0) {
      const first = summary.errors[0]!;
      record.error = `${summary.errors.length} files failed (${first.path}: ${first.message}); retried next cycle`;
    }
    const deletedNote = summary.deletedRemote > 0 ? `, ${summary.deletedRemote} deleted remotely` : '';
    const stillChanging = summary.unstable.length + changing.length;
    const unstableNote = stillChanging > 0 ? `, ${stillChanging} still changing (next cycle)` : '';
    logCycle(record, started, `${mode}${deletedNote}${unstableNote}`);
    return record;
  } catch (e) {
    const message = (e as Error).message + (isSwmError(e) && e.hint ? ` (${e.hint})` : '');
    const record: CycleRecord = isSwmError(e) && e.exitCode === ExitCode.refused
      ? { at, result: 'skipped', files: 0, bytes: 0, error: `busy or refused: ${message}` }
      : { at, result: 'error', files: 0, bytes: 0, error: signal.aborted ? 'interrupted by stop' : message };
    logCycle(record, started, mode);
    return record;
  }
}

function logCycle(c: CycleRecord, started: number, note: string): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(2);
  logLine(`cycle ${c.result}: ${c.files} files, ${c.bytes} bytes in ${seconds}s (${note})${c.error ? `: ${c.error}` : ''}`);
}

/**
 * runAutoLoop is the daemon's body: claim daemon.json, run a cycle now and then every interval until signal aborts (SIGTERM:
 * the running cycle's push is aborted cleanly), keep daemon.json's last cycle and totals current, remove it at the end.
 * Resolves with the process exit code.
 */
export async function runAutoLoop(target: SyncTarget, opts: { interval: number }, signal: AbortSignal): Promise<number> {
  const ws = target.workspace;
  const paths = swmPaths(ws);
  const record: DaemonRecord = {
    pid: process.pid,
    startedAt: Date.now(),
    workspace: ws,
    id: target.id,
    options: daemonOptions(target, opts.interval),
    totals: { cycles: 0, files: 0, bytes: 0, errors: 0 },
  };
  if (!claimPidRecord(paths.daemon, record)) {
    const other = inspectPidFile<DaemonRecord>(paths.daemon, daemonIdentity(ws));
    if (other.kind === 'running' && other.record.pid !== process.pid) {
      logLine(`another auto-sync daemon (pid ${other.record.pid}) already runs for ${ws}; exiting`);
      return 0;
    }
    if (other.kind === 'stale') removePidRecord(paths.daemon, other.record.pid);
    if (!claimPidRecord(paths.daemon, record)) {
      logLine('could not claim daemon.json; exiting');
      return 1;
    }
  }
  logLine(`auto-sync of ${target.id} started (pid ${process.pid}): every ${opts.interval}s to ${target.bucket.text}${target.dest ? ` under ${target.dest}` : ''}`);
  const memory: CycleMemory = { settlingSince: new Map() };
  try {
    while (!signal.aborted) {
      rotateOpenLog(paths.daemonLog);
      const cycle = await runCycle(target, signal, memory);
      record.lastCycle = cycle;
      record.totals.cycles += 1;
      record.totals.files += cycle.files;
      record.totals.bytes += cycle.bytes;
      if (cycle.result === 'error') record.totals.errors += 1;
      if (readPidRecord(paths.daemon)?.pid !== process.pid) {
        logLine('daemon.json was removed or taken over; exiting');
        break;
      }
      writePidRecord(paths.daemon, record);
      if (signal.aborted) break;
      await sleep(opts.interval * 1000, undefined, { signal }).catch(() => {});
    }
  } finally {
    removePidRecord(paths.daemon, process.pid);
    logLine(`auto-sync of ${target.id} stopped`);
  }
  return 0;
}
