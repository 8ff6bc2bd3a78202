// Where things live inside `<workspace>/.swm/` (never synced itself). One place for every file name.
import { join } from 'node:path';

export const SWM_DIR = '.swm';

export function swmPaths(workspace: string) {
  const dir = join(workspace, SWM_DIR);
  return {
    dir,
    // per-target state files (`state-<id>.tsv`, `tar-state-<id>.tsv`) are named by state/store.ts stateFileFor()
    /** last successful push/pull (state/stamp.ts). */
    stamp: join(dir, 'stamp.json'),
    /** transfer lock with pid (state/lock.ts). */
    lock: join(dir, 'lock'),
    /** watcher journal folder (watch/). */
    journal: join(dir, 'journal'),
    /** watcher pid/start/fingerprint record. */
    watcher: join(dir, 'watcher.json'),
    watcherLog: join(dir, 'watcher.log'),
    /** @parcel/watcher snapshot for gap reconciliation. */
    watcherSnapshot: join(dir, 'watcher.snapshot'),
    /** auto daemon pid/options/last-cycle record. */
    daemon: join(dir, 'daemon.json'),
    daemonLog: join(dir, 'daemon.log'),
    /** resumable multipart uploads in progress (issue 6). */
    uploads: join(dir, 'uploads'),
    /** tar snapshot manifest (issue 4). */
    tar: join(dir, 'tar.json'),
  };
}
export type SwmPaths = ReturnType<typeof swmPaths>;

/** TEMP_INFIX marks swm's temporary files beside their final name (pull writes `.name.swm-tmp-XXXX` then renames). */
export const TEMP_INFIX = '.swm-tmp-';
