// What push, pull and status share before any transfer: workspace checks, storage opened and checked, excludes, lock, state validated, the remote listing started.
import { existsSync, statSync, mkdirSync } from 'node:fs';
import type { SyncTarget } from '../config/types.js';
import type { Storage } from '../storage/types.js';
import { openStorage } from '../storage/open.js';
import { buildExcludeRules, type ExcludeRules } from '../engine/exclude.js';
import type { ProgressSink } from '../engine/progress.js';
import { RemoteListing } from '../engine/remote.js';
import { acquireLock, writeProblem, type WorkspaceLock } from '../state/lock.js';
import { removeStaleSwmTemps, removeStaleWorkspaceTemps } from '../state/stale-temps.js';
import { validateState, discardState, stateFileFor } from '../state/store.js';
import { errnoCode, failure, usageError } from '../errors.js';

export interface SyncSession {
  target: SyncTarget;
  storage: Storage;
  rules: ExcludeRules;
  /** this target's per-file state (state/store.ts), and its `--tar` snapshot state. */
  stateFile: string;
  tarStateFile: string;
  lock?: WorkspaceLock;
  /**
   * takeListing hands over the listing of dest started when the session opened (option `listRemote`), once; undefined
   * when none was started or it was taken already. The pull pass reads it.
   */
  takeListing(): RemoteListing | undefined;
  close(): Promise<void>;
}

/** assertWorkspaceFolder fails with exit 2 when the workspace is missing or not a folder; `create` makes it instead (pull). */
export function assertWorkspaceFolder(workspace: string, create: boolean): void {
  try {
    if (!statSync(workspace).isDirectory()) throw usageError(`workspace ${workspace} is not a folder`, 'pass the folder to sync as [path]');
  } catch (e) {
    const code = errnoCode(e);
    // a path that cannot be a folder (symlink loop, a file in the middle, no permission) is bad input, named in one line
    const why = code === undefined ? undefined : UNUSABLE_WORKSPACE[code];
    if (why) throw usageError(`workspace ${workspace} ${why}`, 'pass the folder to sync as [path]');
    if (code !== 'ENOENT') throw e;
    if (!create) throw usageError(`workspace ${workspace} does not exist`, 'create it first, or pull into it');
    try {
      mkdirSync(workspace, { recursive: true });
    } catch (made) {
      throw failure(`cannot create workspace ${workspace} (${writeProblem(workspace, made)})`, made, 'create the folder yourself or choose another [path]');
    }
  }
}

/** UNUSABLE_WORKSPACE says, per stat() errno, why a workspace path cannot be used. */
const UNUSABLE_WORKSPACE: Record<string, string> = {
  ELOOP: 'is a symlink loop (too many levels of symbolic links)',
  ENOTDIR: 'is not a folder (a part of its path is a file)',
  EACCES: 'cannot be reached: permission denied on a parent folder',
  ENAMETOOLONG: 'is a path too long for the file system',
};

/**
 * openSession prepares a verb: checks the workspace, opens and checks the bucket, compiles excludes, takes the lock
 * (unless `lock` is false), and replaces a corrupt state file by an empty one (with a warning) so the run does a full compare.
 */
export async function openSession(
  target: SyncTarget,
  progress: ProgressSink,
  options: {
    verb: string; createWorkspace: boolean; createBucket: boolean; lock: boolean; force: boolean; useState: boolean; dryRun?: boolean;
    /** start listing dest as soon as the bucket is checked: the first pages arrive while the state is validated. */
    listRemote?: boolean;
  },
): Promise<SyncSession> {
  // a dry-run pull into a folder that does not exist yet plans against the missing folder: it creates nothing, not even it
  const plannedOnly = options.createWorkspace && options.dryRun === true && !existsSync(target.workspace);
  if (!plannedOnly) assertWorkspaceFolder(target.workspace, options.createWorkspace);
  const rules = buildExcludeRules(target.workspace, target.excludes);
  const stateFile = stateFileFor(target.workspace, target.bucket.text, target.dest, 'files');
  const tarStateFile = stateFileFor(target.workspace, target.bucket.text, target.dest, 'tar');
  const lock = options.lock && !plannedOnly ? await acquireLock(target.workspace, options.verb, options.force) : undefined;
  if (lock) {
    // temp files of killed runs: .swm/'s are looked for every time (cheap); the workspace is walked only after a holder
    // died with the lock (a pull's half-written downloads, a tar extraction's)
    removeStaleSwmTemps(target.workspace);
    const removed = lock.takenFrom ? removeStaleWorkspaceTemps(target.workspace, (path, isDir) => rules.excludes(path, isDir)) : 0;
    if (removed > 0) {
      progress.next({ type: 'warning', message: `removed ${removed} temporary file${removed === 1 ? '' : 's'} left by an interrupted swm ${lock.takenFrom!.verb} (pid ${lock.takenFrom!.pid})` });
    }
  }
  let storage: Storage;
  try {
    storage = await openStorage(target.bucket, { create: options.createBucket });
  } catch (e) {
    lock?.release();
    throw e;
  }
  let listing: RemoteListing | undefined;
  try {
    await storage.check();
    if (options.listRemote) listing = new RemoteListing(storage, target.dest, rules);
    if (options.useState) {
      const corrupt = await validateState(stateFile);
      if (corrupt) {
        progress.next({ type: 'warning', message: `the sync state in .swm/ was corrupt (${corrupt}); rebuilding it from a full compare` });
        discardState(stateFile);
      }
    }
  } catch (e) {
    listing?.close();
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
    takeListing() {
      const taken = listing;
      listing = undefined;
      return taken;
    },
    async close() {
      listing?.close();
      lock?.release();
      await opened.close();
    },
  };
}
