// Verbs: push --tar and pull --tar. scan ─▶ exclude ─▶ tar pack stream ─▶ multipart upload; get ─▶ untar (pull).
// Incremental: when the bucket's snapshot is the one this workspace last pushed or pulled, only changed files travel,
// as a layer tar listed in the manifest; pull applies the base then each layer (see engine/tar-layout.ts, README).
// Every part carries the xxh64 of each file in it (computed while packing); pull verifies each file before it is
// renamed into place, so a damaged snapshot never overwrites a good local file.
import { pipeline, Transform, type Readable } from 'node:stream';
import { lstatSync, readFileSync, readdirSync, rmdirSync, unlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { VerbContext, TransferSummary } from './types.js';
import { openSession, type SyncSession } from './session.js';
import { scanWorkspace, scanWorkspaceBatches, statLocal, type LocalEntry, type ScanProblem } from '../engine/scan.js';
import { marchSorted } from '../engine/flow.js';
import { sameStat, stateOf } from '../engine/plan.js';
import { xxh, hex64, hashBytes } from '../engine/hash.js';
import { RunRecorder } from '../engine/commit.js';
import type { ExcludeRules } from '../engine/exclude.js';
import {
  tarObjectKey, tarLayerKey, readTarManifest, writeTarManifest, storeFileHashes, loadFileHashes, ownedObjectKeys,
  type TarManifest, type TarPart,
} from '../engine/tar-layout.js';
import { packTar, ChangedWhilePacking } from '../tar/pack.js';
import { extractTar, TarEntryHashMismatch, type ExtractedEntry } from '../tar/extract.js';
import { readState, commitState, validateState, discardState, type StateEntry, type StateUpdates } from '../state/store.js';
import { writeStamp } from '../state/stamp.js';
import { swmPaths, SWM_DIR } from '../state/paths.js';
import { writeFileAtomic } from '../state/atomic.js';
import { compareKeys, unsafeRelativePath } from '../keys.js';
import { SwmError, ExitCode, errnoCode, failure } from '../errors.js';

/** A layered snapshot is rewritten whole once its layers weigh more than this share of the base, or number this many. */
const COMPACT_RATIO = 0.5;
const MAX_LAYERS = 32;
/**
 * A pack that fails because a file changed under it is started again: the first time with every file (it may have been
 * a single save), after that without the file that changed again (reported as an error: it is not in this snapshot).
 */
const MAX_PACK_ATTEMPTS = 8;

/** TarRecord (.swm/tar.json): which snapshot this workspace last pushed or pulled, so the next push can be incremental. */
interface TarRecord {
  baseEtag: string;
  layers: number;
  size: number;
  at: number;
}

function readTarRecord(workspace: string): TarRecord | undefined {
  try {
    return JSON.parse(readFileSync(swmPaths(workspace).tar, 'utf8')) as TarRecord;
  } catch {
    return undefined;
  }
}

async function writeTarRecord(workspace: string, manifest: TarManifest): Promise<void> {
  const size = manifest.base.size + manifest.layers.reduce((n, l) => n + l.size, 0);
  const record: TarRecord = { baseEtag: manifest.base.etag, layers: manifest.layers.length, size, at: Date.now() };
  await writeFileAtomic(swmPaths(workspace).tar, JSON.stringify(record) + '\n');
}

/** hashingCounter passes bytes through while computing their xxh64 and count. */
async function hashingCounter(onBytes: (n: number) => void): Promise<{ stream: Transform; result: () => { hash: string; size: number } }> {
  const h = (await xxh()).create64();
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      h.update(chunk);
      size += chunk.length;
      onBytes(size);
      done(null, chunk);
    },
  });
  return { stream, result: () => ({ hash: hex64(h.digest()), size }) };
}

/**
 * PackAttempt collects what one pack attempt has to report (scan problems, vanished and unreadable files): an attempt
 * that is started again must not report them twice, so they reach the recorder only from the attempt that counts.
 */
class PackAttempt {
  private readonly warnings: { message: string; path?: string }[] = [];
  private readonly errors: { path: string; message: string }[] = [];

  warning(message: string, path?: string): void {
    this.warnings.push({ message, path });
  }

  error(path: string, message: string): void {
    this.errors.push({ path, message });
  }

  onProblem = (p: ScanProblem): void => (p.skipped ? this.warning(`${p.path}: ${p.message}`, p.path) : this.error(p.path, p.message));

