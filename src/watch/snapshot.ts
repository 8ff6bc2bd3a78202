// Gap reconciliation from @parcel/watcher snapshots: the snapshot file and its metadata, refreshed by a short-lived child
// process (watch/snapshot-process.ts) that also reports every create/update/delete since the previous snapshot.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { swmPaths, TEMP_INFIX } from '../state/paths.js';
import { tempPathFor, writeFileAtomicSync } from '../state/atomic.js';
import { compiledEntry } from '../daemon/process.js';
import { journalFiles } from './journal.js';

/** SnapshotEvent is one difference between the previous snapshot and the workspace now (absolute path). */
export interface SnapshotEvent {
  type: 'create' | 'update' | 'delete';
  path: string;
}

/** SnapshotMeta describes `.swm/watcher.snapshot`: when it was taken, under which excludes, and since when the journal was complete then. */
export interface SnapshotMeta {
  /** ms since epoch just before the crawl began. */
  takenAt: number;
  fingerprint: string;
  /** the watcher's coveredSince when the snapshot was taken: a later diff against it extends that coverage. */
  coveredSince: number;
}

/** readSnapshotMeta returns the metadata of the workspace's snapshot, or undefined when there is no usable snapshot. */
export function readSnapshotMeta(workspace: string): SnapshotMeta | undefined {
  if (!existsSync(swmPaths(workspace).watcherSnapshot)) return undefined;
  try {
    const m = JSON.parse(readFileSync(journalFiles(workspace).snapshotMeta, 'utf8')) as SnapshotMeta;
    return typeof m.takenAt === 'number' && typeof m.fingerprint === 'string' && typeof m.coveredSince === 'number' ? m : undefined;
  } catch {
    return undefined;
  }
}

/** writeSnapshotMeta records the metadata of the snapshot just installed. */
export function writeSnapshotMeta(workspace: string, meta: SnapshotMeta): void {
  writeFileAtomicSync(journalFiles(workspace).snapshotMeta, JSON.stringify(meta) + '\n');
}

/** removeStaleSnapshotTemps deletes half-written snapshots left by a crawl that was cut short (its watcher was killed). */
export function removeStaleSnapshotTemps(workspace: string): void {
  const current = swmPaths(workspace).watcherSnapshot;
  const prefix = `.${basename(current)}${TEMP_INFIX}`;
  try {
    for (const name of readdirSync(dirname(current))) {
      if (name.startsWith(prefix)) rmSync(join(dirname(current), name), { force: true });
    }
  } catch {
    /* no .swm/ yet */
  }
}

/** SnapshotRefresh is a new snapshot written beside the current one, and the events since the current one (when asked). */
export interface SnapshotRefresh {
  /** undefined when no diff was asked for (or there was no previous snapshot). */
  events: SnapshotEvent[] | undefined;
  /** install() renames the new snapshot over the current one; discard() deletes it. */
  install(): void;
  discard(): void;
}

/**
 * refreshSnapshot crawls the workspace into a new snapshot (in a child process) and, when `diff` is set and a snapshot exists,
 * lists the events since it. Nothing replaces the current snapshot until install() is called, after the events are journaled.
 */
export function refreshSnapshot(workspace: string, diff: boolean): Promise<SnapshotRefresh> {
  const current = swmPaths(workspace).watcherSnapshot;
  const fresh = tempPathFor(current);
  const old = diff && existsSync(current) ? current : '-';
  const script = compiledEntry(new URL('./snapshot-process.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, workspace, fresh, old], { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    const events: SnapshotEvent[] = [];
    let error: string | undefined;
    let done = false;
    let rest = '';
    let stderr = '';
    const discard = () => {
      try { unlinkSync(fresh); } catch { /* never written */ }
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const text = rest + chunk;
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (line.length === 0) continue;
        let v: SnapshotEvent & { done?: boolean; error?: string };
        try {
          v = JSON.parse(line) as typeof v;
        } catch {
          continue; // not ours (a stray print of a library)
        }
        if (v.done) done = true;
        else if (v.error !== undefined) error = v.error;
        else events.push({ type: v.type, path: v.path });
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    child.on('error', (e) => {
      discard();
      reject(e);
    });
    child.on('close', (code) => {
      if (code !== 0 || !done) {
        discard();
        reject(new Error(`snapshot crawl failed: ${error ?? (stderr.trim().split('\n').at(-1) || `exit code ${code}`)}`));
        return;
      }
      resolve({
        events: old === '-' ? undefined : events,
        install: () => {
          chmodSync(fresh, 0o600); // it lists every path of the workspace
          renameSync(fresh, current);
        },
        discard,
      });
    });
  });
}
