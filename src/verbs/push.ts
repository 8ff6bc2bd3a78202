// Verb: push. [pull pass, the scan alongside] ─▶ exclude ─▶ compare-with-state ─▶ hash ─▶ upload ─▶ [mirror recorded deletions] ─▶ commit(state, stamp).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { VerbContext, PushOptions, TransferSummary } from './types.js';
import { openSession, type SyncSession } from './session.js';
import { runPullPass, TRANSFER_CONCURRENCY } from './pull.js';
import { fromBatchesWindowed, releaseWindow, marchBatches, InFlightWindow, lastValueFrom, mergeMap, defaultIfEmpty, type Paired } from '../engine/flow.js';
import { scanWorkspace, scanWorkspaceBatches, statLocal, type LocalEntry, type ScanProblem } from '../engine/scan.js';
import { decidePush, type PushDecision, type PullDecision } from '../engine/plan.js';
import { uploadEntry } from '../engine/transfer.js';
import { ResumableUploads } from '../engine/resumable-upload.js';
import { planRemoteDeletions } from '../engine/deletions.js';
import { RunRecorder } from '../engine/commit.js';
import { readState, readStateBatches, type StateEntry } from '../state/store.js';
import { readStamp, writeStamp } from '../state/stamp.js';
import { UploadIntentLog, clearUploadIntents } from '../state/intents.js';
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
  const pullFirst = !opts.raw && !opts.skipPull;
  const session = await openSession(ctx.target, ctx.progress, {
    verb: 'push', createWorkspace: false, createBucket: true, lock: true, force: ctx.force, useState: !opts.raw, listRemote: pullFirst,
  });
  try {
    const root = ctx.target.workspace;
    const startedAt = Date.now();
    const recorder = new RunRecorder(session.stateFile, ctx.progress, !opts.raw && !ctx.dryRun, ctx.dryRun);
    const deletion = opts.delete ? await planDeletion(session, opts) : undefined;
    // big files resume the multipart uploads an interrupted push left (-f discards them); stale uploads of ours are aborted
    // meanwhile (it lists the bucket's uploads): the upload pass waits for that, the pull pass does not need to
    const uploads = ctx.dryRun ? undefined : ResumableUploads.forTarget(root, session.storage, ctx.target.dest);
    const preparing = uploads?.prepare({ discard: ctx.force });
    preparing?.catch(() => {}); // awaited below; an early return must not leave its failure unhandled

    // the scan walks along with the pull pass, which then tells what to upload without a pass of its own
    const found = pullFirst && !opts.only ? new UploadsFound() : undefined;
    if (pullFirst) {
      await runPullPass(session, ctx, false, recorder, found && {
        local: found.scanning(scanWorkspaceBatches(root, session.rules, (p) => found.problems.push(p))),
        visit: (key, local, base, settled) => found.visit(key, local, base, settled),
      });
      if (recorder.summary.conflicts.length > 0) return await recorder.finish(); // nothing uploaded (exit 3)
      await recorder.flush();
      // the upload pass counts every unchanged path again: count each path once
      recorder.summary.unchanged = 0;
    }
    await preparing;

    ctx.progress.next({ type: 'phase', phase: 'upload' });
    const onProblem = (p: ScanProblem) => (p.skipped ? recorder.warning(`${p.path}: ${p.message}`, p.path) : recorder.error(p.path, p.message));
    if (found?.complete) {
      for (const p of found.problems) onProblem(p);
      recorder.summary.unchanged = found.unchanged;
      await runUploads(session, ctx, opts, recorder, uploads, (async function* () { yield found.uploads; })());
    } else {
      await runUploadPass(session, ctx, opts, recorder, onProblem, uploads);
    }
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

/** Upload is a push decision to upload. */
type Upload = PushDecision & { kind: 'upload' };

/** UPLOADS_FOUND_MAX bounds the uploads gathered during the pull pass (~500 bytes each); past it the upload pass scans again. */
const UPLOADS_FOUND_MAX = 20_000;

/**
 * UploadsFound decides, while the pull pass walks state, listing and local scan together, what the upload pass would:
 * for each path whose pull decision was made at once (the object is as the state recorded it), the push decision from
 * the local entry and the state entry the pull pass leaves. It is `complete` only when every path was so decided and the
 * uploads stay few; otherwise the upload pass runs as its own pass after the pull pass, as always.
 */
class UploadsFound {
  uploads: Upload[] = [];
  unchanged = 0;
  complete = true;
  /** the scan's problems, reported when the uploads are run (a pull pass with conflicts uploads nothing and reports none). */
  readonly problems: ScanProblem[] = [];

  visit(key: string, local: LocalEntry | undefined, base: StateEntry | undefined, settled: PullDecision | undefined): void {
    if (!this.complete) return;
    if (!settled) return this.giveUp(); // the pull pass looks at this path later: it may download, delete or change its state
    const after = settled.kind === 'record-time' ? settled.entry : base;
    const d = decidePush({ key, left: local, right: after }, false);
    if (d.kind === 'none') this.unchanged++;
    else if (this.uploads.length < UPLOADS_FOUND_MAX) this.uploads.push(d);
    else this.giveUp();
  }

  private giveUp(): void {
    this.complete = false;
    this.uploads = [];
  }

  /** scanning passes the scan's batches on until this gives up (the upload pass will scan again: no use going on). */
  async *scanning(batches: AsyncIterable<LocalEntry[]>): AsyncGenerator<LocalEntry[]> {
    for await (const batch of batches) {
      if (!this.complete) return;
      yield batch;
    }
  }
}

/**
 * runUploadPass: march the scan (or the journal's changed paths) against the state and upload what changed. The march
 * goes a batch at a time; an unchanged path is counted on the spot and never enters the transfer pipeline.
 */
async function runUploadPass(
  session: SyncSession, ctx: VerbContext, opts: PushOptions, recorder: RunRecorder, onProblem: (p: ScanProblem) => void, uploads?: ResumableUploads,
): Promise<void> {
  const root = ctx.target.workspace;
  const local = opts.only ? changedEntries(session, opts.only.changed, opts.only.deleted, onProblem) : scanWorkspaceBatches(root, session.rules, onProblem);
  const state = opts.raw ? (async function* (): AsyncGenerator<StateEntry[]> {})() : readStateBatches(session.stateFile);
  const pairs = marchBatches<LocalEntry, StateEntry>(local, state, (l) => l.path, (s) => s.path, compareKeys);
  await runUploads(session, ctx, opts, recorder, uploads, pairs, (pair: Paired<LocalEntry, StateEntry>) => {
    const d = decidePush(pair, opts.raw);
    if (d.kind === 'upload') return d;
    recorder.unchanged();
    return undefined;
  });
}

/** runUploads sends the uploads `pick` finds in the batches (by default the batches are uploads already), TRANSFER_CONCURRENCY at a time. */
async function runUploads<T>(
  session: SyncSession, ctx: VerbContext, opts: PushOptions, recorder: RunRecorder, uploads: ResumableUploads | undefined,
  batches: AsyncIterable<T[]>, pick: (item: T) => Upload | undefined = (item) => item as Upload,
): Promise<void> {
  const persist = !opts.raw && !ctx.dryRun;
  const intents = persist ? new UploadIntentLog(session.stateFile) : undefined;
  const transferCtx = {
    root: ctx.target.workspace, storage: session.storage, dest: ctx.target.dest, progress: ctx.progress, signal: ctx.signal, uploads,
    onUploadIntent: intents ? (path: string, hash: string) => intents.record(path, hash) : undefined,
  };

  async function applyPush(d: Upload): Promise<void> {
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

  const window = new InFlightWindow(1024);
  const run$ = fromBatchesWindowed(batches, window, pick).pipe(
    mergeMap(async (d) => {
      await recorder.guard(d.path, () => applyPush(d));
      recorder.maybeCheckpoint();
      return d;
    }, TRANSFER_CONCURRENCY),
    releaseWindow(window),
    defaultIfEmpty(undefined),
  );
  try {
    await lastValueFrom(run$);
  } finally {
    intents?.close();
  }
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
): AsyncGenerator<LocalEntry[]> {
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
  yield [...found.values()].sort((a, b) => compareKeys(a.path, b.path));
}
