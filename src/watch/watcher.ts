// The workspace watcher (runs inside watcher-process.ts): @parcel/watcher subscriptions → verified, excluded, journaled events,
// with the library's holes closed — folders that arrive whole are rescanned and subscribed, restarts and errors are
// reconciled from a snapshot, and deletion of the workspace root stops it as a gap instead of "delete everything".
import watcher from '@parcel/watcher';
import type { AsyncSubscription, Event as ParcelEvent } from '@parcel/watcher';
import { lstatSync, statSync, type Stats } from 'node:fs';
import { dirname, join, relative, isAbsolute } from 'node:path';
import { buildExcludeRules, type ExcludeRules } from '../engine/exclude.js';
import { swmPaths, SWM_DIR } from '../state/paths.js';
import { claimPidRecord, readPidRecord, removePidRecord, writePidRecord } from '../daemon/pidfile.js';
import { logLine } from '../daemon/log.js';
import { JournalWriter, type FileEventLine, type JournalLine } from './journal.js';
import { inspectWatcher, type WatcherGap, type WatcherRecord } from './watcher-record.js';
import { readSnapshotMeta, refreshSnapshot, removeStaleSnapshotTemps, writeSnapshotMeta, type SnapshotEvent } from './snapshot.js';
import { walkSubtree, excludedSafely } from './subtree.js';

/** WatcherOptions is the JSON the watcher process receives on its command line. */
export interface WatcherOptions {
  /** user excludes (-x, config); defaults and .swmignore are added by buildExcludeRules. */
  excludes: string[];
  /** workspace id, for hints. */
  id?: string;
  /** seconds between snapshot reconciliations while running (catches events the kernel or the library dropped). */
  reconcileSeconds?: number;
}

/** DEFAULT_RECONCILE_SECONDS is how often a running watcher re-crawls the workspace to catch missed events. */
export const DEFAULT_RECONCILE_SECONDS = 300;
/** HEALTH_CHECK_MS is how often the watcher checks that the workspace root, `.swm/` and its pid file are still in place. */
const HEALTH_CHECK_MS = 1000;
/** MAX_EXTRA_SUBSCRIPTIONS bounds the per-folder subscriptions; past it the watcher resubscribes the root (with a reconcile). */
const MAX_EXTRA_SUBSCRIPTIONS = 64;
const GAPS_KEPT = 10;

type FileIdentity = { dev: number; ino: number };
const identityOf = (st: Stats): FileIdentity => ({ dev: st.dev, ino: st.ino });
const sameIdentity = (a: FileIdentity, b: FileIdentity) => a.dev === b.dev && a.ino === b.ino;

/** WorkspaceWatcher watches one workspace until stopped; run() resolves with the process exit code. */
export class WorkspaceWatcher {
  private readonly paths;
  private readonly rules: ExcludeRules;
  private readonly journal: JournalWriter;
  private record: WatcherRecord;
  /** subscriptions by workspace-relative folder; '' is the root. */
  private readonly subs = new Map<string, AsyncSubscription>();
  private chain: Promise<void> = Promise.resolve();
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private rootIdentity: FileIdentity | undefined;
  private swmIdentity: FileIdentity | undefined;
  private reconciling: Promise<boolean> | undefined;
  private resubscribeQueued = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private finish: (code: number) => void = () => {};
  private readonly finished = new Promise<number>((resolve) => { this.finish = resolve; });
  private readonly onParcel = (err: Error | null, events: ParcelEvent[]) => {
    this.enqueue(() => this.onEvents(err, events));
  };

  constructor(readonly root: string, private readonly options: WatcherOptions) {
    this.paths = swmPaths(root);
    this.rules = buildExcludeRules(root, options.excludes);
    this.journal = new JournalWriter(root);
    const now = Date.now();
    this.record = {
      pid: process.pid,
      startedAt: now,
      workspace: root,
      id: options.id,
      status: 'starting',
      fingerprint: this.rules.fingerprint,
      excludes: options.excludes,
      patterns: [...this.rules.patterns],
      gaps: [],
    };
  }

