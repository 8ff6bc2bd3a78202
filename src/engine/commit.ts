// Stage: commit. Records each path's outcome (state updates, counts, progress events) and writes state atomically — at the end and every so often, so a crash loses little.
import type { ProgressSink, FileAction } from './progress.js';
import { commitState, StateChanges, type StateEntry } from '../state/store.js';
import { isSwmError, errnoCode, ExitCode } from '../errors.js';

const CHECKPOINT_MS = 30_000;

/** TransferSummary is what push and pull return; the CLI renders it and picks the exit code. */
export interface TransferSummary {
  uploaded: number;
  downloaded: number;
  deletedRemote: number;
  deletedLocal: number;
  bytes: number;
  unchanged: number;
  conflicts: string[];
  /** per-path failures that did not stop the run (unreadable file…): exit 1 at the end. */
  errors: { path: string; message: string; exitCode: number }[];
  /** files that changed while being read: not uploaded this time, they go in the next sync. */
  unstable: string[];
  dryRun: boolean;
  seconds: number;
}

/** RunRecorder accumulates what a push or pull did; `finish()` writes the state and returns the summary. */
export class RunRecorder {
  /** the state changes not yet written, kept compactly (a run may change every path's state). */
  private readonly updates = new StateChanges();
  readonly summary: TransferSummary;
  private readonly started = Date.now();
  private lastCheckpoint = Date.now();
  private checkpointing: Promise<void> | undefined;

  constructor(
    /** the state file this run commits to (state/store.ts stateFileFor). */
    private readonly stateFile: string,
    private readonly progress: ProgressSink,
    /** false for --raw and --dry-run: nothing is written to .swm/. */
    private readonly persist: boolean,
    dryRun: boolean,
  ) {
    this.summary = { uploaded: 0, downloaded: 0, deletedRemote: 0, deletedLocal: 0, bytes: 0, unchanged: 0, conflicts: [], errors: [], unstable: [], dryRun, seconds: 0 };
  }

  /** planned emits the plan event of an action (shown in --dry-run and -v). */
  planned(action: FileAction, path: string, size?: number, reason?: string): void {
    this.progress.next({ type: 'plan', action, path, size, reason });
  }

  done(action: FileAction, path: string, size?: number): void {
    const s = this.summary;
    if (action === 'upload') s.uploaded++;
    else if (action === 'download') s.downloaded++;
    else if (action === 'delete-remote') s.deletedRemote++;
    else if (action === 'delete-local') s.deletedLocal++;
    if (size) s.bytes += size;
    this.progress.next({ type: 'done', action, path, size });
  }

  unchanged(): void {
    this.summary.unchanged++;
  }

  set(entry: StateEntry): void {
    this.updates.set(entry);
  }

  drop(path: string): void {
    this.updates.drop(path);
  }

  /** setRemoteTime records `entry`: the state's entry for its path, now with the remote time of the object it describes. */
  setRemoteTime(entry: StateEntry): void {
    this.updates.setRemoteTime(entry);
  }


  conflict(path: string, reason: string): void {
    this.summary.conflicts.push(path);
    this.progress.next({ type: 'conflict', path, reason });
  }

  error(path: string, message: string, exitCode = 1): void {
    this.summary.errors.push({ path, message, exitCode });
    this.progress.next({ type: 'warning', path, message });
  }

  /**
   * guard runs one path's work: a failure that concerns only that path is recorded and the run goes on.
   * Failures that doom the whole run (disk full, a safety refusal) propagate.
   */
  async guard<T>(path: string, work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (e) {
      if (isSwmError(e) && (e.exitCode === ExitCode.refused || errnoCode(e.cause) === 'ENOSPC')) throw e;
      if (errnoCode(e) === 'ENOSPC') throw e;
      this.error(path, e instanceof Error ? e.message : String(e), isSwmError(e) ? e.exitCode : ExitCode.failed);
      return undefined;
    }
  }

  warning(message: string, path?: string): void {
    this.progress.next({ type: 'warning', message, path });
  }

  unstable(path: string): void {
    this.summary.unstable.push(path);
    this.progress.next({ type: 'warning', path, message: `${path} changed while being read; it will go in the next sync` });
  }

  /** maybeCheckpoint writes the state gathered so far when the last write is old enough (long transfers survive a crash). */
  maybeCheckpoint(): void {
    if (!this.persist || this.checkpointing || Date.now() - this.lastCheckpoint < CHECKPOINT_MS || this.updates.size === 0) return;
    const batch = this.updates.copy();
    this.checkpointing = commitState(this.stateFile, batch).then(() => {
      this.updates.forget(batch);
      this.lastCheckpoint = Date.now();
      this.checkpointing = undefined;
    });
  }

  /** flush writes the state updates gathered so far now (push commits its pull pass before it scans). */
  async flush(): Promise<void> {
    await this.checkpointing;
    if (!this.persist || this.updates.size === 0) return;
    await commitState(this.stateFile, this.updates);
    this.updates.clear();
  }

  /** finish writes the remaining state updates (unless not persisting) and returns the summary. */
  async finish(options: { replaceAll?: boolean } = {}): Promise<TransferSummary> {
    await this.checkpointing;
    if (this.persist && (this.updates.size > 0 || options.replaceAll)) await commitState(this.stateFile, this.updates, options);
    this.summary.seconds = (Date.now() - this.started) / 1000;
    return this.summary;
  }
}
