// Rescan of a folder that arrived whole (mkdir -p, `tar x`, `mv` in): @parcel/watcher reports only the folder, so its
// contents are listed here, excludes applied, without following symlinks.
import { readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import type { ExcludeRules } from '../engine/exclude.js';

/**
 * walkSubtree calls onEntry for every entry under the workspace-relative folder `rel` ('' = the whole workspace; not `rel`
 * itself), parents before children, skipping excluded entries and everything under an excluded folder. Unreadable folders are
 * skipped. The walk ends early when onEntry returns false.
 */
export function walkSubtree(root: string, rel: string, rules: ExcludeRules, onEntry: (rel: string, isDir: boolean) => boolean | void): void {
  const stack = [rel];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let entries: Dirent[];
    try {
      entries = readdirSync(join(root, dir), { withFileTypes: true });
    } catch {
      continue; // gone again, or unreadable: a later event or reconciliation reports it
    }
    for (const entry of entries) {
      const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
      const isDir = entry.isDirectory();
      if (excludedSafely(rules, path, isDir)) continue;
      if (onEntry(path, isDir) === false) return;
      if (isDir) stack.push(path);
    }
  }
}

/** excludedSafely asks the rules, treating a path the matcher rejects as a name it cannot exclude. */
export function excludedSafely(rules: ExcludeRules, rel: string, isDir: boolean): boolean {
  try {
    return rules.excludes(rel, isDir);
  } catch {
    return false;
  }
}