  /** report hands everything to the recorder (warnings as events, errors into the summary: exit 1). */
  report(recorder: RunRecorder): void {
    for (const w of this.warnings) recorder.warning(w.message, w.path);
    for (const e of this.errors) recorder.error(e.path, e.message);
  }
}

/** pushTar uploads the workspace as a tar snapshot: a full base, or a layer of what changed since the last one. */
export async function pushTar(ctx: VerbContext): Promise<TransferSummary> {
  const session = await openSession(ctx.target, ctx.progress, {
    verb: 'push', createWorkspace: false, createBucket: true, lock: true, force: ctx.force, useState: false,
  });
  const root = ctx.target.workspace;
  const recorder = new RunRecorder(session.tarStateFile, ctx.progress, false, ctx.dryRun);
  const startedAt = Date.now();
  try {
    const corrupt = await validateState(session.tarStateFile);
    if (corrupt) {
      recorder.warning(`the tar state in .swm/ was corrupt (${corrupt}); pushing a full snapshot`);
      discardState(session.tarStateFile);
    }
    const remote = await readTarManifest(session.storage, ctx.target.dest);
    const record = readTarRecord(root);
    // a layer only makes sense on top of the very base the manifest names (a push interrupted between writing the base
    // and the manifest leaves them disagreeing: then the next push writes a full snapshot again)
    const baseHead = remote ? await session.storage.head(remote.manifest.base.key) : undefined;
    const incremental = remote !== undefined && record !== undefined && !corrupt &&
      remote.manifest.base.etag === record.baseEtag && remote.manifest.layers.length === record.layers &&
      baseHead?.etag === remote.manifest.base.etag;
    let manifest: TarManifest | undefined;
    const changedBefore = new Set<string>();
    const leftOut = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      const report = new PackAttempt();
      try {
        manifest = incremental
          ? await pushLayer(session, ctx, recorder, report, remote!.manifest, leftOut)
          : await pushFull(session, ctx, recorder, report, remote?.manifest, leftOut);
        report.report(recorder);
        break;
      } catch (e) {
        if (!(e instanceof ChangedWhilePacking) || attempt >= MAX_PACK_ATTEMPTS) {
          report.report(recorder);
          throw e;
        }
        if (changedBefore.has(e.path)) {
          leftOut.add(e.path);
          recorder.warning(`${e.path} changed again while it was being packed; packing the snapshot again without it`, e.path);
        } else {
          changedBefore.add(e.path);
          recorder.warning(`${e.path} changed while it was being packed; packing again`, e.path);
        }
      }
    }
    for (const path of leftOut) {
      recorder.error(path, 'kept changing while it was being packed, so it is not in this snapshot; push --tar again once it is no longer being written (or exclude it with -x)');
    }
    const summary = await recorder.finish();
    if (manifest && !ctx.dryRun) {
      await writeTarRecord(root, manifest);
      if (summary.errors.length === 0) {
        await writeStamp(root, {
          lastPush: { at: startedAt, files: summary.uploaded, bytes: summary.bytes, tar: true },
          bucket: ctx.target.bucket.text, dest: ctx.target.dest,
        });
      }
    }
    return summary;
  } finally {
    await session.close();
  }
}

/**
 * uploadTarStream packs entries and streams them into one object; returns its TarPart (without its per-file hashes:
 * those land in `fileHashes`, by path, for every regular file the object holds).
 */
async function uploadTarStream(
  session: SyncSession, ctx: VerbContext, recorder: RunRecorder, report: PackAttempt, key: string,
  entries: AsyncIterable<LocalEntry[]> | LocalEntry[], counted: { files: number }, fileHashes: Map<string, string>,
): Promise<TarPart> {
  const packed = packTar(ctx.target.workspace, entries, {
    signal: ctx.signal,
    onFileHashed: (path, hash) => fileHashes.set(path, hash),
    onVanished: (path) => report.warning(`${path} vanished before it was packed; skipped`, path),
    onUnreadable: (path, error) => report.error(path, `cannot read: ${error.message}`),
  });
  const counter = await hashingCounter((bytes) => ctx.progress.next({ type: 'bytes', path: key, bytes }));
  // the packer's own failure (a file that changed under it) is what the user must see, not the upload's "stream closed"
  let packError: unknown;
  packed.on('error', (e) => (packError ??= e));
  const body: Readable = pipeline(packed, counter.stream, () => {});
  let etag: string;
  try {
    ({ etag } = await session.storage.put(key, body, { meta: { type: 'file' }, signal: ctx.signal }));
  } catch (e) {
    if (packError instanceof SwmError) throw packError;
    throw e;
  } finally {
    if (!packed.destroyed) packed.destroy();
  }
  const { hash, size } = counter.result();
  recorder.done('upload', key, size);
  return { key, etag, size, hash, files: counted.files, at: Date.now() };
}

