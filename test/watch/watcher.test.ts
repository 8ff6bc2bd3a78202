// The watcher process end to end: start/stop, what it journals (excludes, new folders, tar, moves), root deletion, restart
// reconciliation, the coverage check behind `push --delete`, and stale pid files. Needs dist/ (npx tsc -p tsconfig.json).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { watchStart, watchStop, watcherState } from '../../src/verbs/watch.js';
import { checkWatcherCoverage, readJournalDeltas } from '../../src/watch/journal.js';
import { inspectWatcher, type WatcherRecord } from '../../src/watch/watcher-record.js';
import { buildExcludeRules } from '../../src/engine/exclude.js';
import { swmPaths } from '../../src/state/paths.js';
import { isProcessAlive } from '../../src/daemon/process.js';
import { assertBuilt, cleanup, journalLines, makeTarget, sleep, tempFolder, track, waitForExit, waitUntil } from './fixtures.js';

beforeAll(assertBuilt);
afterEach(cleanup);

const sh = (cwd: string, script: string) => execFileSync('sh', ['-c', script], { cwd, stdio: 'pipe' });
const record = (ws: string) => JSON.parse(readFileSync(swmPaths(ws).watcher, 'utf8')) as WatcherRecord;
const fingerprint = (ws: string, excludes: string[] = []) => buildExcludeRules(ws, excludes).fingerprint;

/** changedSoon waits until the journal's deltas list every path of `paths` as changed. */
async function changedSoon(ws: string, paths: string[]): Promise<void> {
  await waitUntil(() => {
    const { changed } = readJournalDeltas(ws, undefined);
    return paths.every((p) => changed.includes(p));
  }, 5000, `${paths.join(', ')} to be journaled`);
}

