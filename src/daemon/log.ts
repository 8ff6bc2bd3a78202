// Log files of the background processes in `.swm/` (watcher.log, daemon.log): opening with rotation, writing lines, reading the tail.
import { closeSync, copyFileSync, mkdirSync, openSync, readSync, renameSync, statSync, truncateSync, fstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { errnoCode } from '../errors.js';

/** LOG_ROTATE_BYTES is the size past which a log is moved to `<log>.1` (one old generation is kept). */
export const LOG_ROTATE_BYTES = 1024 * 1024;

/** openLogFd opens a log for appending (0600, its folder 0700), first rotating it when it has grown past LOG_ROTATE_BYTES. */
export function openLogFd(path: string): number {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    if (statSync(path).size > LOG_ROTATE_BYTES) renameSync(path, `${path}.1`);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
  return openSync(path, 'a', 0o600);
}

/**
 * rotateOpenLog is for a process whose stdout is the log, opened for appending: when it has grown past LOG_ROTATE_BYTES it is
 * copied to `<log>.1` and truncated in place (the open descriptor keeps appending at the new end).
 */
export function rotateOpenLog(path: string): void {
  try {
    if (statSync(path).size <= LOG_ROTATE_BYTES) return;
    copyFileSync(path, `${path}.1`);
    truncateSync(path, 0);
  } catch {
    /* a log that cannot be rotated is not worth failing for */
  }
}

/** logLine writes one timestamped line to stdout (which the spawner pointed at the process's log file). */
export function logLine(message: string): void {
  process.stdout.write(`${new Date().toISOString()} ${message.replace(/\n/g, ' ')}\n`);
}

/** logTail returns the last `lines` non-empty lines of a log file ([] when it does not exist), reading at most 64 KiB. */
export function logTail(path: string, lines: number): string[] {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    const all = buf.toString('utf8').split('\n').filter((l) => l.length > 0);
    if (length < size) all.shift(); // probably cut in the middle
    return all.slice(-lines);
  } finally {
    closeSync(fd);
  }
}
