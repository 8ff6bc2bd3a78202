// `swm sync auto` end to end with the built CLI, on a `file:` bucket and on the S3 test server: refusal without a stamp and
// --force, a new file reaching the bucket within seconds at -i 1, the watcher restarted when excludes change, a kill -9 in
// the middle of a cycle (stale lock reclaimed, nothing lost), a file appended to continuously, and --stop leaving no process.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { swmPaths } from '../../src/state/paths.js';
import { daemonState } from '../../src/verbs/auto.js';
import { liveWatcher } from '../../src/watch/watcher-record.js';
import { isProcessAlive } from '../../src/daemon/process.js';
import {
  BACKENDS, cleanupSandboxes, ensureBuilt, eventually, hash64, keysOf, lastJson, openSandbox, processesUnder, sleep, writeFiles,
  type Sandbox,
} from './cli-fixtures.js';

beforeAll(ensureBuilt);
afterEach(cleanupSandboxes);

async function pushOk(sb: Sandbox): Promise<void> {
  const r = await sb.swm(['push', ...sb.target]);
  expect(r.code, r.stderr).toBe(0);
}

/** startAuto runs `swm sync auto -i 1` (plus extra flags) and returns the daemon's pid. */
async function startAuto(sb: Sandbox, ...extra: string[]): Promise<number> {
  const r = await sb.swm(['auto', ...sb.target, '-i', '1', '--json', ...extra]);
  expect(r.code, r.stderr).toBe(0);
  const started = lastJson(r, 'auto');
  expect(started).toMatchObject({ action: 'start', alreadyRunning: false, interval: 1 });
  return started.pid as number;
}

/** firstCycle waits until the daemon finished a cycle and runs a watcher; returns the watcher's pid. */
async function firstCycle(sb: Sandbox): Promise<number> {
  await eventually(() => daemonState(sb.ws).lastCycle?.result === 'ok', 'a first successful cycle', 15_000);
  return (await eventually(() => liveWatcher(sb.ws)?.pid, 'the watcher started by the daemon')) as number;
}

const lockHolderPid = (ws: string): number | undefined => {
  try {
    return (JSON.parse(readFileSync(swmPaths(ws).lock, 'utf8')) as { pid: number }).pid;
  } catch {
    return undefined;
  }
};

