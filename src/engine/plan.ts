// Stage: decide, per path, what push or pull must do — the three-way compare of local files, state and remote (SPEC §5).
import { join } from 'node:path';
import type { ObjectInfo, Storage } from '../storage/types.js';
import type { StateEntry } from '../state/store.js';
import type { Paired } from './flow.js';
import type { LocalEntry } from './scan.js';
import { statLocal } from './scan.js';
import type { RemoteEntry } from './remote.js';
import { readAndHash, hashBytes, xxh, hex64 } from './hash.js';

/** PullDecision is what pull does with one path. */
export type PullDecision =
  | { kind: 'none'; path: string }
  | { kind: 'download'; path: string; remote: RemoteEntry; expectedLocal?: LocalEntry }
  | { kind: 'delete-local'; path: string; expectedLocal: LocalEntry }
  | { kind: 'set-state'; path: string; entry: StateEntry }
  /** the object is the one the state recorded from our own put, whose answer had no time: `entry` is the state's, with that time. */
  | { kind: 'record-time'; path: string; entry: StateEntry }
  | { kind: 'drop-state'; path: string }
  | { kind: 'conflict'; path: string; reason: string };

/** PushDecision is what push does with one path. `upload` hashes first and only records state when content is unchanged. */
export type PushDecision =
  | { kind: 'none'; path: string }
  | { kind: 'upload'; path: string; local: LocalEntry; base?: StateEntry };

/** sameStat: the file looks exactly as the state recorded it, so it is unchanged without reading it. */
export function sameStat(local: LocalEntry, base: StateEntry): boolean {
  return local.type === base.type && local.size === base.size && local.mtimeMs === base.mtimeMs &&
    local.mode === base.mode && local.target === base.target;
}

/** localContentHash hashes what is at a local entry: a file's bytes, a symlink's target, '' for a folder. */
export async function localContentHash(root: string, local: LocalEntry): Promise<string> {
  if (local.type === 'symlink') return hashBytes(local.target ?? '');
  if (local.type === 'dir') return hashBytes('');
  return (await readAndHash(join(root, local.path), local, false)).hash;
}

export interface PullPlanContext {
  root: string;
  storage: Storage;
  dest: string;
  raw: boolean;
  /** hashes this workspace started uploading since its last commit (state/intents.ts): such a remote version is ours. */
  ourUploads?: ReadonlyMap<string, ReadonlySet<string>>;
}

/**
 * decidePull classifies one (state, remote) pair; the local side is looked at lazily, only when the remote changed.
 * Remote unchanged → nothing (local changes are push's business). Remote changed and local unchanged → download.
 * Both changed → same content is recorded, different content is a conflict. Remote deleted → local deleted only if unchanged.
 */
export async function decidePull(pair: Paired<StateEntry, RemoteEntry>, ctx: PullPlanContext): Promise<PullDecision> {
  const { key: path, left: base, right: remote } = pair;
  if (ctx.raw) return remote ? { kind: 'download', path, remote } : { kind: 'none', path };
  const settled = settledPull(pair, false);
  if (settled) return settled;
  if (remote) {
    if (base) {
      if (compareRemote(base, remote.info) === 'retimed') {
        // same ETag, rewritten since: S3 ETags digest the content only, so this may be a metadata change (a chmod)
        const head = await ctx.storage.head(ctx.dest + path);
        if (head && head.etag === remote.info.etag && head.meta?.hash === base.hash && (head.meta.type ?? 'file') === base.type) {
          // the content is what was last synced: a new mode is applied where this side left the file as it was;
          // a local change (or deletion) of the content is push's business, as for any remote-unchanged file
          const local = head.meta.mode !== undefined && head.meta.mode !== base.mode ? statLocal(ctx.root, path) : undefined;
          if (local && sameStat(local, base)) return { kind: 'download', path, remote, expectedLocal: local };
          return { kind: 'set-state', path, entry: { ...base, ...remoteSeen(remote.info) } };
        }
      }
    }
    const local = statLocal(ctx.root, path);
    if (!local) {
      if (!base) return { kind: 'download', path, remote };
      return { kind: 'conflict', path, reason: 'deleted locally, changed remotely' };
    }
    if (path.endsWith('/') || local.type === 'dir') {
      if (path.endsWith('/') && local.type === 'dir') {
        return { kind: 'set-state', path, entry: { ...stateOf(local, await hashBytes('')), ...remoteSeen(remote.info) } };
      }
      return { kind: 'conflict', path, reason: 'a folder on one side, a file on the other' };
    }
    if (base && sameStat(local, base)) return { kind: 'download', path, remote, expectedLocal: local };
    const localHash = await localContentHash(ctx.root, local);
    if (base && localHash === base.hash && local.mode === base.mode && local.type === base.type) {
      return { kind: 'download', path, remote, expectedLocal: local };
    }
    const head = await ctx.storage.head(ctx.dest + path);
    if (head && head.meta?.hash === localHash && (head.meta.type ?? 'file') === local.type) {
      return { kind: 'set-state', path, entry: { ...stateOf(local, localHash), ...remoteSeen(head) } };
    }
    // an object without swm's hash (put by another tool, or left by a crash between a file: bucket's data and its sidecar):
    // the same bytes are the same file, not a conflict
    if (head && head.meta?.hash === undefined && local.type === 'file' && (head.meta?.type ?? 'file') === 'file' && head.size === local.size &&
        (await remoteContentHash(ctx.storage, ctx.dest + path)) === localHash) {
      return { kind: 'set-state', path, entry: { ...stateOf(local, localHash), ...remoteSeen(head) } };
    }
    // a version this workspace uploaded itself but never recorded (killed between the put and the state commit), and
    // changed locally since: the remote holds nothing new, so record it as the base and let push upload the local change
    if (head?.meta?.hash !== undefined && ctx.ourUploads?.get(path)?.has(head.meta.hash)) {
      const mode = head.meta.mode ?? local.mode;
      return { kind: 'set-state', path, entry: { path, type: head.meta.type ?? 'file', size: -1, mtimeMs: -1, mode, hash: head.meta.hash, ...remoteSeen(head) } };
    }
    return { kind: 'conflict', path, reason: base ? 'changed on both sides' : 'exists on both sides with different content' };
  }
  if (!base) return { kind: 'none', path };
  const local = statLocal(ctx.root, path);
  if (!local) return { kind: 'drop-state', path };
  if (sameStat(local, base)) return { kind: 'delete-local', path, expectedLocal: local };
  if (local.type === base.type && local.type !== 'dir' && (await localContentHash(ctx.root, local)) === base.hash) {
    return { kind: 'delete-local', path, expectedLocal: local };
  }
  // changed locally since the remote deleted it: keep it; dropping the state makes push upload it as new
  return { kind: 'drop-state', path };
}

