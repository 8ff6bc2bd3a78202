// Verb: pull. list-remote ─▶ exclude ─▶ compare(state, remote, local) ─▶ download / delete-local ─▶ commit(state, stamp).
import type { VerbContext, PullOptions, TransferSummary } from './types.js';
import { openSession, type SyncSession } from './session.js';
import { fromBatchesWindowed, releaseWindow, marchBatches, InFlightWindow, lastValueFrom, mergeMap, tap, defaultIfEmpty, type Paired } from '../engine/flow.js';
import { readState, readStateBatches, type StateEntry } from '../state/store.js';
import { readUploadIntents } from '../state/intents.js';
import { RemoteListing, type RemoteEntry } from '../engine/remote.js';
import type { LocalEntry } from '../engine/scan.js';
import { decidePull, settledPull, type PullDecision } from '../engine/plan.js';
import { downloadEntry, deleteLocalEntry } from '../engine/transfer.js';
import { RunRecorder } from '../engine/commit.js';
import { writeStamp } from '../state/stamp.js';
import { compareKeys } from '../keys.js';
import { refusal, ExitCode } from '../errors.js';

/** DECIDE_CONCURRENCY bounds local hashing and HEADs while comparing; TRANSFER_CONCURRENCY bounds downloads in flight. */
export const DECIDE_CONCURRENCY = 16;
export const TRANSFER_CONCURRENCY = 64;

/** pull brings remote changes into the workspace (SPEC §4 pull, §5). */
export async function pull(ctx: VerbContext, opts: PullOptions): Promise<TransferSummary> {
  if (opts.tar) {
    const { pullTar } = await import('./tar.js');
    return pullTar(ctx);
  }
  const session = await openSession(ctx.target, ctx.progress, {
    verb: 'pull', createWorkspace: true, createBucket: false, lock: true, force: ctx.force, useState: !opts.raw, dryRun: ctx.dryRun, listRemote: true,
  });
  try {
    const recorder = new RunRecorder(session.stateFile, ctx.progress, !opts.raw && !ctx.dryRun, ctx.dryRun);
    const startedAt = Date.now();
    await runPullPass(session, ctx, opts.raw, recorder);
    const summary = await recorder.finish();
    if (!opts.raw && !ctx.dryRun && summary.conflicts.length === 0 && summary.errors.length === 0) {
      await writeStamp(ctx.target.workspace, {
        lastPull: { at: startedAt, files: summary.downloaded, bytes: summary.bytes },
        bucket: ctx.target.bucket.text, dest: ctx.target.dest,
      });
    }
    return summary;
  } finally {
    await session.close();
  }
}

/**
 * PullPassCompanion walks a third key-ordered stream along with the pull pass (push: its local scan, which then costs no
 * pass of its own). `visit` sees every key of the three streams in order, with its local entry, its state entry, and the
 * pull decision when it was made at once — undefined when the pass decides that key later (a look at the file or object).
 */
export interface PullPassCompanion {
  local: AsyncIterable<LocalEntry[]>;
  visit(key: string, local: LocalEntry | undefined, base: StateEntry | undefined, settled: PullDecision | undefined): void;
}

/**
 * runPullPass is the pull pipeline on an open session; push runs it first (unless --skip-pull) so that it uploads
 * only on top of what the remote holds. Conflicts and per-path errors land in the recorder.
 */
