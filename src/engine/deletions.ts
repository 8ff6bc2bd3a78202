// Stage: which remote objects a `push --delete` may delete — only paths the watcher journal recorded as deleted, that are
// missing now, that are not excluded, and that the state says were synced (never "everything missing locally").
import type { ExcludeRules } from './exclude.js';
import { statLocal } from './scan.js';
import type { StateEntry } from '../state/store.js';
import { compareKeys } from '../keys.js';

/**
 * planRemoteDeletions picks, from the state stream, the entries whose path (or an ancestor folder of it) was recorded
 * deleted and which are missing locally now. Returns them in key order.
 */
export async function planRemoteDeletions(
  root: string,
  recordedDeleted: readonly string[],
  state: AsyncIterable<StateEntry>,
  rules: ExcludeRules,
): Promise<StateEntry[]> {
  if (recordedDeleted.length === 0) return [];
  const exact = new Set(recordedDeleted.map((p) => p.replace(/\/+$/, '')));
  const folders = [...exact].map((p) => p + '/').sort(compareKeys);
  const underDeletedFolder = (path: string) => folders.some((f) => path.startsWith(f));
  const out: StateEntry[] = [];
  for await (const entry of state) {
    const bare = entry.path.endsWith('/') ? entry.path.slice(0, -1) : entry.path;
    if (!exact.has(bare) && !underDeletedFolder(entry.path)) continue;
    if (rules.excludes(bare, entry.type === 'dir')) continue;
    if (statLocal(root, entry.path) !== undefined) continue; // exists again: not a deletion
    out.push(entry);
  }
  return out;
}