/**
 * settledPull is decidePull for the pairs that need no look at the local file nor at the object, decided at once: the
 * object is as the state recorded it (nothing to do), or is the very object the state recorded from our own put, whose
 * answer had no time (record the time). Undefined for every other pair.
 */
export function settledPull(pair: Paired<StateEntry, RemoteEntry>, raw: boolean): PullDecision | undefined {
  const { key: path, left: base, right: remote } = pair;
  if (raw || !base || !remote) return undefined;
  const seen = compareRemote(base, remote.info);
  if (seen === 'same') return { kind: 'none', path };
  // recorded from our own put (no time known then): the same object, now with its time
  if (seen === 'untimed') return { kind: 'record-time', path, entry: { ...base, ...remoteSeen(remote.info) } };
  return undefined;
}

/** remoteContentHash is the xxh64 of an object's bytes, streamed (only for objects that carry no swm-hash). */
async function remoteContentHash(storage: Storage, key: string): Promise<string> {
  const { body } = await storage.get(key);
  const h = (await xxh()).create64();
  for await (const chunk of body as AsyncIterable<Buffer>) h.update(chunk);
  return hex64(h.digest());
}

/** remoteSeen is what the state records of a remote object: its ETag and its last-modified time in whole seconds (listings and GET/HEAD headers agree to the second). */
export function remoteSeen(info: ObjectInfo): Pick<StateEntry, 'etag' | 'remoteTime'> {
  return info.lastModified === undefined ? { etag: info.etag } : { etag: info.etag, remoteTime: Math.floor(info.lastModified / 1000) };
}

/**
 * compareRemote compares what the state recorded of an object with the object now: 'same'; 'untimed' (same ETag, but
 * recorded from a put, with no time); 'retimed' (same ETag, rewritten since: on S3, whose ETags digest the content only,
 * maybe with other metadata, e.g. a chmod); 'changed' (another ETag).
 */
export function compareRemote(base: StateEntry, info: ObjectInfo): 'same' | 'untimed' | 'retimed' | 'changed' {
  if (base.etag !== info.etag) return 'changed';
  if (info.lastModified === undefined) return 'same';
  if (base.remoteTime === undefined) return 'untimed';
  return base.remoteTime === Math.floor(info.lastModified / 1000) ? 'same' : 'retimed';
}

/** decidePush classifies one (local, state) pair: unchanged stat → nothing, otherwise hash-and-maybe-upload. */
export function decidePush(pair: Paired<LocalEntry, StateEntry>, raw: boolean): PushDecision {
  const { key: path, left: local, right: base } = pair;
  if (!local) return { kind: 'none', path }; // local deletions are mirrored only from the watcher journal
  if (!raw && base && sameStat(local, base)) return { kind: 'none', path };
  return { kind: 'upload', path, local, base: raw ? undefined : base };
}

/** stateOf builds the state entry for a local entry with a known hash (etag filled by the caller). */
export function stateOf(local: LocalEntry, hash: string): StateEntry {
  const e: StateEntry = { path: local.path, type: local.type, size: local.size, mtimeMs: local.mtimeMs, mode: local.mode, hash, etag: '' };
  if (local.target !== undefined) e.target = local.target;
  return e;
}
