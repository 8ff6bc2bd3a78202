// Shared fixtures of the watcher/daemon tests: temporary workspaces, a file: target, polling, and cleanup of every process started.
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { processesUnder } from './cli-fixtures.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SyncTarget } from '../../src/config/types.js';
import { readJournalLines, type JournalLine } from '../../src/watch/journal.js';
import { watchStop } from '../../src/verbs/watch.js';
import { autoStop } from '../../src/verbs/auto.js';
import { isProcessAlive } from '../../src/daemon/process.js';

const built = fileURLToPath(new URL('../../dist/watch/watcher-process.js', import.meta.url));

/** assertBuilt fails early with the command to run when dist/ is missing (the watcher and daemon run from dist/). */
export function assertBuilt(): void {
  if (!existsSync(built)) throw new Error(`${built} is missing: run \`npx tsc -p tsconfig.json\` before these tests`);
}

const folders: string[] = [];
const targets: SyncTarget[] = [];
const pids = new Set<number>();

/** tempFolder makes an empty folder (real path, no symlinks) removed after the test. */
export function tempFolder(prefix = 'swm-watch-'): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  folders.push(dir);
  return dir;
}

/** makeTarget builds a SyncTarget for a workspace with a file: bucket; its watcher and daemon are stopped after the test. */
export function makeTarget(workspace: string, excludes: string[] = [], interval = 60): SyncTarget {
  const bucket = tempFolder('swm-bucket-');
  const t: SyncTarget = {
    id: 'demo',
    workspace,
    bucket: { kind: 'file', provider: 'file', path: bucket, text: `file:${bucket}` },
    dest: 'demo/',
    excludes,
    interval,
  };
  targets.push(t);
  return t;
}

/** track registers a pid to SIGKILL after the test, whatever happened. */
export function track(pid: number): number {
  pids.add(pid);
  return pid;
}

/** cleanup stops every daemon and watcher the test started, kills tracked pids, and removes temporary folders. */
export async function cleanup(): Promise<void> {
  for (const t of targets.splice(0)) {
    await autoStop(t).catch(() => {});
    await watchStop(t).catch(() => {});
  }
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  pids.clear();
  for (const f of folders.splice(0)) {
    // also the processes a watcher spawned (its snapshot child): anything whose command line names the folder
    for (let i = 0; i < 50; i++) {
      const left = processesUnder(f);
      if (left.length === 0) break;
      for (const p of left) {
        try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    rmSync(f, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

/** waitUntil polls check until it returns truthy (returns that value) or throws after timeoutMs. */
export async function waitUntil<T>(check: () => T | undefined | false, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** waitForExit waits until pid is gone. */
export function waitForExit(pid: number, timeoutMs = 5000): Promise<true> {
  return waitUntil(() => !isProcessAlive(pid), timeoutMs, `pid ${pid} to exit`);
}

/** journalLines reads every line of a workspace's journal. */
export function journalLines(workspace: string): JournalLine[] {
  const lines: JournalLine[] = [];
  readJournalLines(workspace, undefined, (l) => lines.push(l));
  return lines;
}

/** sleep waits ms. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
