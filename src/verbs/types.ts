// Options and results of the verbs (push, pull, status…): the contract between cli/ and verbs/.
import type { SyncTarget } from '../config/types.js';
import type { ProgressSink } from '../engine/progress.js';

export interface VerbContext {
  target: SyncTarget;
  progress: ProgressSink;
  /** -f: kill the running transfer of this workspace (lock holder) and start fresh. */
  force: boolean;
  dryRun: boolean;
  /** aborted on SIGINT/SIGTERM: stop starting new work, clean up temp files and the lock, then reject. */
  signal?: AbortSignal;
}

export interface PushOptions {
  raw: boolean;
  skipPull: boolean;
  /** mirror deletions recorded by the watcher (issue 3). */
  delete: boolean;
  maxDelete?: number;
  tar: boolean;
  /** restrict the push to these workspace-relative paths (the auto daemon's journal deltas) instead of a full scan. */
  only?: { changed: string[]; deleted: string[] };
  /** journal position the `only` deltas were read up to; stored in the stamp when the push succeeds. */
  journalCursor?: unknown;
}

export interface PullOptions {
  raw: boolean;
  tar: boolean;
}

/** TransferSummary is what push and pull return (defined by the engine's commit stage). */
export type { TransferSummary } from '../engine/commit.js';

/** PathSample is a count of paths plus the first few of them (status output stays small on huge trees). */
export interface PathSample {
  count: number;
  /** at most a few paths, in key order. */
  sample: string[];
}

/** CycleRecord describes one auto-sync daemon cycle. */
export interface CycleRecord {
  /** ISO time the cycle started. */
  at: string;
  result: 'ok' | 'conflicts' | 'error' | 'skipped';
  files: number;
  bytes: number;
  /** one-line error message when result is "error". */
  error?: string;
}

/** StatusReport is what `swm sync status` shows (text) or prints as one JSON object (--json). */
export interface StatusReport {
  id: string;
  workspace: string;
  /** the bucket spec text, e.g. "s3:my-bucket" or "file:/abs/path". */
  bucket: string;
  dest: string;
  lastPush?: { at: string; files: number };
  lastPull?: { at: string; files: number };
  watcher: { running: boolean; pid?: number; since?: string; fingerprint?: 'current' | 'drifted' };
  daemon: { running: boolean; pid?: number; since?: string; interval?: number; lastCycle?: CycleRecord };
  /** local changes a push would upload (or mirror, for deletions). */
  pending: { changed: PathSample; new: PathSample; deleted: PathSample };
  /** with --remote: what a pull would change. */
  remote?: { toDownload: PathSample; toDeleteLocal: PathSample; conflicts: PathSample };
  /** the `<dest>.tar` object, when one exists or --tar was used before. */
  tar?: { exists: boolean; size?: number; at?: string };
}

/** AutoStatusReport is what `swm sync auto --status` shows. */
export interface AutoStatusReport {
  running: boolean;
  pid?: number;
  /** seconds between cycles. */
  interval?: number;
  /** ISO time the daemon started. */
  since?: string;
  lastCycle?: CycleRecord;
  /** last lines of the daemon log. */
  logTail: string[];
}
