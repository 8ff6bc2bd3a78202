// Verb: push. [pull pass] ─▶ scan ─▶ exclude ─▶ compare-with-state ─▶ hash ─▶ upload ─▶ [mirror recorded deletions] ─▶ commit(state, stamp).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { lastValueFrom, map, mergeMap, defaultIfEmpty } from 'rxjs';
import type { VerbContext, PushOptions, TransferSummary } from './types.js';
import { openSession, type SyncSession } from './session.js';
import { runPullPass, TRANSFER_CONCURRENCY } from './pull.js';
import { fromWindowed, releaseWindow, marchSorted, InFlightWindow } from '../engine/flow.js';
import { scanWorkspace, statLocal, type LocalEntry, type ScanProblem } from '../engine/scan.js';
import { decidePush, type PushDecision } from '../engine/plan.js';
import { uploadEntry } from '../engine/transfer.js';
import { ResumableUploads } from '../engine/resumable-upload.js';
import { planRemoteDeletions } from '../engine/deletions.js';
import { RunRecorder } from '../engine/commit.js';
import { readState, type StateEntry } from '../state/store.js';
import { readStamp, writeStamp } from '../state/stamp.js';
import { recordUploadIntent, clearUploadIntents } from '../state/intents.js';
import { checkWatcherCoverage, readJournalDeltas, pruneJournal, isJournalCursor } from '../watch/journal.js';
import { compareKeys } from '../keys.js';
import { refusal, usageError } from '../errors.js';

/** push uploads local changes (SPEC §4 push, §5): non-destructive unless --delete, and only after a clean pull pass. */
export async function push(ctx: VerbContext, opts: PushOptions): Promise<TransferSummary> {
  if (opts.tar) {
    const { pushTar } = await import('./tar.js');
    return pushTar(ctx);
  }
  if (opts.delete && opts.raw) throw usageError('--delete cannot be combined with --raw (raw pushes keep no journal or state)');
  const session = await openSession(ctx.target, ctx.progress, {
    verb: 'push', createWorkspace: false, createBucket: true, lock: true, force: ctx.force, useState: !opts.raw,
  });
  try {
    const root = ctx.target.workspace;
    const startedAt = Date.now();
    const recorder = new RunRecorder(session.stateFile, ctx.progress, !opts.raw && !ctx.dryRun, ctx.dryRun);
    const deletion = opts.delete ? await planDeletion(session, opts) : undefined;
    // big files resume the multipart uploads an interrupted push left (-f discards them); stale uploads of ours are aborted
    const uploads = ctx.dryRun ? undefined : ResumableUploads.forTarget(root, session.storage, ctx.target.dest);
    await uploads?.prepare({ discard: ctx.force });

    if (!opts.raw && !opts.skipPull) {
      await runPullPass(session, ctx, false, recorder);
      if (recorder.summary.conflicts.length > 0) return await recorder.finish(); // nothing uploaded (exit 3)
      await recorder.flush();
      // the upload pass counts every unchanged path again: count each path once
      recorder.summary.unchanged = 0;
    }

    ctx.progress.next({ type: 'phase', phase: 'upload' });
    await runUploadPass(session, ctx, opts, recorder, uploads);
    // a pass over the whole workspace touched every file that still needs its upload: other records are obsolete
    if (uploads && !opts.only && !ctx.signal?.aborted) await uploads.finishPass();

    if (deletion && deletion.entries.length > 0) {
      for (const e of deletion.entries) recorder.planned('delete-remote', e.path);
      if (!ctx.dryRun) {
        await session.storage.delete(deletion.entries.map((e) => ctx.target.dest + e.path));
        for (const e of deletion.entries) {
          recorder.drop(e.path);
          recorder.done('delete-remote', e.path);
        }
      }
    }

    const summary = await recorder.finish();
    // every upload that started has landed in the committed state (or was never sent): no intent is left to remember
    if (!opts.raw && !ctx.dryRun && summary.errors.length === 0 && summary.unstable.length === 0) clearUploadIntents(session.stateFile);
    if (!opts.raw && !ctx.dryRun && summary.errors.length === 0) {
      const cursor = deletion?.cursor ?? opts.journalCursor;
      await writeStamp(root, {
        lastPush: { at: startedAt, files: summary.uploaded, bytes: summary.bytes },
        bucket: ctx.target.bucket.text, dest: ctx.target.dest,
        ...(cursor !== undefined ? { journalCursor: cursor } : {}),
      });
      if (isJournalCursor(cursor)) pruneJournal(root, cursor);
    }
    return summary;
  } finally {
    await session.close();
  }
}

/**
 * planDeletion enforces the --delete safety rules before anything moves: a watcher covers the workspace without a gap
 * since the last stamp with current excludes; only recorded deletions of synced, now-missing paths; at most --max-delete.
 */
