// Pid files of the background processes (watcher.json, daemon.json): a JSON record with pid and start time, claimed exclusively,
// rewritten atomically, removed by its owner, and recognised as stale when its process is gone.
import { mkdirSync, openSync, readFileSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomicSync } from '../state/atomic.js';
import { errnoCode } from '../errors.js';
import { isProcessAlive, stopProcess, type ProcessIdentity } from './process.js';

/** PidRecord is the part every pid file shares. */
export interface PidRecord {
  pid: number;
  /** ms since epoch when the process started. */
  startedAt: number;
}

/** readPidRecord parses a pid file; undefined when it is missing or unreadable (a torn or foreign file counts as missing). */
export function readPidRecord<T extends PidRecord>(path: string): T | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as T;
    return typeof parsed === 'object' && parsed !== null && Number.isInteger(parsed.pid) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** claimPidRecord creates the pid file only if none exists (O_EXCL). Returns false when another record is there. */
export function claimPidRecord(path: string, record: PidRecord): boolean {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    if (errnoCode(e) === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, JSON.stringify(record) + '\n');
  } finally {
    closeSync(fd);
  }
  return true;
}

/** writePidRecord replaces the pid file atomically (readers see the old or the new record). */
export function writePidRecord(path: string, record: PidRecord): void {
  writeFileAtomicSync(path, JSON.stringify(record, null, 2) + '\n');
}

/** removePidRecord deletes the pid file if it still names pid (never another process's record). Returns whether it did. */
export function removePidRecord(path: string, pid: number): boolean {
  const current = readPidRecord(path);
  if (!current || current.pid !== pid) return false;
  try {
    unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}

/** PidFileState is a pid file's record together with whether its process is alive (and really ours). */
export type PidFileState<T extends PidRecord> =
  | { kind: 'none' }
  | { kind: 'running'; record: T }
  | { kind: 'stale'; record: T };

/** inspectPidFile reads a pid file and checks its process: running, stale (dead or reused pid) or none. */
export function inspectPidFile<T extends PidRecord>(path: string, identity: ProcessIdentity): PidFileState<T> {
  const record = readPidRecord<T>(path);
  if (!record) return { kind: 'none' };
  return isProcessAlive(record.pid, identity) ? { kind: 'running', record } : { kind: 'stale', record };
}

/** removeStalePidFile deletes a pid file whose process is gone; a live one is left alone. Returns whether it removed one. */
export function removeStalePidFile(path: string, identity: ProcessIdentity): boolean {
  const state = inspectPidFile(path, identity);
  return state.kind === 'stale' ? removePidRecord(path, state.record.pid) : false;
}

/** stopPidFileProcess stops the process a pid file names (SIGTERM, SIGKILL after the grace) and removes the file, stale or not. */
export async function stopPidFileProcess(path: string, identity: ProcessIdentity): Promise<{ wasRunning: boolean }> {
  const state = inspectPidFile(path, identity);
  if (state.kind === 'none') return { wasRunning: false };
  if (state.kind === 'stale') {
    removePidRecord(path, state.record.pid);
    return { wasRunning: false };
  }
  const outcome = await stopProcess(state.record.pid, identity);
  removePidRecord(path, state.record.pid); // it removes its own on SIGTERM; not when killed
  return { wasRunning: outcome !== 'not-running' };
}
