// Cleanup after a crash: removes the temp files (`.name.swm-tmp-XXXXXXXX`) that a killed swm run left in the workspace and in `.swm/`.
import { lstatSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { SWM_DIR, swmPaths } from './paths.js';
import { errnoCode } from '../errors.js';

/** TEMP_NAME matches the names swm gives its temp files: tempPathFor's `.name.swm-tmp-<8 hex>`, or `.swm-tmp-<16 hex>` for a name too long to take the suffix. */
const TEMP_NAME = /^(\..+\.swm-tmp-[0-9a-f]{8}|\.swm-tmp-[0-9a-f]{16})$/;

/** LOCKED_TARGETS are `.swm/` files written only under the transfer lock: their temps are stale as soon as the lock is ours. */
const LOCKED_TARGETS = /^\.((tar-)?state-.+\.tsv|stamp\.json|tar\.json)\.swm-tmp-[0-9a-f]{8}$/;

/** UNLOCKED_TEMP_AGE_MS: other `.swm/` temps (watcher, daemon) may belong to a live process; only old ones are removed. */
const UNLOCKED_TEMP_AGE_MS = 60_000;

/**
 * removeStaleWorkspaceTemps deletes swm temp files in the workspace (not `.swm/`), and the temp folders a tar extraction
 * builds new folders in (tar/extract.ts), for a caller that holds the transfer lock taken over from a dead holder: no
 * other swm writes workspace files then. Folders that `excluded` rejects are not entered, symlinks are not followed.
 * Returns how many were removed.
 */
export function removeStaleWorkspaceTemps(workspace: string, excluded: (relPath: string, isDir: boolean) => boolean): number {
  let removed = 0;
  const walk = (rel: string) => {
    let entries;
    try {
      entries = readdirSync(rel ? join(workspace, rel) : workspace, { withFileTypes: true });
    } catch {
      return; // vanished or unreadable: the transfer itself reports what matters
    }
    for (const entry of entries) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (path === SWM_DIR) continue;
        if (TEMP_NAME.test(entry.name)) {
          rmSync(join(workspace, path), { recursive: true, force: true }); // never follows a symlink inside
          removed++;
        } else if (!excluded(path, true)) walk(path);
      } else if (TEMP_NAME.test(entry.name) && removeFile(join(workspace, path))) removed++;
    }
  };
  walk('');
  return removed;
}

/**
 * removeStaleSwmTemps deletes temp files in `.swm/`, `.swm/uploads/` and the journal, for a caller that holds the
 * transfer lock: temps of lock-protected files (state, stamp, tar record, upload records) at once, others (the watcher's,
 * the daemon's) once a minute old. Cheap (three folder listings): run on every locked session. Returns the count.
 */
export function removeStaleSwmTemps(workspace: string): number {
  let removed = 0;
  const paths = swmPaths(workspace);
  for (const dir of [paths.dir, paths.uploads, paths.journal]) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!TEMP_NAME.test(name)) continue;
      const abs = join(dir, name);
      let stale = (dir === paths.dir && LOCKED_TARGETS.test(name)) || dir === paths.uploads;
      if (!stale) {
        try {
          stale = Date.now() - lstatSync(abs).mtimeMs > UNLOCKED_TEMP_AGE_MS;
        } catch {
          continue; // gone meanwhile
        }
      }
      if (stale && removeFile(abs)) removed++;
    }
  }
  return removed;
}

function removeFile(abs: string): boolean {
  try {
    unlinkSync(abs);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false;
    throw e;
  }
}