/** folderEntry lstat()s a workspace folder ("a/b/") for its tar entry; undefined when it is gone or not a real folder. */
function folderEntry(root: string, folder: string): LocalEntry | undefined {
  let st: Stats;
  try {
    st = lstatSync(join(root, folder.slice(0, -1)));
  } catch {
    return undefined;
  }
  if (!st.isDirectory()) return undefined;
  return { path: folder, type: 'dir', size: 0, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 };
}

/** parentFolders lists the folders above a path, outermost first: "a/b/c" and "a/b/c/" → ["a/", "a/b/"]. */
function parentFolders(path: string): string[] {
  const segments = path.replace(/\/$/, '').split('/').slice(0, -1);
  return segments.map((_, i) => segments.slice(0, i + 1).join('/') + '/');
}

/**
 * withFolders yields, before the entries of a key-ordered scan (in the scan's batches), the folders above them (with
 * their mode and mtime), so the tar holds every folder as GNU tar would write it: a folder's permissions and mtime
 * survive the round trip, not only those of empty ones. The scan yields each subtree contiguously, so the folders open
 * so far form one chain.
 */
async function* withFolders(root: string, batches: AsyncIterable<LocalEntry[]>): AsyncGenerator<LocalEntry[]> {
  const open: string[] = [];
  for await (const batch of batches) {
    const out: LocalEntry[] = [];
    for (const entry of batch) {
      // most entries sit in the folder of the one before: nothing to open or close then
      const folderEnd = entry.path.lastIndexOf('/', entry.path.length - 2) + 1;
      const innermost = open.length > 0 ? open[open.length - 1]! : '';
      if (folderEnd !== innermost.length || !entry.path.startsWith(innermost)) {
        while (open.length > 0 && !entry.path.startsWith(open[open.length - 1]!)) open.pop();
        const parents = parentFolders(entry.path);
        for (let i = open.length; i < parents.length; i++) {
          open.push(parents[i]!);
          const folder = folderEntry(root, parents[i]!);
          if (folder) out.push(folder);
        }
      }
      out.push(entry);
    }
    yield out;
  }
}

async function pushFull(
  session: SyncSession, ctx: VerbContext, recorder: RunRecorder, report: PackAttempt, previous: TarManifest | undefined, leftOut: Set<string>,
): Promise<TarManifest | undefined> {
  const root = ctx.target.workspace;
  const updates: StateUpdates = new Map();
  const counted = { files: 0 };
  async function* entries(): AsyncGenerator<LocalEntry[]> {
    for await (const batch of scanWorkspaceBatches(root, session.rules, report.onProblem)) {
      const kept: LocalEntry[] = [];
      for (const e of batch) {
        if (leftOut.has(e.path)) continue;
        updates.set(e.path, stateOf(e, ''));
        counted.files++;
        kept.push(e);
      }
      yield kept;
    }
  }
  const key = tarObjectKey(ctx.target.dest);
  if (ctx.dryRun) {
    for await (const batch of entries()) for (const e of batch) recorder.planned('upload', e.path, e.size);
    return undefined;
  }
  recorder.planned('upload', key);
  const fileHashes = new Map<string, string>();
  const base = await uploadTarStream(session, ctx, recorder, report, key, withFolders(root, entries()), counted, fileHashes);
  Object.assign(base, await storeFileHashes(session.storage, ctx.target.dest, fileHashes));
  const manifest: TarManifest = { version: 1, base, layers: [] };
  await writeTarManifest(session.storage, ctx.target.dest, manifest);
  // the old layers and hash lists go, but only objects shaped like this dest's own: a damaged or hostile manifest naming
  // other keys must not turn a push into deletions elsewhere in the bucket
  const kept = new Set(ownedObjectKeys(ctx.target.dest, manifest));
  const stale = previous ? ownedObjectKeys(ctx.target.dest, previous).filter((k) => !kept.has(k)) : [];
  if (stale.length > 0) await session.storage.delete(stale);
  await commitState(session.tarStateFile, await withContentHashes(updates, fileHashes), { replaceAll: true });
  recorder.summary.uploaded = counted.files;
  return manifest;
}

