// Verbs: push --tar and pull --tar. scan ─▶ exclude ─▶ tar pack stream ─▶ multipart upload; get ─▶ untar (pull).
// Incremental: when the bucket's snapshot is the one this workspace last pushed or pulled, only changed files travel,
// as a layer tar listed in the manifest; pull extracts the base then each layer (see engine/tar-layout.ts, README).
import { Transform, type Readable } from 'node:stream';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { VerbContext, TransferSummary } from './types.js';
import { openSession, type SyncSession } from './session.js';
import { scanWorkspace, type LocalEntry, type ScanProblem } from '../engine/scan.js';
import { marchSorted } from '../engine/flow.js';
import { sameStat, stateOf } from '../engine/plan.js';
import { xxh, hex64 } from '../engine/hash.js';
import { RunRecorder } from '../engine/commit.js';
import {
  tarObjectKey, tarLayerKey, readTarManifest, writeTarManifest, type TarManifest, type TarPart,
} from '../engine/tar-layout.js';
import { packTar, ChangedWhilePacking } from '../tar/pack.js';
import { extractTar } from '../tar/extract.js';
import { readState, commitState, validateState, discardState, type StateEntry, type StateUpdates } from '../state/store.js';
import { writeStamp } from '../state/stamp.js';
import { swmPaths } from '../state/paths.js';
import { writeFileAtomic } from '../state/atomic.js';
import { compareKeys } from '../keys.js';
import { errnoCode, failure } from '../errors.js';

/** A layered snapshot is rewritten whole once its layers weigh more than this share of the base, or number this many. */
const COMPACT_RATIO = 0.5;
const MAX_LAYERS = 32;
/** A push whose files change while packed is retried this many times before it fails. */
const PACK_RETRIES = 2;

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
    const incremental = remote !== undefined && record !== undefined && !corrupt &&
      remote.manifest.base.etag === record.baseEtag && remote.manifest.layers.length === record.layers;
    let manifest: TarManifest | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        manifest = incremental
          ? await pushLayer(session, ctx, recorder, remote!.manifest)
          : await pushFull(session, ctx, recorder, remote?.manifest);
        break;
      } catch (e) {
        if (attempt < PACK_RETRIES && e instanceof ChangedWhilePacking) {
          recorder.warning(`${e.message}; packing again`);
          continue;
        }
        throw e;
      }
    }
    const summary = await recorder.finish();
    if (manifest && !ctx.dryRun) {
      await writeTarRecord(root, manifest);
      await writeStamp(root, {
        lastPush: { at: startedAt, files: summary.uploaded, bytes: summary.bytes, tar: true },
        bucket: ctx.target.bucket.text, dest: ctx.target.dest,
      });
    }
    return summary;
  } finally {
    await session.close();
  }
}

/** uploadTarStream packs entries and streams them into one object; returns its TarPart. */
async function uploadTarStream(
  session: SyncSession, ctx: VerbContext, recorder: RunRecorder, key: string, entries: AsyncIterable<LocalEntry> | LocalEntry[],
  counted: { files: number },
): Promise<TarPart> {
  const packed = packTar(ctx.target.workspace, entries, {
    signal: ctx.signal,
    onVanished: (path) => recorder.warning(`${path} vanished before it was packed; skipped`, path),
    onUnreadable: (path, error) => recorder.error(path, `cannot read: ${error.message}`),
    onChangedWhileReading: (path) => recorder.unstable(path),
  });
  const counter = await hashingCounter((bytes) => ctx.progress.next({ type: 'bytes', path: key, bytes }));
  const body: Readable = packed.pipe(counter.stream);
  packed.on('error', (e) => counter.stream.destroy(e));
  const { etag } = await session.storage.put(key, body, { meta: { type: 'file' }, signal: ctx.signal });
  const { hash, size } = counter.result();
  recorder.done('upload', key, size);
  return { key, etag, size, hash, files: counted.files, at: Date.now() };
}

async function pushFull(session: SyncSession, ctx: VerbContext, recorder: RunRecorder, previous: TarManifest | undefined): Promise<TarManifest | undefined> {
  const root = ctx.target.workspace;
  const updates: StateUpdates = new Map();
  const counted = { files: 0 };
  const onProblem = (p: ScanProblem) => (p.skipped ? recorder.warning(`${p.path}: ${p.message}`, p.path) : recorder.error(p.path, p.message));
  async function* entries(): AsyncGenerator<LocalEntry> {
    for await (const e of scanWorkspace(root, session.rules, onProblem)) {
      updates.set(e.path, stateOf(e, ''));
      counted.files++;
      yield e;
    }
  }
  const key = tarObjectKey(ctx.target.dest);
  if (ctx.dryRun) {
    for await (const e of entries()) recorder.planned('upload', e.path, e.size);
    return undefined;
  }
  recorder.planned('upload', key);
  const base = await uploadTarStream(session, ctx, recorder, key, entries(), counted);
  const manifest: TarManifest = { version: 1, base, layers: [] };
  await writeTarManifest(session.storage, ctx.target.dest, manifest);
  if (previous && previous.layers.length > 0) await session.storage.delete(previous.layers.map((l) => l.key));
  for (const u of recorder.summary.unstable) updates.delete(u);
  await commitState(session.tarStateFile, updates, { replaceAll: true });
  recorder.summary.uploaded = counted.files;
  return manifest;
}

