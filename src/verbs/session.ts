// What push, pull and status share before any transfer: workspace checks, storage opened and checked, excludes, lock, state validated.
import { statSync, mkdirSync } from 'node:fs';
import type { SyncTarget } from '../config/types.js';
import type { Storage } from '../storage/types.js';
import { openStorage } from '../storage/open.js';
import { buildExcludeRules, type ExcludeRules } from '../engine/exclude.js';
import type { ProgressSink } from '../engine/progress.js';
import { acquireLock, type WorkspaceLock } from '../state/lock.js';
import { validateState, discardState, stateFileFor } from '../state/store.js';
import { errnoCode, usageError } from '../errors.js';

export interface SyncSession {
  target: SyncTarget;
  storage: Storage;
  rules: ExcludeRules;
  /** this target's per-file state (state/store.ts), and its `--tar` snapshot state. */
  stateFile: string;
  tarStateFile: string;
  lock?: WorkspaceLock;
  close(): Promise<void>;
}

/** assertWorkspaceFolder fails with exit 2 when the workspace is missing or not a folder; `create` makes it instead (pull). */
export function assertWorkspaceFolder(workspace: string, create: boolean): void {
  try {
    if (!statSync(workspace).isDirectory()) throw usageError(`workspace ${workspace} is not a folder`, 'pass the folder to sync as [path]');
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
    if (!create) throw usageError(`workspace ${workspace} does not exist`, 'create it first, or pull into it');
    mkdirSync(workspace, { recursive: true });
  }
}

/**
 * openSession prepares a verb: checks the workspace, opens and checks the bucket, compiles excludes, takes the lock
 * (unless `lock` is false), and replaces a corrupt state file by an empty one (with a warning) so the run does a full compare.
 */
export async function openSession(
  target: SyncTarget,
  progress: ProgressSink,
  options: { verb: string; createWorkspace: boolean; createBucket: boolean; lock: boolean; force: boolean; useState: boolean },
): Promise<SyncSession> {
  assertWorkspaceFolder(target.workspace, options.createWorkspace);
  const rules = buildExcludeRules(target.workspace, target.excludes);
  const stateFile = stateFileFor(target.workspace, target.bucket.text, target.dest, 'files');
  const tarStateFile = stateFileFor(target.workspace, target.bucket.text, target.dest, 'tar');
  const lock = options.lock ? await acquireLock(target.workspace, options.verb, options.force) : undefined;
  let storage: Storage;
  try {
    storage = await openStorage(target.bucket, { create: options.createBucket });
  } catch (e) {
    lock?.release();
    throw e;
  }
  try {
    await storage.check();
    if (options.useState) {
      const corrupt = await validateState(stateFile);
      if (corrupt) {
        progress.next({ type: 'warning', message: `the sync state in .swm/ was corrupt (${corrupt}); rebuilding it from a full compare` });
        discardState(stateFile);
      }
    }
  } catch (e) {
    lock?.release();
    await storage.close();
    throw e;
  }
  const opened = storage;
  return {
    target,
    storage: opened,
    rules,
    stateFile,
    tarStateFile,
    lock,
    async close() {
      lock?.release();
      await opened.close();
    },
  };
}
