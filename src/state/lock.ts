// The transfer lock: one push/pull/auto cycle per workspace at a time (`.swm/lock` holds the pid). `-f` kills the holder.
import { openSync, writeSync, closeSync, readFileSync, unlinkSync, mkdirSync, existsSync, accessSync, constants as fsConstants } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { swmPaths } from './paths.js';
import { errnoCode, failure, refusal, type SwmError } from '../errors.js';

interface LockRecord {
  pid: number;
  verb: string;
  startedAt: number;
}

/** processAlive tells whether pid names a running process (not a zombie). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

function readLock(file: string): LockRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as LockRecord;
    return typeof r.pid === 'number' ? r : undefined;
  } catch {
    return undefined;
  }
}

/** WorkspaceLock is a held lock; release() is idempotent and also runs at process exit. */
export interface WorkspaceLock {
  release(): void;
  /** set when the lock was taken from a process that died holding it (or was stopped by -f): it may have left temp files. */
  readonly takenFrom?: { pid: number; verb: string };
}

/**
 * acquireLock takes the workspace's transfer lock for `verb`. When another live process holds it: with force,
 * that process is terminated (SIGTERM, then SIGKILL after 5 s) and the lock taken; without, SwmError exit 4.
 * A lock left by a dead process is taken over silently.
 */
export async function acquireLock(workspace: string, verb: string, force: boolean): Promise<WorkspaceLock> {
  const paths = swmPaths(workspace);
  try {
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw unwritableWorkspace(workspace, paths.dir, e);
  }
  let takenFrom: { pid: number; verb: string } | undefined;
  for (let attempt = 0; attempt < 50; attempt++) {
    let fd: number;
    try {
      fd = openSync(paths.lock, 'wx', 0o600);
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw unwritableWorkspace(workspace, paths.lock, e);
      const holder = readLock(paths.lock);
      if (holder && holder.pid !== process.pid && processAlive(holder.pid)) {
        if (!force) {
          throw refusal(
            `another swm ${holder.verb} (pid ${holder.pid}) is running on this workspace`,
            'wait for it to finish, or rerun with -f to stop it and start fresh',
          );
        }
        await terminate(holder.pid);
      } else if (!holder && attempt < 3) {
        // being written by its holder right now: give it a moment before calling it stale
        await sleep(50);
        continue;
      }
      if (holder?.pid !== process.pid) takenFrom = { pid: holder?.pid ?? 0, verb: holder?.verb ?? 'run' };
      try { unlinkSync(paths.lock); } catch { /* raced with another taker */ }
      continue;
    }
    writeSync(fd, JSON.stringify({ pid: process.pid, verb, startedAt: Date.now() } satisfies LockRecord));
    closeSync(fd);
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      process.off('exit', release);
      const current = readLock(paths.lock);
      if (current?.pid === process.pid) {
        try { unlinkSync(paths.lock); } catch { /* gone */ }
      }
    };
    process.on('exit', release);
    return takenFrom ? { release, takenFrom } : { release };
  }
  throw refusal('could not take the workspace lock (it keeps changing hands)', 'retry in a moment');
}

/** WRITE_PROBLEMS words the errnos that stop swm from writing in a workspace. */
const WRITE_PROBLEMS: Record<string, string> = {
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is exceeded',
};

/**
 * writeProblem says why creating `path` failed. A recursive mkdir reports EROFS (and some EACCES) as ENOENT, so for
 * ENOENT the nearest existing folder is asked whether it is writable.
 */
export function writeProblem(path: string, error: unknown): string {
  let code = errnoCode(error);
  if (code === 'ENOENT') {
    let dir = dirname(path);
    while (dir !== dirname(dir) && !existsSync(dir)) dir = dirname(dir);
    try {
      accessSync(dir, fsConstants.W_OK);
    } catch (e) {
      code = errnoCode(e) ?? code;
    }
  }
  return (code !== undefined ? WRITE_PROBLEMS[code] : undefined) ?? code ?? String(error);
}

/** unwritableWorkspace is the one-line failure (exit 1) when swm cannot write its `.swm/` folder in the workspace. */
function unwritableWorkspace(workspace: string, path: string, error: unknown): SwmError {
  return failure(
    `cannot write in workspace ${workspace} (${writeProblem(path, error)}): swm keeps its lock and state in .swm/ there`,
    error,
    'make the workspace writable (remount it read-write, fix its permissions or free space) and run again',
  );
}

/** lockHolder returns the live holder of the workspace lock, if any. */
export function lockHolder(workspace: string): { pid: number; verb: string; startedAt: number } | undefined {
  const holder = readLock(swmPaths(workspace).lock);
  return holder && processAlive(holder.pid) ? holder : undefined;
}

async function terminate(pid: number): Promise<void> {
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    if (!processAlive(pid)) return;
  }
  try { process.kill(pid, 'SIGKILL'); } catch { return; }
  for (let i = 0; i < 20 && processAlive(pid); i++) await sleep(50);
}
