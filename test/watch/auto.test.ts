// The auto-sync daemon: refusal without a stamp, --force, restart on new options, stop, status, stale pid files, and cycles
// against a file: bucket (journal deltas pushed, recorded deletions mirrored, watcher restarted on exclude drift).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { autoStart, autoStatus, autoStop, daemonState, type DaemonRecord } from '../../src/verbs/auto.js';
import { watcherState } from '../../src/verbs/watch.js';
import { push } from '../../src/verbs/push.js';
import { createProgress } from '../../src/engine/progress.js';
import { buildExcludeRules } from '../../src/engine/exclude.js';
import { openStorage } from '../../src/storage/open.js';
import { readStamp } from '../../src/state/stamp.js';
import { acquireLock } from '../../src/state/lock.js';
import { swmPaths } from '../../src/state/paths.js';
import { isProcessAlive } from '../../src/daemon/process.js';
import type { SyncTarget } from '../../src/config/types.js';
import { assertBuilt, cleanup, makeTarget, sleep, tempFolder, track, waitForExit, waitUntil } from './fixtures.js';

beforeAll(assertBuilt);
afterEach(cleanup);

async function remoteKeys(target: SyncTarget): Promise<string[]> {
  const storage = await openStorage(target.bucket);
  try {
    const keys: string[] = [];
    for await (const o of storage.list(target.dest)) keys.push(o.key.slice(target.dest.length));
    return keys;
  } finally {
    await storage.close();
  }
}

const pushOnce = (target: SyncTarget) =>
  push({ target, progress: createProgress(), force: false, dryRun: false }, { raw: false, skipPull: false, delete: false, tar: false });