async function planDeletion(session: SyncSession, opts: PushOptions): Promise<{ entries: StateEntry[]; cursor: unknown }> {
  const root = session.target.workspace;
  const stamp = readStamp(root);
  const since = Math.max(stamp?.lastPush?.at ?? 0, stamp?.lastPull?.at ?? 0);
  if (!stamp || since === 0) {
    throw refusal('--delete needs a previous successful push or pull of this workspace', `run \`swm sync push ${session.target.id}\` first`);
  }
  const coverage = checkWatcherCoverage(root, since, session.rules.fingerprint, session.target.id);
  if (!coverage.ok) throw refusal(`--delete refused: ${coverage.reason}`, coverage.hint);
  const deltas = opts.only
    ? { deleted: opts.only.deleted, cursor: opts.journalCursor }
    : readJournalDeltas(root, stamp.journalCursor as Parameters<typeof readJournalDeltas>[1]);
  const entries = await planRemoteDeletions(root, deltas.deleted, readState(session.stateFile), session.rules);
  if (entries.length > 0 && (await workspaceIsEmpty(session))) {
    throw refusal(
      `--delete refused: the workspace ${root} has no files left, so it may be unmounted or wiped; nothing was deleted`,
      'if you really mean to empty the bucket, delete the objects with your storage tool',
    );
  }
  if (opts.maxDelete !== undefined && entries.length > opts.maxDelete) {
    throw refusal(
      `--delete would delete ${entries.length} objects, more than --max-delete ${opts.maxDelete}; nothing was changed`,
      'check the workspace (is it mounted and complete?) or raise --max-delete',
    );
  }
  return { entries, cursor: deltas.cursor };
}

/** folderIsEmpty: nothing in the folder survives the excludes (it is then synced as an empty-folder marker). */
function folderIsEmpty(root: string, relDir: string, session: SyncSession): boolean {
  let names: string[];
  try {
    names = readdirSync(join(root, relDir));
  } catch {
    return false;
  }
  return names.every((name) => {
    const rel = `${relDir}/${name}`;
    const entry = statLocal(root, rel);
    return !entry || session.rules.excludes(rel, entry.type === 'dir');
  });
}

/** workspaceIsEmpty: no file, link or folder survives the excludes (an empty or unmounted workspace never deletes). */
async function workspaceIsEmpty(session: SyncSession): Promise<boolean> {
  for await (const _ of scanWorkspace(session.target.workspace, session.rules, () => {})) return false;
  return true;
}

/** runUploadPass: march the scan (or the journal's changed paths) against the state and upload what changed. */
async function runUploadPass(session: SyncSession, ctx: VerbContext, opts: PushOptions, recorder: RunRecorder, uploads?: ResumableUploads): Promise<void> {
  const root = ctx.target.workspace;
  const onProblem = (p: ScanProblem) => (p.skipped ? recorder.warning(`${p.path}: ${p.message}`, p.path) : recorder.error(p.path, p.message));
  const local = opts.only ? changedEntries(session, opts.only.changed, opts.only.deleted, onProblem) : scanWorkspace(root, session.rules, onProblem);
  const state = opts.raw ? (async function* (): AsyncGenerator<StateEntry> {})() : readState(session.stateFile);
  const window = new InFlightWindow(1024);
  const pairs = marchSorted<LocalEntry, StateEntry>(local, state, (l) => l.path, (s) => s.path, compareKeys);
  const persist = !opts.raw && !ctx.dryRun;
  const transferCtx = {
    root, storage: session.storage, dest: ctx.target.dest, progress: ctx.progress, signal: ctx.signal, uploads,
    onUploadIntent: persist ? (path: string, hash: string) => recordUploadIntent(session.stateFile, path, hash) : undefined,
  };

  async function applyPush(d: PushDecision): Promise<void> {
    if (d.kind === 'none') {
      recorder.unchanged();
      return;
    }
    if (ctx.dryRun) {
      recorder.planned('upload', d.path, d.local.size);
      return;
    }
    const out = await uploadEntry(d.local, d.base, transferCtx);
    if (out.kind === 'unstable') recorder.unstable(out.path);
    else if (out.kind === 'unchanged') {
      recorder.set(out.entry);
      recorder.unchanged();
    } else {
      recorder.planned('upload', d.path, d.local.size);
      recorder.set(out.entry);
      recorder.done('upload', d.path, out.bytes);
    }
  }

  const run$ = fromWindowed(pairs, window).pipe(
    map((pair) => decidePush(pair, opts.raw)),
    mergeMap(async (d) => {
      await recorder.guard(d.path, () => applyPush(d));
      recorder.maybeCheckpoint();
      return d;
    }, TRANSFER_CONCURRENCY),
    releaseWindow(window),
    defaultIfEmpty(undefined),
  );
  await lastValueFrom(run$);
}

/**
 * changedEntries turns the journal's changed paths into key-ordered local entries; new folders are walked whole.
 * The folders that held deleted paths are looked at too: one left empty gets its folder marker, as a full scan would.
 */
async function* changedEntries(
  session: SyncSession,
  changed: readonly string[],
  deleted: readonly string[],
  onProblem: (p: ScanProblem) => void,
): AsyncGenerator<LocalEntry> {
  const root = session.target.workspace;
  const found = new Map<string, LocalEntry>();
  const parents = new Set<string>();
  for (const path of deleted) {
    const bare = path.replace(/\/+$/, '');
    const slash = bare.lastIndexOf('/');
    if (slash > 0) parents.add(bare.slice(0, slash + 1));
  }
  for (const path of [...changed, ...parents]) {
    const entry = statLocal(root, path);
    if (!entry) continue; // gone again since it was recorded
    const bare = entry.type === 'dir' ? entry.path.slice(0, -1) : entry.path;
    if (session.rules.excludes(bare, entry.type === 'dir')) continue;
    if (entry.type !== 'dir') {
      found.set(entry.path, entry);
      continue;
    }
    if (parents.has(path) && !changed.includes(path)) {
      // a folder something was deleted from: only its own emptiness matters, not its whole subtree
      if (folderIsEmpty(root, bare, session)) found.set(entry.path, entry);
      continue;
    }
    for await (const inner of scanWorkspace(root, session.rules, onProblem, entry.path)) found.set(inner.path, inner);
  }
  yield* [...found.values()].sort((a, b) => compareKeys(a.path, b.path));
}