describe.each(BACKENDS)('auto on a %s bucket', (kind) => {
  it('mirrors recorded deletions, and a folder they leave empty gets its empty-folder marker', async () => {
    const sb = openSandbox(kind);
    writeFiles(sb.ws, { 'keep.txt': 'keep', 'gone.txt': 'gone', 'box/only.txt': 'only', 'full/a.txt': 'a', 'full/b.txt': 'b' });
    await pushOk(sb);
    await startAuto(sb);
    await firstCycle(sb);
    rmSync(join(sb.ws, 'gone.txt'));
    rmSync(join(sb.ws, 'box/only.txt'));
    rmSync(join(sb.ws, 'full/a.txt'));
    await eventually(async () => {
      const keys = keysOf(await sb.bucket.list());
      return !keys.includes('gone.txt') && !keys.includes('box/only.txt') && !keys.includes('full/a.txt') && keys.includes('box/') ? keys : undefined;
    }, 'the deletions mirrored and the box/ marker uploaded', 15_000);
    const keys = keysOf(await sb.bucket.list());
    expect(keys).toEqual(['box/', 'full/b.txt', 'keep.txt']);
  });

  it('is refused without a stamp, starts with --force, gets a new file to the bucket within seconds, and --stop leaves no process', async () => {
    const sb = openSandbox(kind);
    writeFiles(sb.ws, { 'first.txt': 'first' });
    let r = await sb.swm(['auto', ...sb.target, '-i', '1']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^swm: auto-sync of demo needs a previous successful push or pull of this workspace to .*; run `swm sync push demo` first, or pass --force to start anyway\n$/);
    expect(processesUnder(sb.root)).toEqual([]);
    expect(existsSync(swmPaths(sb.ws).daemon)).toBe(false);

    const pid = await startAuto(sb, '--force');
    await eventually(async () => keysOf(await sb.bucket.list()).includes('first.txt'), 'the first cycle to push first.txt', 15_000);
    const watcherPid = await firstCycle(sb);

    writeFileSync(join(sb.ws, 'new.txt'), 'new');
    await eventually(async () => (await sb.bucket.get('new.txt'))?.body.toString() === 'new', 'new.txt in the bucket', 6000);

    r = await sb.swm(['status', ...sb.target, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json[0]).toMatchObject({ daemon: { running: true, pid, interval: 1 }, watcher: { running: true, pid: watcherPid, fingerprint: 'current' } });

    r = await sb.swm(['auto', ...sb.target, '--stop']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('auto-sync of demo stopped\n');
    expect(isProcessAlive(pid)).toBe(false);
    expect(processesUnder(sb.root).map((p) => p.pid)).toEqual([watcherPid]); // the watcher stays, for --delete
    r = await sb.swm(['watch', ...sb.target, '--stop']);
    expect(r.code, r.stderr).toBe(0);
    expect(processesUnder(sb.root)).toEqual([]);
    for (const f of [swmPaths(sb.ws).daemon, swmPaths(sb.ws).watcher, swmPaths(sb.ws).lock]) expect(existsSync(f)).toBe(false);
    expect((await sb.swm(['auto', ...sb.target, '--stop'])).stdout).toBe('no auto-sync daemon was running for demo: nothing to stop\n');
  });

  it('restarts the watcher on the next cycle when the excludes change, and applies them', async () => {
    const sb = openSandbox(kind);
    writeFiles(sb.ws, { 'a.txt': 'a' });
    await pushOk(sb);
    await startAuto(sb);
    const before = await firstCycle(sb);

    writeFiles(sb.ws, { '.swmignore': '*.ckpt\n', 'model.ckpt': 'weights', 'b.txt': 'b' });
    await eventually(async () => keysOf(await sb.bucket.list()).includes('b.txt'), 'b.txt in the bucket', 8000);
    const after = await eventually(() => {
      const w = liveWatcher(sb.ws);
      return w && w.pid !== before && w.excludes.length === 0 && w.patterns.includes('*.ckpt') ? w : undefined;
    }, 'a watcher applying *.ckpt');
    expect(isProcessAlive(before)).toBe(false);
    const r = await sb.swm(['status', ...sb.target, '--json']);
    expect(r.json[0]).toMatchObject({ watcher: { running: true, pid: after.pid, fingerprint: 'current' } });
    expect(readFileSync(swmPaths(sb.ws).daemonLog, 'utf8')).toMatch(/exclude fingerprint drifted .*: restarting it/);
    await sleep(1500); // another cycle
    expect(keysOf(await sb.bucket.list())).not.toContain('model.ckpt');
  });

  it('survives a kill -9 in the middle of a cycle: the next daemon reclaims the stale lock and nothing is lost', async () => {
    const sb = openSandbox(kind);
    writeFiles(sb.ws, { 'base.txt': 'base' });
    await pushOk(sb);
    const first = await startAuto(sb);
    const watcherPid = await firstCycle(sb);

    const n = kind === 's3' ? 400 : 800; // enough for a cycle of a second or more on each backend
    const batch: Record<string, string> = {};
    for (let i = 0; i < n; i++) batch[`batch/${String(i).padStart(4, '0')}.bin`] = `${i} `.repeat(200 + (i % 50));
    const outside = sb.scratch('outside');
    writeFiles(outside, batch);
    renameSync(join(outside, 'batch'), join(sb.ws, 'batch')); // arrives whole, in one cycle
    // mid-cycle: the daemon holds the transfer lock and some, not all, of the batch has landed
    await eventually(async () => lockHolderPid(sb.ws) === first && (await sb.bucket.list()).length > 1, 'the cycle to be under way', 20_000, 20);
    process.kill(first, 'SIGKILL');
    await eventually(() => !isProcessAlive(first), 'the daemon to die');
    const landed = (await sb.bucket.list()).length - 1;
    expect(landed).toBeLessThan(n);
    expect(lockHolderPid(sb.ws)).toBe(first); // left behind by the kill
    expect(daemonState(sb.ws).running).toBe(false);

    const second = await startAuto(sb); // the stamp of the first push still counts: no --force needed
    expect(second).not.toBe(first);
    await eventually(async () => (await sb.bucket.list()).length === n + 1, `all ${n} files in the bucket`, 40_000, 250).catch((e: Error) => {
      throw new Error(`${e.message}; daemon log:\n${readFileSync(swmPaths(sb.ws).daemonLog, 'utf8')}`);
    });
    await eventually(() => daemonState(sb.ws).lastCycle?.result === 'ok', 'a successful cycle of the new daemon');
    expect([undefined, second]).toContain(lockHolderPid(sb.ws)); // the dead pid's lock was taken over
    expect(liveWatcher(sb.ws)?.pid).toBe(watcherPid); // the watcher kept recording meanwhile

    const objects = new Map((await sb.bucket.list()).map((o) => [o.key, o]));
    for (const [rel, content] of Object.entries(batch)) expect(objects.get(rel)?.size, rel).toBe(Buffer.byteLength(content));
    for (const i of [0, 1, Math.floor(n / 2), n - 2, n - 1]) {
      const rel = `batch/${String(i).padStart(4, '0')}.bin`;
      expect((await sb.bucket.get(rel))?.body.toString()).toBe(batch[rel]);
    }
    const daemonLog = readFileSync(swmPaths(sb.ws).daemonLog, 'utf8');
    expect(daemonLog).not.toMatch(/conflict|Warning/);
    // the new daemon sent the rest: what had landed before the kill was recognised by its hash, not sent again
    const resent = Number(/cycle ok: (\d+) files, \d+ bytes in [\d.]+s \(journal\)/.exec(daemonLog)?.[1]);
    expect(resent).toBeGreaterThan(0);
    expect(resent).toBeLessThanOrEqual(n - landed);
  });

  it('recognises an object left without its metadata (a put cut short by a kill) by its bytes: no endless conflict', async () => {
    const sb = openSandbox(kind);
    writeFiles(sb.ws, { 'base.txt': 'base', 'same.bin': 'same bytes', 'other.bin': 'local bytes' });
    await sb.bucket.plant('same.bin', 'same bytes');
    await sb.bucket.plant('other.bin', 'remote bytes');
    let r = await sb.swm(['push', ...sb.target, '--json']);
    expect(r.code).toBe(3); // other.bin really differs: still a conflict, nothing uploaded
    expect(lastJson(r, 'summary')).toMatchObject({ conflicts: ['other.bin'], uploaded: 0 });
    writeFiles(sb.ws, { 'other.bin': 'remote bytes' });
    r = await sb.swm(['push', ...sb.target, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r, 'summary')).toMatchObject({ conflicts: [], uploaded: 1 }); // base.txt; the two equal objects were recognised
    expect(keysOf(await sb.bucket.list())).toEqual(['base.txt', 'other.bin', 'same.bin']);
  });

  it('never uploads a file that is being appended to as a torn version, and uploads its final content once it stops', async () => {
    const sb = openSandbox(kind);
    writeFiles(sb.ws, { 'base.txt': 'base' });
    await pushOk(sb);
    await startAuto(sb);
    await firstCycle(sb);

    const log = join(sb.ws, 'train.log');
    // a separate process appends one whole line every 50 ms for 3.5 s (several 1 s cycles)
    const writer = spawn(process.execPath, ['-e', `
      const fs = require('node:fs');
      let i = 0;
      const t = setInterval(() => fs.appendFileSync(${JSON.stringify(log)}, 'step ' + String(i++).padStart(6, '0') + ' loss 0.' + i + '\\n'), 50);
      setTimeout(() => { clearInterval(t); }, 3500);
    `, log], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => writer.on('exit', () => r()));
    let writing = true;
    void exited.then(() => (writing = false));

    const seen: { size: number; consistent: boolean }[] = [];
    while (writing) {
      const obj = await sb.bucket.get('train.log');
      if (obj && writing) {
        const consistent = obj.meta['swm-hash'] === (await hash64(obj.body)) && obj.body.toString().endsWith('\n');
        seen.push({ size: obj.body.length, consistent });
      }
      await sleep(100);
    }
    expect(seen.filter((s) => !s.consistent)).toEqual([]); // absent, or exactly the bytes its hash names
    expect(seen).toEqual([]); // not uploaded at all while it kept changing

    const final = readFileSync(log);
    expect(final.length).toBeGreaterThan(40 * 20);
    const obj = await eventually(async () => {
      const o = await sb.bucket.get('train.log');
      return o && o.body.equals(final) ? o : undefined;
    }, 'the final train.log in the bucket', 8000, 200);
    expect(obj.meta['swm-hash']).toBe(await hash64(final));
    expect(readFileSync(swmPaths(sb.ws).daemonLog, 'utf8')).toMatch(/cycle ok: 0 files, 0 bytes in .*\(1 still changing \(next cycle\)\)/);
  });
});