describe('swm sync auto', () => {
  it('refuses to start without a previous push or pull (exit 4), starting nothing', async () => {
    const ws = tempFolder();
    const target = makeTarget(ws);
    await expect(autoStart(target, { interval: 60, force: false })).rejects.toMatchObject({
      exitCode: 4,
      message: expect.stringMatching(/needs a previous successful push or pull/),
      hint: expect.stringMatching(/swm sync push demo.*--force/),
    });
    expect(existsSync(swmPaths(ws).daemon)).toBe(false);
    expect(daemonState(ws)).toEqual({ running: false });
    expect(watcherState(ws, buildExcludeRules(ws, []).fingerprint).running).toBe(false);
  });

  it('starts with --force, survives a hangup, restarts only on new options, stops cleanly, and reports each state', async () => {
    const ws = tempFolder();
    const target = makeTarget(ws);
    const first = await autoStart(target, { interval: 60, force: true });
    track(first.pid);
    expect(first).toMatchObject({ restarted: false, alreadyRunning: false });
    const sid = readFileSync(`/proc/${first.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[3];
    expect(Number(sid)).toBe(first.pid); // own session: the terminal closing does not reach it
    process.kill(first.pid, 'SIGHUP');

    // the first cycle starts the watcher
    const fp = buildExcludeRules(ws, []).fingerprint;
    await waitUntil(() => watcherState(ws, fp).running, 5000, 'the watcher to be started by the daemon');
    track(watcherState(ws, fp).pid!);
    await waitUntil(() => daemonState(ws).lastCycle, 5000, 'the first cycle');
    expect(isProcessAlive(first.pid)).toBe(true);

    const status = await autoStatus(target);
    expect(status).toMatchObject({ running: true, pid: first.pid, interval: 60, watcher: { running: true, fingerprint: 'current' } });
    expect(status.since).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(status.lastCycle).toMatchObject({ result: expect.stringMatching(/^(ok|error)$/) });
    expect(status.logTail.some((l) => /auto-sync of demo started/.test(l))).toBe(true);
    expect(status.logTail.some((l) => /cycle (ok|error)/.test(l))).toBe(true);

    expect(await autoStart(target, { interval: 60, force: true })).toEqual({ restarted: false, alreadyRunning: true, pid: first.pid });
    const second = await autoStart(target, { interval: 30, force: true });
    track(second.pid);
    expect(second).toMatchObject({ restarted: true, alreadyRunning: false });
    expect(second.pid).not.toBe(first.pid);
    expect(isProcessAlive(first.pid)).toBe(false);
    expect(daemonState(ws)).toMatchObject({ running: true, pid: second.pid, interval: 30 });

    expect(await autoStop(target)).toEqual({ wasRunning: true });
    await waitForExit(second.pid);
    expect(existsSync(swmPaths(ws).daemon)).toBe(false);
    expect(daemonState(ws)).toEqual({ running: false });
    const after = await autoStatus(target);
    expect(after.running).toBe(false);
    expect(after.logTail.at(-1)).toMatch(/auto-sync of demo stopped/);
    expect(await autoStop(target)).toEqual({ wasRunning: false });
  });

  it('reports a daemon.json whose pid is dead as not running, and replaces it on start', async () => {
    const ws = tempFolder();
    const target = makeTarget(ws);
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => dead.on('exit', r));
    mkdirSync(swmPaths(ws).dir, { recursive: true });
    writeFileSync(swmPaths(ws).daemon, JSON.stringify({
      pid: dead.pid, startedAt: Date.now(), workspace: ws, id: 'demo', options: { interval: 60, bucket: target.bucket.text, dest: 'demo/', excludes: [] }, totals: { cycles: 0, files: 0, bytes: 0, errors: 0 },
    }));
    expect(daemonState(ws)).toEqual({ running: false });
    expect((await autoStatus(target)).running).toBe(false);
    const started = await autoStart(target, { interval: 60, force: true });
    track(started.pid);
    expect(started).toMatchObject({ restarted: false, alreadyRunning: false });
    expect(daemonState(ws)).toMatchObject({ running: true, pid: started.pid });
  });

  it('pushes journaled changes and mirrors only recorded deletions every cycle, and restarts a drifted watcher', async () => {
    const ws = tempFolder();
    for (const f of ['keep', 'edit', 'del', 'offline-del']) writeFileSync(join(ws, f), f);
    const target = makeTarget(ws, [], 1);
    await pushOnce(target);
    expect(await remoteKeys(target)).toEqual(['del', 'edit', 'keep', 'offline-del']);
    rmSync(join(ws, 'offline-del')); // deleted while nothing watched: must never be mirrored

    const daemon = await autoStart(target, { interval: 1, force: false });
    track(daemon.pid);
    const fp = buildExcludeRules(ws, []).fingerprint;
    await waitUntil(() => daemonState(ws).lastCycle && watcherState(ws, fp).running, 5000, 'the first cycle');
    const watcherPid = watcherState(ws, fp).pid!;
    track(watcherPid);

    writeFileSync(join(ws, 'edit'), 'edited');
    writeFileSync(join(ws, 'new'), 'new');
    mkdirSync(join(ws, 'dir/sub'), { recursive: true });
    writeFileSync(join(ws, 'dir/sub/f'), 'f');
    rmSync(join(ws, 'del'));
    const expected = ['dir/sub/f', 'edit', 'keep', 'new', 'offline-del'];
    const deadline = Date.now() + 10_000;
    let keys = await remoteKeys(target);
    while (JSON.stringify(keys.filter((k) => !k.endsWith('/'))) !== JSON.stringify(expected) && Date.now() < deadline) {
      await sleep(200);
      keys = await remoteKeys(target);
    }
    expect(keys.filter((k) => !k.endsWith('/'))).toEqual(expected);
    // daemon.json is updated right after the push that the remote already shows
    const totals = () => (JSON.parse(readFileSync(swmPaths(ws).daemon, 'utf8')) as DaemonRecord).totals;
    await waitUntil(() => totals().files >= 4, 5000, 'the cycle to be recorded');
    expect(readStamp(ws)?.journalCursor).toBeDefined();
    expect(daemonState(ws).lastCycle?.result).toBe('ok');
    const status = await autoStatus(target);
    expect(status.totals).toMatchObject({ errors: 0, files: totals().files });
    expect(status.totals!.bytes).toBeGreaterThan(0);

    // the user's excludes change: the next cycle restarts the watcher with them, no user action
    writeFileSync(join(ws, '.swmignore'), '*.ckpt\n');
    const newFp = buildExcludeRules(ws, []).fingerprint;
    await waitUntil(() => watcherState(ws, newFp).fingerprint === 'current', 5000, 'the watcher to be restarted');
    track(watcherState(ws, newFp).pid!);
    expect(watcherState(ws, newFp).pid).not.toBe(watcherPid);
    expect(readFileSync(swmPaths(ws).daemonLog, 'utf8')).toMatch(/fingerprint drifted .*restarting it/);
  });

  it('shares the transfer lock with manual pushes: a busy cycle is skipped and the next one catches up', async () => {
    const ws = tempFolder();
    writeFileSync(join(ws, 'a'), 'a');
    const target = makeTarget(ws, [], 1);
    await pushOnce(target);
    const lock = await acquireLock(ws, 'push', false); // a manual push in progress
    try {
      const daemon = await autoStart(target, { interval: 1, force: false });
      track(daemon.pid);
      writeFileSync(join(ws, 'b'), 'b');
      const skipped = await waitUntil(() => daemonState(ws).lastCycle, 5000, 'a cycle');
      expect(skipped).toMatchObject({ result: 'skipped', files: 0, error: expect.stringMatching(/another swm push .* is running/) });
    } finally {
      lock.release();
    }
    await waitUntil(() => daemonState(ws).lastCycle?.result === 'ok', 5000, 'a successful cycle');
    const fp = buildExcludeRules(ws, []).fingerprint;
    track(watcherState(ws, fp).pid!);
    expect(await remoteKeys(target)).toEqual(['a', 'b']);
  });
});
