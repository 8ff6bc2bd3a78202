// The watcher's pid file (`.swm/watcher.json`): who watches this workspace, since when its journal is complete, with which excludes.
import { swmPaths } from '../state/paths.js';
import { inspectPidFile, type PidFileState, type PidRecord } from '../daemon/pidfile.js';
import type { ProcessIdentity } from '../daemon/process.js';

/** WATCHER_SCRIPT is the file name of the watcher process's entry (dist/watch/watcher-process.js). */
export const WATCHER_SCRIPT = 'watcher-process.js';

/** WatcherGap is a stretch of time in which the watcher may have missed events. */
export interface WatcherGap {
  /** ms since epoch when it was noticed. */
  at: number;
  reason: string;
  /** how it was closed: 'snapshot' = replayed from a @parcel/watcher snapshot (no event lost); false = not (yet) reconciled. */
  reconciled: 'snapshot' | false;
}

/** WatcherRecord is the content of watcher.json, written by the watcher process itself. */
export interface WatcherRecord extends PidRecord {
  workspace: string;
  /** the workspace id it was started for (names commands in hints). */
  id?: string;
  /** 'starting' until the subscription is live and any restart gap has been reconciled. */
  status: 'starting' | 'watching';
  /** fingerprint of the exclude patterns applied (engine/exclude.ts). */
  fingerprint: string;
  /** the user excludes it was given (-x, config). */
  excludes: string[];
  /** every pattern applied: defaults, user, .swmignore. */
  patterns: string[];
  /** ms since epoch from which the journal holds every change (deletions included): the coverage check compares it to the stamp. */
  coveredSince?: number;
  /** the most recent gaps (a few), newest last. */
  gaps: WatcherGap[];
  /** ms since epoch of the last snapshot reconciliation. */
  lastReconcileAt?: number;
}

/** watcherIdentity is how a live watcher process of this workspace is recognised (guards against pid reuse). */
export function watcherIdentity(workspace: string): ProcessIdentity {
  return { script: WATCHER_SCRIPT, arg: workspace };
}

/** inspectWatcher reads watcher.json and checks its process. */
export function inspectWatcher(workspace: string): PidFileState<WatcherRecord> {
  return inspectPidFile<WatcherRecord>(swmPaths(workspace).watcher, watcherIdentity(workspace));
}

/** liveWatcher returns the record of the running watcher of this workspace, or undefined. */
export function liveWatcher(workspace: string): WatcherRecord | undefined {
  const state = inspectWatcher(workspace);
  return state.kind === 'running' ? state.record : undefined;
}