async function pushLayer(session: SyncSession, ctx: VerbContext, recorder: RunRecorder, manifest: TarManifest): Promise<TarManifest | undefined> {
  const root = ctx.target.workspace;
  const changed: LocalEntry[] = [];
  const deleted: string[] = [];
  const onProblem = (p: ScanProblem) => (p.skipped ? recorder.warning(`${p.path}: ${p.message}`, p.path) : recorder.error(p.path, p.message));
  let changedBytes = 0;
  for await (const pair of marchSorted<LocalEntry, StateEntry>(scanWorkspace(root, session.rules, onProblem), readState(session.tarStateFile), (l) => l.path, (s) => s.path, compareKeys)) {
    if (pair.left && (!pair.right || !sameStat(pair.left, pair.right))) {
      changed.push(pair.left);
      changedBytes += pair.left.size + 512;
    } else if (!pair.left && pair.right) deleted.push(pair.key);
    else recorder.unchanged();
  }
  if (changed.length === 0 && deleted.length === 0) return manifest; // nothing to do
  const layersBytes = manifest.layers.reduce((n, l) => n + l.size, 0);
  if (manifest.layers.length >= MAX_LAYERS || layersBytes + changedBytes > manifest.base.size * COMPACT_RATIO) {
    return pushFull(session, ctx, recorder, manifest);
  }
  for (const e of changed) recorder.planned('upload', e.path, e.size);
  for (const p of deleted) recorder.planned('delete-remote', p);
  if (ctx.dryRun) return undefined;
  const key = tarLayerKey(ctx.target.dest, manifest.layers.length + 1);
  const layer = await uploadTarStream(session, ctx, recorder, key, changed, { files: changed.length });
  layer.deleted = deleted;
  const next: TarManifest = { ...manifest, layers: [...manifest.layers, layer] };
  await writeTarManifest(session.storage, ctx.target.dest, next);
  const unstable = new Set(recorder.summary.unstable);
  const updates: StateUpdates = new Map();
  for (const e of changed) if (!unstable.has(e.path)) updates.set(e.path, stateOf(e, ''));
  for (const p of deleted) updates.set(p, null);
  await commitState(session.tarStateFile, updates);
  recorder.summary.uploaded = changed.length;
  recorder.summary.deletedRemote = deleted.length;
  return next;
}

/** pullTar restores the snapshot: base then layers, each streamed through the safe extractor (temp + rename per file). */
export async function pullTar(ctx: VerbContext): Promise<TransferSummary> {
  const session = await openSession(ctx.target, ctx.progress, {
    verb: 'pull', createWorkspace: true, createBucket: false, lock: true, force: ctx.force, useState: false,
  });
  const root = ctx.target.workspace;
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
    if (ctx.dryRun) {
      for (const p of parts) recorder.planned('download', p.key, p.size);
      return await recorder.finish();
    }
    const extracted = new Map<string, StateEntry>();
    for (const part of parts) {
      recorder.planned('download', part.key, part.size);
      const { info, body } = await storage.get(part.key);
      if (remote && info.etag !== part.etag) {
        body.destroy();
        throw failure(`the tar snapshot changed while pulling (${part.key}); pull again`);
      }
      const counter = await hashingCounter((bytes) => ctx.progress.next({ type: 'bytes', path: part.key, bytes, total: part.size }));
      body.on('error', (e) => counter.stream.destroy(e));
      const result = await extractTar(body.pipe(counter.stream), root, { signal: ctx.signal });
      const { hash } = counter.result();
      if (part.hash && hash !== part.hash) {
        throw failure(`${part.key} does not match its xxh64 (${hash} ≠ ${part.hash}): the snapshot is corrupt; state not updated`);
      }
      for (const e of result.entries) {
        if (e.type === 'dir') continue;
        extracted.set(e.path, { path: e.path, type: e.type, size: e.size, mtimeMs: Math.floor(e.mtimeMs), mode: e.mode & 0o7777, hash: '', etag: '', ...(e.target !== undefined ? { target: e.target } : {}) });
        recorder.done('download', e.path, e.size);
      }
      for (const gone of part.deleted ?? []) {
        extracted.delete(gone);
        removeLocal(root, gone);
        recorder.done('delete-local', gone);
      }
      for (const e of result.entries) {
        if (e.type === 'dir') markEmptyFolder(extracted, e.path);
      }
    }
    await commitState(session.tarStateFile, extracted, { replaceAll: true });
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

function removeLocal(root: string, path: string): void {
  try {
    rmSync(join(root, path.replace(/\/$/, '')), { recursive: false, force: true });
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT' && errnoCode(e) !== 'EISDIR' && errnoCode(e) !== 'ENOTEMPTY') throw e;
  }
}

/** Scans record folders only when empty (`a/`); after extraction a folder counts as empty when nothing was extracted under it. */
function markEmptyFolder(extracted: Map<string, StateEntry>, dirPath: string): void {
  const prefix = dirPath.endsWith('/') ? dirPath : dirPath + '/';
  for (const key of extracted.keys()) if (key !== prefix && key.startsWith(prefix)) return;
  extracted.set(prefix, { path: prefix, type: 'dir', size: 0, mtimeMs: 0, mode: 0o755, hash: '', etag: '' });
}