export async function runPullPass(session: SyncSession, ctx: VerbContext, raw: boolean, recorder: RunRecorder, companion?: PullPassCompanion): Promise<void> {
  const { target, storage, rules } = session;
  const root = target.workspace;
  ctx.progress.next({ type: 'phase', phase: 'compare-remote' });
  const stateBatches = raw ? emptyState() : readStateBatches(session.stateFile);
  const listing = session.takeListing() ?? new RemoteListing(storage, target.dest, rules);
  if (!raw && !(await listing.hasAny()) && (await hasAnyState(session.stateFile))) {
    listing.close();
    throw refusal(
      `${storage.description} has nothing under "${target.dest}" but this workspace was synced with it before: refusing to delete local files`,
      'check -b/-d; if the remote really was emptied on purpose, remove the state-*.tsv files in .swm/ and pull again',
    );
  }
  const remote = listing.batches((u) => recorder.error(u.key, `refusing object key ${JSON.stringify(u.key)}: ${u.reason}`, ExitCode.usage));
  const window = new InFlightWindow(1024);
  const pairs = marchBatches<StateEntry, RemoteEntry>(stateBatches, remote, (s) => s.path, (r) => r.path, compareKeys);
  const planCtx = { root, storage, dest: target.dest, raw, ourUploads: raw ? undefined : readUploadIntents(session.stateFile) };
  const transferCtx = { root, storage, dest: target.dest, progress: ctx.progress, signal: ctx.signal };

  // a pair whose object is as the state recorded it is settled on the spot; the others go down the pipeline
  const settle = (pair: Paired<StateEntry, RemoteEntry>): PullDecision | undefined => {
    const settled = settledPull(pair, raw);
    if (settled) void applyPull(settled); // 'none' or 'record-time': done synchronously
    return settled;
  };
  const source = companion
    ? fromBatchesWindowed(marchBatches(pairs, companion.local, (p) => p.key, (l) => l.path, compareKeys), window, (item: Paired<Paired<StateEntry, RemoteEntry>, LocalEntry>) => {
        const pair = item.left;
        // a path only the local side has is nothing for this pass to do
        const settled = pair ? settle(pair) : { kind: 'none' as const, path: item.key };
        companion.visit(item.key, item.right, pair?.left, settled);
        return settled ? undefined : pair;
      })
    : fromBatchesWindowed(pairs, window, (pair: Paired<StateEntry, RemoteEntry>) => (settle(pair) ? undefined : pair));
  const run$ = source.pipe(
    mergeMap(async (pair) => recorder.guard(pair.key, () => decidePull(pair, planCtx)), DECIDE_CONCURRENCY),
    mergeMap(async (decision) => {
      if (decision) await recorder.guard(decision.path, () => applyPull(decision));
      recorder.maybeCheckpoint();
      return decision;
    }, TRANSFER_CONCURRENCY),
    releaseWindow(window),
    defaultIfEmpty(undefined),
  );

  async function applyPull(d: PullDecision): Promise<void> {
    switch (d.kind) {
      case 'none':
        recorder.unchanged();
        return;
      case 'conflict':
        recorder.conflict(d.path, d.reason);
        return;
      case 'set-state':
        if (!ctx.dryRun) recorder.set(d.entry);
        return;
      case 'record-time':
        if (!ctx.dryRun) recorder.setRemoteTime(d.entry);
        return;
      case 'drop-state':
        if (!ctx.dryRun) recorder.drop(d.path);
        return;
      case 'delete-local':
        recorder.planned('delete-local', d.path);
        if (ctx.dryRun) return;
        if (deleteLocalEntry(root, d.path, d.expectedLocal)) {
          recorder.drop(d.path);
          recorder.done('delete-local', d.path);
        } else recorder.drop(d.path); // changed meanwhile: kept, push uploads it as new
        return;
      case 'download': {
        recorder.planned('download', d.path, d.remote.info.size);
        if (ctx.dryRun) return;
        const out = await downloadEntry(d.remote, d.expectedLocal, transferCtx, raw);
        if (out.kind === 'changed-locally') {
          recorder.conflict(d.path, 'changed locally while pulling');
          return;
        }
        recorder.set(out.entry);
        recorder.done('download', d.path, out.bytes);
        return;
      }
    }
  }

  await lastValueFrom(run$.pipe(tap({ error: () => undefined })));
}


async function* emptyState(): AsyncGenerator<StateEntry[]> {}

async function hasAnyState(stateFile: string): Promise<boolean> {
  for await (const _ of readState(stateFile)) return true;
  return false;
}
