// Verb: watch. Start (one per workspace) or stop the detached watcher process that journals changes into `.swm/journal/`.
import { statSync } from 'node:fs';
import type { SyncTarget } from '../config/types.js';
import { buildExcludeRules } from '../engine/exclude.js';
import { swmPaths } from '../state/paths.js';
import { errnoCode, failure, usageError } from '../errors.js';
import { compiledEntry, isProcessAlive, spawnDetached, waitFor } from '../daemon/process.js';
import { readPidRecord, stopPidFileProcess } from '../daemon/pidfile.js';
import { logTail } from '../daemon/log.js';
import { liveWatcher, watcherIdentity, type WatcherRecord } from '../watch/watcher-record.js';
import type { WatcherOptions } from '../watch/watcher.js';

/** WATCH_START_TIMEOUT_MS bounds how long watchStart waits for the watcher to be live (subscribed, restart gap reconciled). */
const WATCH_START_TIMEOUT_MS = 30_000;

/** watcherScript is the compiled watcher entry (dist/watch/watcher-process.js). */
export function watcherScript(): string {
  return compiledEntry(new URL('../watch/watcher-process.js', import.meta.url));
}

/** assertWorkspaceExists fails with exit 2 unless the workspace is an existing folder (watching does not create it). */
function assertWorkspaceExists(workspace: string): void {
  try {
    if (statSync(workspace).isDirectory()) return;
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
    throw usageError(`workspace ${workspace} does not exist`, 'create it first, or pull into it');
  }
  throw usageError(`workspace ${workspace} is not a folder`, 'pass the folder to watch as [path]');
}

/**
 * watchStart starts the workspace's watcher unless one runs (then it says so). Resolves once the watcher is subscribed and
 * any restart gap is reconciled, so that changes made afterwards are journaled.
 */
export async function watchStart(target: SyncTarget): Promise<{ alreadyRunning: boolean; pid: number }> {
  const ws = target.workspace;
  assertWorkspaceExists(ws);
  buildExcludeRules(ws, target.excludes); // a bad pattern is a usage error here, not a dead watcher
  const running = liveWatcher(ws);
  if (running) return { alreadyRunning: true, pid: running.pid };
  const paths = swmPaths(ws);
  // a stale watcher.json is left for the new process: it replaces it and records the dead watcher's gap
  const options: WatcherOptions = { excludes: target.excludes, id: target.id };
  const pid = spawnDetached(watcherScript(), [ws, JSON.stringify(options)], paths.watcherLog);
  const identity = watcherIdentity(ws);
  const outcome = await waitFor(() => {
    const rec = readPidRecord<WatcherRecord>(paths.watcher);
    if (rec?.pid === pid && rec.status === 'watching') return 'ready' as const;
    if (!isProcessAlive(pid, identity)) return 'exited' as const;
    return undefined;
  }, WATCH_START_TIMEOUT_MS);
  if (outcome === 'exited') {
    const other = liveWatcher(ws);
    if (other) return { alreadyRunning: true, pid: other.pid }; // a concurrent start won
    const why = logTail(paths.watcherLog, 1)[0] ?? 'no message';
    throw failure(`the watcher of ${target.id} exited right after starting: ${why}`, undefined, `see ${paths.watcherLog}`);
  }
  return { alreadyRunning: false, pid };
}

/** watchStop stops the workspace's watcher (SIGTERM, SIGKILL after 5 s) and makes sure no pid file is left behind. */
export async function watchStop(target: SyncTarget): Promise<{ wasRunning: boolean }> {
  return stopPidFileProcess(swmPaths(target.workspace).watcher, watcherIdentity(target.workspace));
}

/** watcherState is the watcher part of `swm sync status`: running or not (a dead pid counts as not running), pid, since, fingerprint. */
export function watcherState(workspace: string, currentFingerprint: string): {
  running: boolean;
  pid?: number;
  since?: string;
  fingerprint?: 'current' | 'drifted';
} {
  const rec = liveWatcher(workspace);
  if (!rec) return { running: false };
  return {
    running: true,
    pid: rec.pid,
    since: new Date(rec.startedAt).toISOString(),
    fingerprint: rec.fingerprint === currentFingerprint ? 'current' : 'drifted',
  };
}