async function pushLayer(
  session: SyncSession, ctx: VerbContext, recorder: RunRecorder, report: PackAttempt, manifest: TarManifest, leftOut: Set<string>,
): Promise<TarManifest | undefined> {
  const root = ctx.target.workspace;
  const changed: LocalEntry[] = [];
  const deleted: string[] = [];
  let unchanged = 0;
  let changedBytes = 0;
  for await (const pair of marchSorted<LocalEntry, StateEntry>(scanWorkspace(root, session.rules, report.onProblem), readState(session.tarStateFile), (l) => l.path, (s) => s.path, compareKeys)) {
    if (leftOut.has(pair.key)) continue; // neither changed nor deleted: the snapshot keeps what it had
    if (pair.left && (!pair.right || !sameStat(pair.left, pair.right))) {
      changed.push(pair.left);
      changedBytes += pair.left.size + 512;
    } else if (!pair.left && pair.right) {
      // an excluded path is not a deletion: excludes choose what travels, they never delete anything on the other side
      if (isExcluded(session.rules, pair.key)) unchanged++;
      else deleted.push(pair.key);
    } else unchanged++;
  }
  recorder.summary.unchanged = unchanged;
  if (changed.length === 0 && deleted.length === 0) return manifest; // nothing to do
  const layersBytes = manifest.layers.reduce((n, l) => n + l.size, 0);
  if (manifest.layers.length >= MAX_LAYERS || layersBytes + changedBytes > manifest.base.size * COMPACT_RATIO) {
    recorder.summary.unchanged = 0;
    return pushFull(session, ctx, recorder, report, manifest, leftOut);
  }
  for (const e of changed) recorder.planned('upload', e.path, e.size);
  for (const p of deleted) recorder.planned('delete-remote', p);
  if (ctx.dryRun) return undefined;
  const key = tarLayerKey(ctx.target.dest, manifest.layers.length + 1);
  const fileHashes = new Map<string, string>();
  const layer = await uploadTarStream(session, ctx, recorder, report, key, layerEntries(root, changed, deleted), { files: changed.length }, fileHashes);
  layer.deleted = deleted;
  Object.assign(layer, await storeFileHashes(session.storage, ctx.target.dest, fileHashes));
  const next: TarManifest = { ...manifest, layers: [...manifest.layers, layer] };
  await writeTarManifest(session.storage, ctx.target.dest, next);
  const updates: StateUpdates = new Map();
  for (const e of changed) updates.set(e.path, stateOf(e, ''));
  for (const p of deleted) updates.set(p, null);
  await commitState(session.tarStateFile, await withContentHashes(updates, fileHashes));
  recorder.summary.uploaded = changed.length;
  recorder.summary.deletedRemote = deleted.length;
  return next;
}

/**
 * withContentHashes fills in the hash of each state update: a file's from the packer (one it did not hash vanished or
 * was unreadable, so it is not in the snapshot: its update is dropped, and the next push looks at it again), a
 * symlink's from its target, a folder's as the per-file sync records it (xxh64 of nothing).
 */
async function withContentHashes(updates: StateUpdates, fileHashes: ReadonlyMap<string, string>): Promise<StateUpdates> {
  const emptyHash = await hashBytes('');
  for (const [path, entry] of updates) {
    if (entry === null) continue;
    if (entry.type === 'file') {
      const hash = fileHashes.get(path);
      if (hash === undefined) updates.delete(path);
      else entry.hash = hash;
    } else entry.hash = entry.type === 'symlink' ? await hashBytes(entry.target ?? '') : emptyHash;
  }
  return updates;
}

/**
 * layerEntries is what a layer packs: the changed entries plus the folders above them and above the deleted paths, so
 * that a pull of the layer also restores the mode and mtime of every folder whose contents changed.
 */
function layerEntries(root: string, changed: LocalEntry[], deleted: string[]): LocalEntry[] {
  const byPath = new Map<string, LocalEntry>();
  for (const path of [...changed.map((e) => e.path), ...deleted]) {
    for (const folder of parentFolders(path)) {
      if (byPath.has(folder)) continue;
      const entry = folderEntry(root, folder);
      if (entry) byPath.set(folder, entry);
    }
  }
  for (const e of changed) byPath.set(e.path, e);
  return [...byPath.values()].sort((a, b) => compareKeys(a.path, b.path));
}