  /** run starts watching and resolves with an exit code once the watcher has stopped (stop(), root deleted, fatal error). */
  async run(): Promise<number> {
    const previous = this.claim();
    if (previous === 'taken') return 0;
    try {
      await this.start(previous);
    } catch (e) {
      logLine(`watcher failed to start: ${(e as Error).message}`);
      await this.stop(`failed to start: ${(e as Error).message}`);
      return 1;
    }
    return this.finished;
  }

  /** claim takes watcher.json; 'taken' when another live watcher holds it, else the stale record it replaced (if any). */
  private claim(): 'taken' | WatcherRecord | undefined {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (claimPidRecord(this.paths.watcher, this.record)) return undefined;
      const state = inspectWatcher(this.root);
      if (state.kind === 'running' && state.record.pid !== process.pid) {
        logLine(`another watcher (pid ${state.record.pid}) already watches ${this.root}; exiting`);
        return 'taken';
      }
      if (state.kind === 'stale') {
        removePidRecord(this.paths.watcher, state.record.pid);
        if (claimPidRecord(this.paths.watcher, this.record)) return state.record;
      }
    }
    logLine('could not claim watcher.json; exiting');
    return 'taken';
  }

  private async start(previous: WatcherRecord | undefined): Promise<void> {
    this.journal.open();
    this.journal.append([{ t: Date.now(), e: 'start', pid: process.pid, fp: this.rules.fingerprint }]);
    removeStaleSnapshotTemps(this.root);
    this.rootIdentity = identityOf(statSync(this.root));
    this.swmIdentity = identityOf(statSync(this.paths.dir));
    await this.subscribeRoot();
    const subscribedAt = Date.now();
    logLine(`watching ${this.root} (pid ${process.pid}, excludes fingerprint ${this.rules.fingerprint})`);

    const meta = readSnapshotMeta(this.root);
    let reconciled = false;
    if (meta && meta.fingerprint === this.rules.fingerprint) {
      // the gap since the last snapshot (the previous watcher's stop or crash included) is replayed from it
      try {
        reconciled = await this.reconcile(meta.coveredSince);
      } catch (e) {
        logLine(`could not reconcile from the snapshot: ${(e as Error).message}`);
      }
    }
    if (reconciled) {
      this.record.coveredSince = meta!.coveredSince;
      this.addGap({ at: subscribedAt, reason: 'watcher restarted', reconciled: 'snapshot' });
      logLine(`restart gap reconciled from the snapshot of ${new Date(meta!.takenAt).toISOString()}`);
    } else {
      this.record.coveredSince = subscribedAt;
      const reason = meta && meta.fingerprint !== this.rules.fingerprint
        ? 'excludes changed since the last watcher ran'
        : previous
          ? `the previous watcher (pid ${previous.pid}) died without stopping`
          : meta
            ? 'watcher restarted without a usable snapshot'
            : undefined;
      if (reason) this.addGap({ at: subscribedAt - 1, reason, reconciled: false });
      // a first snapshot, so that the next restart or error can be reconciled
      this.reconcile(subscribedAt, false).catch((e) => logLine(`could not write the first snapshot: ${(e as Error).message}`));
    }
    this.record.status = 'watching';
    this.writeRecord();

    this.timers.push(setInterval(() => this.healthCheck(), HEALTH_CHECK_MS));
    const every = Math.max(1, this.options.reconcileSeconds ?? DEFAULT_RECONCILE_SECONDS) * 1000;
    this.timers.push(setInterval(() => this.enqueue(() => this.periodicReconcile()), every));
  }

  private async subscribeRoot(): Promise<void> {
    const sub = await watcher.subscribe(this.root, this.onParcel, { ignore: [join(this.root, SWM_DIR)] });
    this.subs.set('', sub);
  }

  /** enqueue serializes event handling (a batch may await subscriptions); errors are logged, never thrown. */
  private enqueue(task: () => Promise<void> | void): void {
    this.chain = this.chain.then(task).catch((e) => logLine(`error handling events: ${(e as Error).stack ?? e}`));
  }

  private async onEvents(err: Error | null, events: ParcelEvent[]): Promise<void> {
    if (this.stopping) return;
    if (err) {
      await this.recover(`watcher error: ${err.message}`);
      return;
    }
    if (events.some((e) => e.path === this.root) || this.rootChanged()) {
      await this.rootGone('the workspace root was deleted or moved away');
      return;
    }
    const lines: FileEventLine[] = [];
    const newDirs: string[] = [];
    const deletedDirs: string[] = [];
    for (const e of events) {
      const rel = this.relativePath(e.path);
      if (rel === undefined) continue;
      const line = this.verified(rel, e.type, false);
      if (!line) continue;
      lines.push(line);
      if (line.e === 'c' && line.d) newDirs.push(rel);
      if (line.e === 'd') deletedDirs.push(rel);
    }
    this.journal.append(lines);
    for (const rel of deletedDirs) await this.unsubscribeUnder(rel);
    if (this.stopping) return;
    for (const rel of outermost(newDirs)) await this.adopt(rel);
  }

  /**
   * verified turns an event into a journal line that matches the filesystem now: create/update only for a path that exists
   * (stale paths after a folder rename are dropped), delete only for one that is missing (else it becomes an update).
   * Excluded paths and folder updates (metadata only) give undefined.
   */
  private verified(rel: string, type: ParcelEvent['type'], rescan: boolean): FileEventLine | undefined {
    let st: Stats | undefined;
    try {
      st = lstatSync(join(this.root, rel));
    } catch {
      st = undefined;
    }
    const t = Date.now();
    if (!st) {
      if (type !== 'delete') return undefined;
      if (excludedSafely(this.rules, rel, false) || excludedSafely(this.rules, rel, true)) return undefined;
      return rescan ? { t, e: 'd', p: rel, r: 1 } : { t, e: 'd', p: rel };
    }
    const isDir = st.isDirectory();
    if (excludedSafely(this.rules, rel, isDir)) return undefined;
    const e = type === 'create' ? 'c' : 'u';
    if (isDir && e === 'u') return undefined;
    const line: FileEventLine = { t, e, p: rel };
    if (isDir) line.d = 1;
    if (rescan) line.r = 1;
    return line;
  }

  /** relativePath maps an event's absolute path to a workspace-relative one; undefined for the root, `.swm/` and outside paths. */
  private relativePath(abs: string): string | undefined {
    const rel = relative(this.root, abs);
    if (rel === '' || rel === '..' || rel.startsWith('../') || isAbsolute(rel)) return undefined;
    if (rel === SWM_DIR || rel.startsWith(`${SWM_DIR}/`)) return undefined;
    return rel;
  }

  /**
   * adopt handles a folder that was created: a subscription of its own (@parcel/watcher does not watch the subfolders of a
   * folder that arrived whole), then a rescan that journals everything already inside (subscribe first: nothing slips between).
   */
  private async adopt(rel: string): Promise<void> {
    if (this.subs.size > MAX_EXTRA_SUBSCRIPTIONS) {
      if (!this.resubscribeQueued) {
        this.resubscribeQueued = true;
        this.enqueue(() => {
          this.resubscribeQueued = false;
          return this.recover(`more than ${MAX_EXTRA_SUBSCRIPTIONS} folders created: resubscribing the workspace`);
        });
      }
    } else {
      const old = this.subs.get(rel);
      if (old) {
        this.subs.delete(rel);
        await old.unsubscribe().catch(() => {});
      }
      try {
        this.subs.set(rel, await watcher.subscribe(join(this.root, rel), this.onParcel));
      } catch {
        return; // gone again before we could watch it: its delete event follows
      }
    }
    if (this.stopping) return;
    const lines: JournalLine[] = [];
    walkSubtree(this.root, rel, this.rules, (path, isDir) => {
      lines.push(isDir ? { t: Date.now(), e: 'c', p: path, d: 1, r: 1 } : { t: Date.now(), e: 'c', p: path, r: 1 });
    });
    this.journal.append(lines);
  }

  private async unsubscribeUnder(rel: string): Promise<void> {
    for (const [key, sub] of [...this.subs]) {
      if (key !== '' && (key === rel || key.startsWith(`${rel}/`))) {
        this.subs.delete(key);
        await sub.unsubscribe().catch(() => {}); // a watch on a deleted folder rejects "Invalid argument"
      }
    }
  }

  /**
   * reconcile refreshes the snapshot and (when `diff` and one exists) journals, verified, every change since the previous one.
   * Returns whether a diff was applied. `coveredSince` is recorded with the new snapshot.
   */
  private reconcile(coveredSince: number, diff = true): Promise<boolean> {
    if (this.reconciling) return this.reconciling;
    const run = async (): Promise<boolean> => {
      const takenAt = Date.now();
      const refresh = await refreshSnapshot(this.root, diff);
      if (this.stopping) {
        refresh.discard();
        return false;
      }
      if (refresh.events) this.applySnapshotEvents(refresh.events);
      this.journal.sync();
      refresh.install();
      writeSnapshotMeta(this.root, { takenAt, fingerprint: this.rules.fingerprint, coveredSince });
      this.record.lastReconcileAt = takenAt;
      return refresh.events !== undefined;
    };
    this.reconciling = run().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  /** applySnapshotEvents journals a snapshot diff, each event verified against the filesystem now. */
  private applySnapshotEvents(events: SnapshotEvent[]): void {
    if (events.some((e) => e.path === this.root) || this.rootChanged()) return;
    const lines: FileEventLine[] = [];
    for (const e of events) {
      const rel = this.relativePath(e.path);
      if (rel === undefined) continue;
      const line = this.verified(rel, e.type, true);
      if (line) lines.push(line);
    }
    this.journal.append(lines);
  }

  private async periodicReconcile(): Promise<void> {
    if (this.stopping || this.record.coveredSince === undefined) return;
    try {
      await this.reconcile(this.record.coveredSince);
      this.writeRecord();
    } catch (e) {
      logLine(`periodic reconciliation failed: ${(e as Error).message}`);
    }
  }

  /**
   * recover handles an error or an overgrown set of subscriptions: drop every subscription, subscribe the root afresh (a new
   * crawl), and reconcile the window from the snapshot; if that is impossible, coverage restarts now.
   */
  private async recover(reason: string): Promise<void> {
    if (this.stopping) return;
    const gap: WatcherGap = { at: Date.now(), reason, reconciled: false };
    this.addGap(gap);
    logLine(`gap: ${reason}`);
    for (const [key, sub] of [...this.subs]) {
      this.subs.delete(key);
      await sub.unsubscribe().catch(() => {});
    }
    try {
      await this.subscribeRoot();
    } catch (e) {
      if (this.rootChanged()) return this.rootGone('the workspace root was deleted or moved away');
      logLine(`could not resubscribe: ${(e as Error).message}`);
      return this.stop(`could not resubscribe after a gap: ${(e as Error).message}`, 1);
    }
    let ok = false;
    try {
      if (this.reconciling) await this.reconciling.catch(() => false);
      ok = await this.reconcile(this.record.coveredSince ?? Date.now());
    } catch (e) {
      logLine(`could not reconcile the gap: ${(e as Error).message}`);
    }
    if (ok) {
      gap.reconciled = 'snapshot';
      this.journal.append([{ t: Date.now(), e: 'gap', reason, reconciled: 'snapshot' }]);
    } else {
      this.record.coveredSince = Math.max(Date.now(), gap.at + 1);
      // a fresh snapshot so that the next gap can be reconciled
      this.reconcile(this.record.coveredSince, false).catch(() => {});
    }
    this.writeRecord();
  }

  private addGap(gap: WatcherGap): void {
    this.record.gaps.push(gap);
    if (this.record.gaps.length > GAPS_KEPT) this.record.gaps.splice(0, this.record.gaps.length - GAPS_KEPT);
    this.journal.append([{ t: gap.at, e: 'gap', reason: gap.reason, ...(gap.reconciled ? { reconciled: gap.reconciled } : {}) }]);
    this.writeRecord();
  }

  /** rootChanged tells whether the workspace root is gone or is another folder now (deleted and recreated, unmounted). */
  private rootChanged(): boolean {
    if (!this.rootIdentity) return false;
    try {
      return !sameIdentity(identityOf(statSync(this.root)), this.rootIdentity);
    } catch {
      return true;
    }
  }

  private healthCheck(): void {
    if (this.stopping) return;
    if (this.rootChanged()) {
      this.enqueue(() => this.rootGone('the workspace root was deleted, moved away or unmounted'));
      return;
    }
    let swmOk = false;
    try {
      swmOk = this.swmIdentity !== undefined && sameIdentity(identityOf(statSync(this.paths.dir)), this.swmIdentity);
    } catch {
      swmOk = false;
    }
    if (!swmOk) {
      this.enqueue(() => this.stop('the .swm folder was deleted', 0));
      return;
    }
    if (this.record.status === 'watching' && readPidRecord(this.paths.watcher)?.pid !== process.pid) {
      this.enqueue(() => this.stop('watcher.json was removed or taken over', 0));
    }
  }

  /** rootGone: the watched folder is gone. Nothing of this batch is journaled (never "delete everything"); a gap is recorded; stop. */
  private async rootGone(reason: string): Promise<void> {
    if (this.stopping) return;
    logLine(`gap: ${reason}; stopping`);
    this.journal.append([{ t: Date.now(), e: 'gap', reason }]);
    this.journal.sync();
    await this.stop(reason, 0, true);
  }

  /** stop unsubscribes everything, closes the journal and removes watcher.json (where it is now, if the root moved). */
  stop(reason: string, code = 0, rootMoved = false): Promise<void> {
    if (this.stopped) return this.stopped;
    this.stopping = true;
    this.stopped = (async () => {
      for (const t of this.timers) clearInterval(t);
      for (const [key, sub] of [...this.subs]) {
        this.subs.delete(key);
        await sub.unsubscribe().catch(() => {});
      }
      let pidFile = this.paths.watcher;
      if (rootMoved) {
        const segment = this.journal.currentLocation();
        pidFile = segment && !segment.endsWith(' (deleted)') ? join(dirname(dirname(segment)), 'watcher.json') : '';
      }
      try {
        this.journal.append([{ t: Date.now(), e: 'stop', reason }]);
        this.journal.close();
      } catch {
        /* journal not opened yet */
      }
      if (pidFile) removePidRecord(pidFile, process.pid);
      logLine(`stopped: ${reason}`);
      this.finish(code);
    })();
    return this.stopped;
  }

  private writeRecord(): void {
    if (this.stopping) return;
    const current = readPidRecord(this.paths.watcher);
    if (current && current.pid !== process.pid) return; // never overwrite another watcher's record
    try {
      writePidRecord(this.paths.watcher, this.record);
    } catch (e) {
      logLine(`could not write watcher.json: ${(e as Error).message}`);
    }
  }
}

/** outermost keeps the folders that are not inside another folder of the list (one rescan covers the inner ones). */
function outermost(dirs: string[]): string[] {
  const sorted = [...new Set(dirs)].sort();
  const out: string[] = [];
  for (const d of sorted) {
    if (!out.some((o) => d.startsWith(`${o}/`))) out.push(d);
  }
  return out;
}
