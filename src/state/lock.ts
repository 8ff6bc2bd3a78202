// The transfer lock: one push/pull/auto cycle per workspace at a time (`.swm/lock` holds the pid). `-f` kills the holder.
import { openSync, writeSync, closeSync, readFileSync, unlinkSync, mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { swmPaths } from './paths.js';
import { errnoCode, refusal } from '../errors.js';

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
}

/**
 * acquireLock takes the workspace's transfer lock for `verb`. When another live process holds it: with force,
 * that process is terminated (SIGTERM, then SIGKILL after 5 s) and the lock taken; without, SwmError exit 4.
 * A lock left by a dead process is taken over silently.
 */
export async function acquireLock(workspace: string, verb: string, force: boolean): Promise<WorkspaceLock> {
  const paths = swmPaths(workspace);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 50; attempt++) {
    let fd: number;
    try {
      fd = openSync(paths.lock, 'wx', 0o600);
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
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
    return { release };
  }
  throw refusal('could not take the workspace lock (it keeps changing hands)', 'retry in a moment');
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
