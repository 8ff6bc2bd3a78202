// The stamp: the record of the last successful push and pull (`.swm/stamp.json`). Safety checks (auto, --delete) read it.
import { readFileSync } from 'node:fs';
import { swmPaths } from './paths.js';
import { writeFileAtomic } from './atomic.js';
import { errnoCode } from '../errors.js';

/** SyncRecord describes one successful push or pull. */
export interface SyncRecord {
  /** ms since epoch when the run started (changes after this are not covered by it). */
  at: number;
  files: number;
  bytes: number;
  raw?: boolean;
  tar?: boolean;
}

export interface Stamp {
  lastPush?: SyncRecord;
  lastPull?: SyncRecord;
  /** where the watcher journal has been consumed up to (opaque; see watch/journal.ts). */
  journalCursor?: unknown;
  /** bucket and dest the stamp refers to: a stamp for another target does not count. */
  bucket?: string;
  dest?: string;
}

/** readStamp returns the stamp, or undefined when none was written (or it is unreadable). */
export function readStamp(workspace: string): Stamp | undefined {
  try {
    const parsed = JSON.parse(readFileSync(swmPaths(workspace).stamp, 'utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as Stamp) : undefined;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || e instanceof SyntaxError) return undefined;
    throw e;
  }
}

/** writeStamp merges `change` into the stamp, atomically. */
export async function writeStamp(workspace: string, change: Partial<Stamp>): Promise<Stamp> {
  const next = { ...(readStamp(workspace) ?? {}), ...change };
  await writeFileAtomic(swmPaths(workspace).stamp, JSON.stringify(next, null, 2) + '\n');
  return next;
}