function isExcluded(rules: ExcludeRules, path: string): boolean {
  return path.endsWith('/') ? rules.excludes(path.slice(0, -1), true) : rules.excludes(path, false);
}

/** refuseDeletion is the error for a deletion in a tar manifest that must not be applied (exit 2, like a bad tar entry). */
function refuseDeletion(path: string, reason: string): SwmError {
  return new SwmError(ExitCode.usage, `refusing deletion of ${JSON.stringify(path)} listed in the tar manifest: ${reason}`, {
    hint: 'the snapshot is unsafe or damaged; nothing outside the workspace was touched',
  });
}

/** checkDeletedPaths refuses, before anything is written, a manifest whose layers delete paths that are not plain workspace paths. */
function checkDeletedPaths(parts: TarPart[]): void {
  for (const part of parts) {
    for (const path of part.deleted ?? []) {
      const why = unsafeRelativePath(path);
      if (why) throw refuseDeletion(path, why);
      if (path === SWM_DIR || path === `${SWM_DIR}/` || path.startsWith(`${SWM_DIR}/`)) throw refuseDeletion(path, `${SWM_DIR}/ holds swm's own state`);
    }
  }
}

/**
 * pullTar restores the snapshot: base then layers, each streamed through the safe extractor (new folders built under a
 * temp name and renamed into place whole, files into existing folders by temp + rename).
 */
export async function pullTar(ctx: VerbContext): Promise<TransferSummary> {
  const session = await openSession(ctx.target, ctx.progress, {
    verb: 'pull', createWorkspace: true, createBucket: false, lock: true, force: ctx.force, useState: false,
  });
  const root = ctx.target.workspace;
  const rules = session.rules;
  const recorder = new RunRecorder(session.tarStateFile, ctx.progress, false, ctx.dryRun);
  const startedAt = Date.now();
  try {
    const { storage } = session;
    const remote = await readTarManifest(storage, ctx.target.dest);
    let parts: TarPart[];
    if (remote) parts = [remote.manifest.base, ...remote.manifest.layers];
    else {
      const key = tarObjectKey(ctx.target.dest);
      const head = await storage.head(key);
      if (!head) throw failure(`no tar snapshot at ${storage.description}/${key}`, undefined, `push one with \`swm sync push ${ctx.target.id} --tar\``);
      parts = [{ key, etag: head.etag, size: head.size, hash: '', files: 0, at: head.lastModified ?? 0 }];
    }
    checkDeletedPaths(parts);
    if (ctx.dryRun) {
      for (const p of parts) recorder.planned('download', p.key, p.size);
      return await recorder.finish();
    }
    /** what the snapshot holds as applied so far, as extracted: files and symlinks by path, folders as "path/". */
    const held = new Map<string, ExtractedEntry>();
    for (const part of parts) {
      // a layer's deletions come first: a path that turned from a file into a folder (or back) is deleted, then written
      for (const gone of part.deleted ?? []) {
        if (isExcluded(rules, gone)) continue;
        held.delete(gone);
        if (removeSnapshotPath(root, gone)) recorder.done('delete-local', gone);
      }
      recorder.planned('download', part.key, part.size);
      // each file is checked against these before it is renamed into place (undefined: a part made without them)
      const expectedHashes = await loadFileHashes(storage, part);
      const { info, body } = await storage.get(part.key);
      if (remote && info.etag !== part.etag) {
        body.destroy();
        throw failure(`the tar snapshot changed while pulling (${part.key} is not the version its manifest lists); pull again, or push --tar again if it persists`);
      }
      const counter = await hashingCounter((bytes) => ctx.progress.next({ type: 'bytes', path: part.key, bytes, total: part.size }));
      const result = await extractTar(pipeline(body, counter.stream, () => {}), root, {
        signal: ctx.signal,
        skip: (path, type) => rules.excludes(path, type === 'dir'),
        expectedHashes,
      }).catch((e: unknown) => {
        if (e instanceof TarEntryHashMismatch) throw failure(`${part.key}: ${e.message}`, e, e.hint);
        throw e;
      });
      const { hash } = counter.result();
      if (part.hash && hash !== part.hash) {
        throw failure(`${part.key} does not match its xxh64 (${hash} ≠ ${part.hash}): the snapshot is corrupt; state not updated`);
      }
      for (const e of result.entries) {
        if (e.type === 'dir') {
          held.set(e.path + '/', e);
          continue;
        }
        held.set(e.path, e);
        recorder.done('download', e.path, e.size);
      }
    }
    await commitState(session.tarStateFile, await stateOfPulled(root, rules, held), { replaceAll: true });
    const summary = await recorder.finish();
    if (remote) await writeTarRecord(root, remote.manifest);
    await writeStamp(root, {
      lastPull: { at: startedAt, files: summary.downloaded, bytes: summary.bytes, tar: true },
      bucket: ctx.target.bucket.text, dest: ctx.target.dest,
    });
    return summary;
  } finally {
    await session.close();
  }
}

