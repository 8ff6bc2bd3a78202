// Stage: list the remote side. Streams the objects under dest as workspace-relative entries in key order, excludes applied, unsafe keys refused.
import type { ObjectInfo, ObjectMeta, Storage } from '../storage/types.js';
import { unsafeRelativePath } from '../keys.js';
import type { ExcludeRules } from './exclude.js';
import type { LocalEntry } from './scan.js';

/** RemoteEntry is one object under dest, named by its workspace-relative path (folder markers end in '/'). */
export interface RemoteEntry {
  path: string;
  info: ObjectInfo;
}

/** UnsafeKey is an object whose key would land outside the workspace; it is refused, never written. */
export interface UnsafeKey {
  key: string;
  reason: string;
}

/** listRemote streams the objects under dest. Keys that escape the workspace go to onUnsafe and are skipped. */
export async function* listRemote(
  storage: Storage,
  dest: string,
  rules: ExcludeRules,
  onUnsafe: (u: UnsafeKey) => void,
): AsyncGenerator<RemoteEntry> {
  for await (const info of storage.list(dest)) {
    const path = info.key.slice(dest.length);
    if (path.length === 0) continue; // the dest folder marker itself
    const unsafe = unsafeRelativePath(path);
    if (unsafe) {
      onUnsafe({ key: info.key, reason: unsafe });
      continue;
    }
    const isDir = path.endsWith('/');
    if (rules.excludes(isDir ? path.slice(0, -1) : path, isDir)) continue;
    yield { path, info };
  }
}

/** remoteHasAny tells whether anything exists under dest (one listing page at most). */
export async function remoteHasAny(storage: Storage, dest: string): Promise<boolean> {
  for await (const info of storage.list(dest)) {
    if (info.key !== dest) return true;
  }
  return false;
}

/** metaFor is the object metadata that travels with a local entry. */
export function metaFor(entry: LocalEntry, hash: string): ObjectMeta {
  return { hash, mtimeMs: entry.mtimeMs, mode: entry.mode, type: entry.type };
}
