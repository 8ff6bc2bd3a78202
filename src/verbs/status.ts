// Verb: status. Workspace, bucket, dest, last push/pull, watcher and daemon, pending local changes; with --remote, what pull would do.
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { SyncTarget } from '../config/types.js';
import type { StatusReport, PathSample } from './types.js';
import { buildExcludeRules, type ExcludeRules } from '../engine/exclude.js';
import { marchBatches, marchSorted } from '../engine/march.js';
import { scanWorkspaceBatches, type LocalEntry } from '../engine/scan.js';
import { sameStat, localContentHash, decidePull } from '../engine/plan.js';
import type { RemoteEntry } from '../engine/remote.js';
import { readState, readStateBatches, stateFileFor, StateCorruptError, type StateEntry } from '../state/store.js';
import { readStamp } from '../state/stamp.js';
import { swmPaths } from '../state/paths.js';
import { compareKeys } from '../keys.js';
import { usageError } from '../errors.js';
import { watcherState } from './watch.js';
import { daemonState } from './auto.js';

const SAMPLE = 10;

class Sampler {
  count = 0;
  sample: string[] = [];
  add(path: string) {
    this.count++;
    if (this.sample.length < SAMPLE) this.sample.push(path);
  }
  get value(): PathSample {
    return { count: this.count, sample: this.sample };
  }
}

/** status reports the sync state of a workspace without changing anything (no lock taken). */
export async function status(target: SyncTarget, opts: { remote: boolean }): Promise<StatusReport> {
  const root = target.workspace;
  if (!existsSync(root)) throw usageError(`workspace ${root} does not exist`, 'pass the folder as [path], or pull into it first');
  if (!statSync(root).isDirectory()) throw usageError(`workspace ${root} is not a folder`);
  const rules = buildExcludeRules(root, target.excludes);
  const stamp = readStamp(root);
  const stateFile = stateFileFor(root, target.bucket.text, target.dest, 'files');
  let stateCorrupt = false;
  let pending: StatusReport['pending'];
  try {
    // one read of the state, validated as it streams (the common case: a valid state, read once)
    pending = await pendingChanges(root, rules, readStateBatches(stateFile));
  } catch (e) {
    if (!(e instanceof StateCorruptError)) throw e;
    // a corrupt state counts as none, as push would rebuild it: compare again against nothing
    stateCorrupt = true;
    pending = await pendingChanges(root, rules, noState());
  }
  const state = () => (stateCorrupt ? noState() : readState(stateFile));

  const report: StatusReport = {
    id: target.id,
    workspace: root,
    bucket: target.bucket.text,
    dest: target.dest,
    lastPush: stamp?.lastPush && { at: new Date(stamp.lastPush.at).toISOString(), files: stamp.lastPush.files },
    lastPull: stamp?.lastPull && { at: new Date(stamp.lastPull.at).toISOString(), files: stamp.lastPull.files },
    watcher: watcherState(root, rules.fingerprint),
    daemon: daemonState(root),
    pending,
  };
  const tarRecord = readTarRecord(root);
  if (tarRecord) report.tar = tarRecord;

  if (opts.remote) {
    // only --remote talks to the bucket: the session, storage and tar-layout modules load here, not on every status
    const [{ openSession }, { createProgress }, { listRemote }, { tarObjectKey, readTarManifest }] = await Promise.all([
      import('./session.js'),
      import('../engine/progress.js'),
      import('../engine/remote.js'),
      import('../engine/tar-layout.js'),
    ]);
    const session = await openSession(target, createProgress(), {
      verb: 'status', createWorkspace: false, createBucket: false, lock: false, force: false, useState: false,
    });
    try {
      const toDownload = new Sampler();
      const toDeleteLocal = new Sampler();
      const conflicts = new Sampler();
      const planCtx = { root, storage: session.storage, dest: target.dest, raw: false };
      const remote = listRemote(session.storage, target.dest, rules, (u) => conflicts.add(`${u.key} (unsafe key)`));
      for await (const pair of marchSorted<StateEntry, RemoteEntry>(state(), remote, (s) => s.path, (r) => r.path, compareKeys)) {
        const d = await decidePull(pair, planCtx);
        if (d.kind === 'download') toDownload.add(d.path);
        else if (d.kind === 'delete-local') toDeleteLocal.add(d.path);
        else if (d.kind === 'conflict') conflicts.add(d.path);
      }
      report.remote = { toDownload: toDownload.value, toDeleteLocal: toDeleteLocal.value, conflicts: conflicts.value };
      // a layered snapshot weighs its base plus its layers; a plain `<dest>.tar` is just that object
      const manifest = await readTarManifest(session.storage, target.dest);
      const tarHead = manifest ? undefined : await session.storage.head(tarObjectKey(target.dest));
      if (manifest) {
        const parts = [manifest.manifest.base, ...manifest.manifest.layers];
        const newest = Math.max(...parts.map((p) => p.at));
        report.tar = { exists: true, size: parts.reduce((n, p) => n + p.size, 0), at: newest > 0 ? new Date(newest).toISOString() : undefined };
      } else {
        report.tar = tarHead
          ? { exists: true, size: tarHead.size, at: tarHead.lastModified ? new Date(tarHead.lastModified).toISOString() : undefined }
          : { exists: false };
      }
    } finally {
      await session.close();
    }
  }
  return report;
}

/** noState is an empty state stream (of entries or of batches): what a corrupt state counts as. */
function noState<T = StateEntry>(): AsyncGenerator<T> {
  return (async function* (): AsyncGenerator<T> {})();
}

/**
 * pendingChanges compares the workspace with the state: new, deleted, and changed files (a file whose stat moved is hashed,
 * so a touch alone is not a change). Throws StateCorruptError, after a partial walk, when the state turns out corrupt.
 */
async function pendingChanges(root: string, rules: ExcludeRules, state: AsyncIterable<StateEntry[]>): Promise<StatusReport['pending']> {
  const changed = new Sampler();
  const added = new Sampler();
  const deleted = new Sampler();
  // batches on both sides: the walk is synchronous within them (per-item async steps cost ~40% of a 10k-file status)
  const pairs = marchBatches<LocalEntry, StateEntry>(scanWorkspaceBatches(root, rules, () => {}), state, (l) => l.path, (s) => s.path, compareKeys);
  for await (const batch of pairs) {
    for (const { key, left: local, right: base } of batch) {
      if (local && !base) added.add(key);
      else if (!local && base) deleted.add(key);
      else if (local && base && !sameStat(local, base)) {
        const hash = await localContentHash(root, local).catch(() => '');
        if (hash !== base.hash || local.mode !== base.mode) changed.add(key);
      }
    }
  }
  return { changed: changed.value, new: added.value, deleted: deleted.value };
}

function readTarRecord(root: string): StatusReport['tar'] | undefined {
  try {
    const r = JSON.parse(readFileSync(swmPaths(root).tar, 'utf8')) as { size?: number; at?: number };
    return { exists: true, size: r.size, at: r.at ? new Date(r.at).toISOString() : undefined };
  } catch {
    return undefined;
  }
}