/**
 * stateOfPulled records what the pull wrote as the scan will see it (lstat now, so mtimes and sizes match exactly and
 * the next push --tar finds nothing changed): files with the xxh64 of the bytes extracted, symlinks, and folders only
 * when they are empty. A path that changed type or size since it was extracted is left out (the next push sends it).
 */
async function stateOfPulled(root: string, rules: ExcludeRules, held: ReadonlyMap<string, ExtractedEntry>): Promise<StateUpdates> {
  const updates: StateUpdates = new Map();
  const emptyHash = await hashBytes('');
  // a folder the snapshot put something in is not empty: no need to look (a folder's key ends in '/')
  const filled = new Set<string>();
  for (const path of held.keys()) filled.add(path.slice(0, path.lastIndexOf('/', path.length - 2) + 1));
  for (const [path, pulled] of held) {
    if (pulled.type === 'dir' && filled.has(path)) continue;
    const entry = statLocal(root, path);
    if (!entry || entry.type !== pulled.type) continue; // gone, or replaced by another type meanwhile
    if (entry.type === 'dir' && !isEmptyFolder(root, rules, path)) continue;
    let hash: string;
    if (entry.type === 'file') {
      if (pulled.hash === undefined || entry.size !== pulled.size) continue;
      hash = pulled.hash;
    } else hash = entry.type === 'symlink' ? await hashBytes(entry.target ?? '') : emptyHash;
    updates.set(entry.path, stateOf(entry, hash));
  }
  return updates;
}

/** isEmptyFolder: nothing the scan would list inside (excluded names do not count), as scanWorkspace decides it. */
function isEmptyFolder(root: string, rules: ExcludeRules, folder: string): boolean {
  let names: string[];
  try {
    names = readdirSync(join(root, folder));
  } catch {
    return false;
  }
  return names.every((name) => {
    const rel = folder + name;
    let isDir = false;
    try {
      isDir = lstatSync(join(root, rel)).isDirectory();
    } catch {
      return true;
    }
    return rules.excludes(rel, isDir);
  });
}

/**
 * removeSnapshotPath applies one deletion of a layer: unlinks the file or symlink (or removes the folder when empty),
 * then the folders above it that it left empty. Never through a symlinked folder (refused, exit 2). Returns whether
 * something was removed.
 */
function removeSnapshotPath(root: string, path: string): boolean {
  const rel = path.replace(/\/$/, '');
  const parents = parentFolders(rel).map((f) => f.slice(0, -1));
  for (const dir of parents) {
    const st = lstatOrUndefined(join(root, dir));
    if (st === undefined) return false;
    if (st.isSymbolicLink()) throw refuseDeletion(path, `its folder ${JSON.stringify(dir)} is a symlink; deleting through it is refused`);
    if (!st.isDirectory()) return false; // a file where the folder was: nothing of the snapshot's left below it
  }
  const abs = join(root, rel);
  const st = lstatOrUndefined(abs);
  if (st === undefined) return false;
  try {
    if (st.isDirectory()) rmdirSync(abs);
    else unlinkSync(abs);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT' || code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw failure(`cannot delete ${path} as the snapshot says: ${code ?? (e as Error).message}`, e);
  }
  for (const dir of parents.reverse()) {
    try {
      rmdirSync(join(root, dir));
    } catch {
      break; // not empty (or gone): the folders above are not empty either
    }
  }
  return true;
}

function lstatOrUndefined(abs: string): Stats | undefined {
  try {
    return lstatSync(abs);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
}