describe('swm sync watch', () => {
  it('starts one detached watcher, says so on a second start, stops it and leaves no pid file', async () => {
    const ws = tempFolder();
    const target = makeTarget(ws, ['*.log']);
    const first = await watchStart(target);
    track(first.pid);
    expect(first.alreadyRunning).toBe(false);
    expect(isProcessAlive(first.pid)).toBe(true);
    const rec = record(ws);
    expect(rec).toMatchObject({ pid: first.pid, status: 'watching', fingerprint: fingerprint(ws, ['*.log']), excludes: ['*.log'] });
    expect(rec.startedAt).toBeLessThanOrEqual(Date.now());
    expect(statSync(swmPaths(ws).dir).mode & 0o777).toBe(0o700);
    // its own session: detached from ours
    const sid = readFileSync(`/proc/${first.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[3];
    expect(Number(sid)).toBe(first.pid);

    const second = await watchStart(target);
    expect(second).toEqual({ alreadyRunning: true, pid: first.pid });
    expect(watcherState(ws, fingerprint(ws, ['*.log']))).toMatchObject({ running: true, pid: first.pid, fingerprint: 'current' });
    expect(watcherState(ws, 'something-else').fingerprint).toBe('drifted');

    expect(await watchStop(target)).toEqual({ wasRunning: true });
    await waitForExit(first.pid);
    expect(existsSync(swmPaths(ws).watcher)).toBe(false);
    expect(watcherState(ws, fingerprint(ws))).toEqual({ running: false });
    expect(await watchStop(target)).toEqual({ wasRunning: false });
    expect(readFileSync(swmPaths(ws).watcherLog, 'utf8')).toMatch(/stopped: SIGTERM/);
  });

  it('refuses a workspace that does not exist (exit 2)', async () => {
    const target = makeTarget(join(tempFolder(), 'missing'));
    await expect(watchStart(target)).rejects.toMatchObject({ exitCode: 2 });
  });

  it('journals creates, updates and deletes with excludes applied, and never .swm/', async () => {
    const ws = tempFolder();
    writeFileSync(join(ws, 'old.txt'), 'old');
    writeFileSync(join(ws, 'keep.txt'), 'keep');
    const target = makeTarget(ws, ['*.tmp', 'cache/']);
    track((await watchStart(target)).pid);
    sh(ws, 'echo a > a.txt; echo b > b.tmp; mkdir cache; echo c > cache/c.txt; echo more >> keep.txt; rm old.txt');
    await changedSoon(ws, ['a.txt', 'keep.txt']);
    await waitUntil(() => readJournalDeltas(ws, undefined).deleted.includes('old.txt'), 5000, 'old.txt deletion');
    const { changed, deleted } = readJournalDeltas(ws, undefined);
    expect(changed).toEqual(['a.txt', 'keep.txt']);
    expect(deleted).toEqual(['old.txt']);
    const paths = journalLines(ws).flatMap((l) => ('p' in l ? [l.p] : []));
    expect(paths.some((p) => p.endsWith('.tmp') || p.startsWith('cache') || p.startsWith('.swm'))).toBe(false);
  });

  it('records everything inside a folder created whole (mkdir -p), and later changes inside it', async () => {
    const ws = tempFolder();
    const target = makeTarget(ws);
    track((await watchStart(target)).pid);
    sh(ws, 'mkdir -p a/b/c && touch a/b/c/x');
    await changedSoon(ws, ['a', 'a/b', 'a/b/c', 'a/b/c/x']);
    await sleep(100);
    sh(ws, 'touch a/b/c/y && mkdir -p a/b/c/d/e && echo z > a/b/c/d/e/z');
    await changedSoon(ws, ['a/b/c/y', 'a/b/c/d/e/z']);
    sh(ws, 'rm -rf a/b');
    await waitUntil(() => readJournalDeltas(ws, undefined).deleted.includes('a/b/c/x'), 5000, 'a/b deletion');
    expect(readJournalDeltas(ws, undefined).changed).toEqual(['a']);
  });

  it('records the files of a tar extracted into the workspace', async () => {
    const ws = tempFolder();
    const src = tempFolder('swm-tar-src-');
    mkdirSync(join(src, 'data/shards/deep'), { recursive: true });
    for (let i = 0; i < 20; i++) writeFileSync(join(src, `data/shards/s${i}.bin`), `shard ${i}`);
    writeFileSync(join(src, 'data/shards/deep/x'), 'x');
    const archive = join(tempFolder('swm-tar-'), 'data.tar');
    sh(src, `tar cf ${archive} data`);
    const target = makeTarget(ws);
    track((await watchStart(target)).pid);
    sh(ws, `tar xf ${archive}`);
    const expected = ['data/shards/deep/x', ...Array.from({ length: 20 }, (_, i) => `data/shards/s${i}.bin`)];
    await changedSoon(ws, expected);
    sh(ws, 'echo more >> data/shards/deep/x && echo new > data/shards/deep/y');
    await changedSoon(ws, ['data/shards/deep/y']);
    const updates = journalLines(ws).filter((l) => 'p' in l && l.p === 'data/shards/deep/x');
    expect(updates.length).toBeGreaterThan(1); // the rescan's create, then the live update
  });

  it('records a folder moved in from outside, and changes made inside it afterwards', async () => {
    const ws = tempFolder();
    const outside = tempFolder('swm-outside-');
    mkdirSync(join(outside, 'm/n'), { recursive: true });
    writeFileSync(join(outside, 'm/n/o'), 'o');
    const target = makeTarget(ws);
    track((await watchStart(target)).pid);
    renameSync(join(outside, 'm'), join(ws, 'm'));
    await changedSoon(ws, ['m', 'm/n', 'm/n/o']);
    await sleep(100);
    writeFileSync(join(ws, 'm/n/p'), 'p');
    await changedSoon(ws, ['m/n/p']);
    // a folder renamed inside the workspace: the new names are recorded, the old ones deleted
    renameSync(join(ws, 'm'), join(ws, 'm2'));
    await changedSoon(ws, ['m2/n/o', 'm2/n/p']);
    await sleep(100);
    writeFileSync(join(ws, 'm2/n/q'), 'q');
    await changedSoon(ws, ['m2/n/q']);
    const d = readJournalDeltas(ws, undefined);
    expect(d.deleted).toEqual(['m', 'm/n', 'm/n/o', 'm/n/p']);
    expect(d.changed.filter((p) => p.startsWith('m/'))).toEqual([]);
  });

  it('stops with a gap and records no deletions when the workspace root is moved away', async () => {
    const parent = tempFolder();
    const ws = join(parent, 'ws');
    mkdirSync(join(ws, 'sub'), { recursive: true });
    for (const f of ['a', 'b', 'sub/c']) writeFileSync(join(ws, f), f);
    const target = makeTarget(ws);
    const { pid } = await watchStart(target);
    track(pid);
    renameSync(ws, join(parent, 'moved'));
    await waitForExit(pid);
    const moved = join(parent, 'moved');
    const lines = journalLines(moved);
    expect(lines.filter((l) => l.e === 'd')).toEqual([]);
    expect(lines.some((l) => l.e === 'gap' && /root/.test(l.reason))).toBe(true);
    expect(existsSync(swmPaths(moved).watcher)).toBe(false); // no stale pid file where it went
    expect(readFileSync(swmPaths(moved).watcherLog, 'utf8')).toMatch(/gap: the workspace root/);
  });

  it('stops when the workspace root is deleted, and nothing then claims coverage', async () => {
    const parent = tempFolder();
    const ws = join(parent, 'ws');
    mkdirSync(join(ws, 'd'), { recursive: true });
    writeFileSync(join(ws, 'd/f'), 'f');
    const target = makeTarget(ws);
    const { pid } = await watchStart(target);
    track(pid);
    rmSync(ws, { recursive: true });
    await waitForExit(pid);
    mkdirSync(ws);
    expect(checkWatcherCoverage(ws, 0, fingerprint(ws))).toMatchObject({ ok: false, reason: 'no watcher is running for this workspace' });
  });
});

describe('checkWatcherCoverage', () => {
  it('fails without a watcher, naming the commands to run', () => {
    const ws = tempFolder();
    const r = checkWatcherCoverage(ws, Date.now(), fingerprint(ws), 'runpod:abc');
    expect(r).toMatchObject({ ok: false, reason: 'no watcher is running for this workspace' });
    if (!r.ok) expect(r.hint).toMatch(/swm sync watch runpod:abc.*swm sync push runpod:abc/);
  });

  it('holds only for syncs after the watcher started, and fails once the excludes drift', async () => {
    const ws = tempFolder();
    const target = makeTarget(ws);
    const before = Date.now() - 1000;
    track((await watchStart(target)).pid);
    const fp = fingerprint(ws);
    const early = checkWatcherCoverage(ws, before, fp);
    expect(early.ok).toBe(false);
    if (!early.ok) expect(early.reason).toMatch(/^the watcher started at .* after the last sync at /);
    expect(checkWatcherCoverage(ws, Date.now(), fp)).toEqual({ ok: true });
    writeFileSync(join(ws, '.swmignore'), '*.ckpt\n'); // the user's excludes change
    const drifted = checkWatcherCoverage(ws, Date.now(), fingerprint(ws));
    expect(drifted).toMatchObject({ ok: false, reason: "the watcher's excludes changed since it started (different defaults, -x/config excludes or .swmignore)" });
    expect(watcherState(ws, fingerprint(ws)).fingerprint).toBe('drifted');
  });

  it('keeps coverage across a stop and restart by replaying the gap from the snapshot, deletions included', async () => {
    const ws = tempFolder();
    for (const f of ['a', 'b', 'c']) writeFileSync(join(ws, f), f);
    mkdirSync(join(ws, 'dir'));
    writeFileSync(join(ws, 'dir/d'), 'd');
    const target = makeTarget(ws);
    track((await watchStart(target)).pid);
    await waitUntil(() => existsSync(swmPaths(ws).watcherSnapshot), 5000, 'the first snapshot');
    for (const f of [swmPaths(ws).watcherSnapshot, swmPaths(ws).watcher, swmPaths(ws).watcherLog]) expect(statSync(f).mode & 0o777).toBe(0o600);
    const syncedAt = Date.now();
    await watchStop(target);
    // changes while no watcher runs
    sh(ws, 'rm a && echo changed-content-b > b && echo new > n && rm -rf dir');
    const again = await watchStart(target);
    track(again.pid);
    expect(checkWatcherCoverage(ws, syncedAt, fingerprint(ws))).toEqual({ ok: true });
    const d = readJournalDeltas(ws, undefined);
    expect(d.deleted).toEqual(['a', 'dir', 'dir/d']);
    expect(d.changed).toEqual(expect.arrayContaining(['b', 'n']));
    expect(record(ws).gaps).toEqual([expect.objectContaining({ reason: 'watcher restarted', reconciled: 'snapshot' })]);
  });

  it('fails after a gap that could not be reconciled (watcher killed, snapshot lost), and reports the dead pid as not running', async () => {
    const ws = tempFolder();
    const target = makeTarget(ws);
    const first = await watchStart(target);
    track(first.pid);
    await waitUntil(() => existsSync(swmPaths(ws).watcherSnapshot), 5000, 'the first snapshot');
    const syncedAt = Date.now();
    process.kill(first.pid, 'SIGKILL');
    await waitForExit(first.pid);
    expect(existsSync(swmPaths(ws).watcher)).toBe(true); // left behind by the kill…
    expect(watcherState(ws, fingerprint(ws))).toEqual({ running: false }); // …but detected as stale
    expect(checkWatcherCoverage(ws, syncedAt, fingerprint(ws))).toMatchObject({ ok: false, reason: expect.stringMatching(/^no watcher is running .*has exited/) });
    unlinkSync(swmPaths(ws).watcherSnapshot);
    const second = await watchStart(target);
    track(second.pid);
    expect(second.alreadyRunning).toBe(false);
    const r = checkWatcherCoverage(ws, syncedAt, fingerprint(ws));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/gap at .*died without stopping.*after the last sync/);
    expect(checkWatcherCoverage(ws, Date.now(), fingerprint(ws))).toEqual({ ok: true });
  });

  it('after a kill -9 with the snapshot intact, reconciles the gap and keeps coverage', async () => {
    const ws = tempFolder();
    writeFileSync(join(ws, 'victim'), 'v');
    const target = makeTarget(ws);
    const first = await watchStart(target);
    track(first.pid);
    await waitUntil(() => existsSync(swmPaths(ws).watcherSnapshot), 5000, 'the first snapshot');
    const syncedAt = Date.now();
    process.kill(first.pid, 'SIGKILL');
    await waitForExit(first.pid);
    unlinkSync(join(ws, 'victim'));
    track((await watchStart(target)).pid);
    expect(checkWatcherCoverage(ws, syncedAt, fingerprint(ws))).toEqual({ ok: true });
    expect(readJournalDeltas(ws, undefined).deleted).toEqual(['victim']);
  });
});

describe('pid files', () => {
  it('treats a record of a dead pid, or of a live process that is not a watcher, as not running, and replaces it on start', async () => {
    const ws = tempFolder();
    const target = makeTarget(ws);
    const dead = spawn(process.execPath, ['-e', '0']);
    const deadPid = dead.pid!;
    await new Promise((r) => dead.on('exit', r));
    mkdirSync(swmPaths(ws).dir, { recursive: true });
    const fake = (pid: number) => writeFileSync(swmPaths(ws).watcher, JSON.stringify({
      pid, startedAt: Date.now() - 60_000, workspace: ws, status: 'watching', fingerprint: fingerprint(ws), excludes: [], patterns: [], coveredSince: 0, gaps: [],
    }));
    for (const pid of [deadPid, process.pid]) {
      fake(pid);
      expect(inspectWatcher(ws).kind).toBe('stale');
      expect(watcherState(ws, fingerprint(ws))).toEqual({ running: false });
      expect(checkWatcherCoverage(ws, Date.now(), fingerprint(ws)).ok).toBe(false);
    }
    expect(await watchStop(target)).toEqual({ wasRunning: false });
    expect(existsSync(swmPaths(ws).watcher)).toBe(false); // the stale file was cleaned
    fake(process.pid);
    const started = await watchStart(target);
    track(started.pid);
    expect(started.alreadyRunning).toBe(false);
    expect(record(ws).pid).toBe(started.pid);
    appendFileSync(join(ws, 'x'), 'x');
    await changedSoon(ws, ['x']);
  });

  it('keeps recording inside new folders past the per-folder subscription limit, by resubscribing with a reconciled gap', async () => {
    const ws = tempFolder();
    const target = makeTarget(ws);
    track((await watchStart(target)).pid);
    await waitUntil(() => existsSync(swmPaths(ws).watcherSnapshot), 5000, 'the first snapshot');
    const syncedAt = Date.now();
    for (let i = 0; i < 72; i++) {
      mkdirSync(join(ws, `ckpt-${i}/shard`), { recursive: true });
      await sleep(10);
    }
    await waitUntil(() => record(ws).gaps.some((g) => g.reconciled === 'snapshot'), 10_000, 'the resubscription');
    for (let i = 0; i < 72; i++) writeFileSync(join(ws, `ckpt-${i}/shard/w`), 'w');
    await changedSoon(ws, Array.from({ length: 72 }, (_, i) => `ckpt-${i}/shard/w`));
    expect(checkWatcherCoverage(ws, syncedAt, fingerprint(ws))).toEqual({ ok: true });
  });
});
