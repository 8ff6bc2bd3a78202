// Detached background processes: spawning them in their own session, telling whether a pid is still ours, stopping them.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode, failure } from '../errors.js';
import { openLogFd } from './log.js';

/** STOP_GRACE_MS is how long stopProcess waits after SIGTERM before it sends SIGKILL. */
export const STOP_GRACE_MS = 5_000;

/** ProcessIdentity says which process a pid must be: its script (by file name) and an argument it was given (the workspace). */
export interface ProcessIdentity {
  /** the entry script's file name, e.g. "watcher-process.js". */
  script: string;
  /** an exact argument the process was started with (the workspace path). */
  arg: string;
}

/**
 * compiledEntry turns the URL of a compiled entry script into a path that exists. Under tests the calling module runs from
 * src/ (TypeScript), so `src/x/y.js` is mapped to `dist/x/y.js`; swm must have been built.
 */
export function compiledEntry(url: URL): string {
  const path = fileURLToPath(url);
  if (existsSync(path)) return path;
  const at = path.lastIndexOf('/src/');
  if (at >= 0) {
    const built = `${path.slice(0, at)}/dist/${path.slice(at + 5)}`;
    if (existsSync(built)) return built;
  }
  throw failure(`swm is not built: ${path} is missing`, undefined, 'run `npm run build` in the swm folder');
}

/** processCommandLine returns the arguments of a live process (from /proc), or undefined when unknown or gone. */
export function processCommandLine(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.length === 0 ? [] : raw.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/**
 * isProcessAlive tells whether pid is a running (not zombie) process; with an identity, also whether its command line is
 * that script with that argument, so a pid reused by an unrelated process after a crash does not count as ours.
 */
export function isProcessAlive(pid: number, identity?: ProcessIdentity): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if (errnoCode(e) !== 'EPERM') return false;
  }
  if (!existsSync('/proc/self')) return true; // no procfs: the signal check is all we have
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') return false;
  } catch {
    return false;
  }
  if (!identity) return true;
  const args = processCommandLine(pid);
  if (!args) return false;
  return args.some((a) => basename(a) === identity.script) && args.includes(identity.arg);
}

/**
 * spawnDetached starts `node script ...args` in its own session (it survives the terminal closing), with stdout and stderr
 * appended to logPath, and does not wait for it. Returns the child's pid.
 */
export function spawnDetached(script: string, args: string[], logPath: string, cwd = '/'): number {
  const logFd = openLogFd(logPath);
  try {
    const child = spawn(process.execPath, [script, ...args], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      cwd,
      env: process.env,
    });
    if (child.pid === undefined) throw failure(`could not start ${basename(script)}`, undefined, `see ${logPath}`);
    child.on('error', () => { /* reported through the pid check of the caller */ });
    child.unref();
    return child.pid;
  } finally {
    closeSync(logFd);
  }
}

/**
 * stopProcess sends SIGTERM to pid (when it is still the identified process), waits up to graceMs for it to exit, then
 * sends SIGKILL. Returns what happened.
 */
export async function stopProcess(pid: number, identity: ProcessIdentity, graceMs = STOP_GRACE_MS): Promise<'not-running' | 'terminated' | 'killed'> {
  if (!isProcessAlive(pid, identity)) return 'not-running';
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 'not-running';
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await sleep(50);
    if (!isProcessAlive(pid, identity)) return 'terminated';
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return 'terminated';
  }
  for (let i = 0; i < 40 && isProcessAlive(pid); i++) await sleep(50);
  return 'killed';
}

/** waitFor polls check every intervalMs until it returns a value other than undefined, or until timeoutMs passed. */
export async function waitFor<T>(check: () => T | undefined, timeoutMs: number, intervalMs = 50): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await sleep(intervalMs);
  }
}
