// `swm sync watch` + `swm sync push --delete` end to end with the built CLI, on a `file:` bucket and on the S3 test server:
// only deletions the watcher recorded are mirrored (files, whole trees, mkdir -p, an extracted tar, a rename); --delete is
// refused without a watcher and after a watcher gap; an emptied workspace and --max-delete abort with the bucket untouched.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { existsSync, writeFileSync } from 'node:fs';
import { swmPaths } from '../../src/state/paths.js';
import {
  BACKENDS, cleanupSandboxes, ensureBuilt, keysOf, lastJson, openSandbox, processesUnder, sh, waitJournaled, writeFiles, type Sandbox,
} from './cli-fixtures.js';

beforeAll(ensureBuilt);
afterEach(cleanupSandboxes);

/** startWatcher runs `swm sync watch` and returns the watcher's pid. */
async function startWatcher(sb: Sandbox): Promise<number> {
  const r = await sb.swm(['watch', ...sb.target, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const started = lastJson(r, 'watch');
  expect(started).toMatchObject({ action: 'start', alreadyRunning: false });
  return started.pid as number;
}

async function pushOk(sb: Sandbox, ...extra: string[]) {
  const r = await sb.swm(['push', ...sb.target, '--json', ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return r;
}

describe.each(BACKENDS)('watch and push --delete on a %s bucket', (kind) => {
  it('mirrors exactly the deletions the watcher recorded: files, a tree, a rename, next to mkdir -p and an extracted tar', async () => {
    const sb = openSandbox(kind);
    writeFiles(sb.ws, { 'keep.txt': 'keep', 'edit.txt': 'v1', 'del.txt': 'del', 'old/a': 'a', 'old/sub/b': 'b', 'moved.txt': 'moved' });
    const src = sb.scratch('tar-src');
    writeFiles(src, Object.fromEntries([...Array.from({ length: 12 }, (_, i) => [`data/shards/s${i}.bin`, `shard ${i}`]), ['data/shards/deep/x', 'x']]));
    const archive = join(sb.scratch('tar'), 'data.tar');
    sh(src, `tar cf ${archive} data`);

    await startWatcher(sb);
    await pushOk(sb);
    expect(keysOf(await sb.bucket.list())).toEqual(['del.txt', 'edit.txt', 'keep.txt', 'moved.txt', 'old/a', 'old/sub/b']);

    sh(sb.ws, [
      'echo v2 > edit.txt', 'rm del.txt', 'rm -rf old', 'mkdir -p a/b/c && touch a/b/c/x', `tar xf ${archive}`,
      'mv moved.txt renamed.txt', 'echo brief > transient && rm transient',
    ].join(' && '));
    const extracted = [...Array.from({ length: 12 }, (_, i) => `data/shards/s${i}.bin`), 'data/shards/deep/x'];
    await waitJournaled(sb.ws, { changed: ['edit.txt', 'a/b/c/x', 'renamed.txt', ...extracted], deleted: ['del.txt', 'old', 'moved.txt'] });

    const r = await pushOk(sb, '--delete');
    const deletedRemotely = r.json.filter((j) => j.type === 'done' && j.action === 'delete-remote').map((j) => j.path).sort();
    expect(deletedRemotely).toEqual(['del.txt', 'moved.txt', 'old/a', 'old/sub/b']); // `transient` was never synced
    expect(lastJson(r, 'summary')).toMatchObject({ deletedRemote: 4, conflicts: [], errors: [] });
    expect(keysOf(await sb.bucket.list()).sort()).toEqual(['a/b/c/x', ...extracted, 'edit.txt', 'keep.txt', 'renamed.txt'].sort());
    expect((await sb.bucket.get('edit.txt'))?.body.toString()).toBe('v2\n');
    expect((await sb.bucket.get('data/shards/s7.bin'))?.body.toString()).toBe('shard 7');
    expect((await sb.bucket.get('a/b/c/x'))?.body.length).toBe(0);

    // nothing left to mirror: a second --delete is a no-op
    const again = await pushOk(sb, '--delete');
    expect(lastJson(again, 'summary')).toMatchObject({ deletedRemote: 0, uploaded: 0 });
  });

  it('refuses --delete (exit 4, nothing deleted) without a watcher and after a watcher gap; a deletion nothing watched is never mirrored', async () => {
    const sb = openSandbox(kind);
    writeFiles(sb.ws, { a: 'a', b: 'b', c: 'c', d: 'd', stays: 's' });
    await pushOk(sb);
    const all = ['a', 'b', 'c', 'd', 'stays'];

    // no watcher at all
    sh(sb.ws, 'rm a');
    let r = await sb.swm(['push', ...sb.target, '--delete']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^swm: --delete refused: no watcher is running for this workspace; run `swm sync watch demo`/);
    expect(keysOf(await sb.bucket.list())).toEqual(all);

    // a watcher that started after the last sync did not see what happened before it
    const first = await startWatcher(sb);
    sh(sb.ws, 'rm b');
    await waitJournaled(sb.ws, { deleted: ['b'] });
    r = await sb.swm(['push', ...sb.target, '--delete']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/--delete refused: the watcher started at .* after the last sync at /);
    expect(keysOf(await sb.bucket.list())).toEqual(all);

    // a push now covers everything since; then the watcher dies (kill -9): a gap
    await pushOk(sb);
    sh(sb.ws, 'rm c');
    await waitJournaled(sb.ws, { deleted: ['c'] });
    process.kill(first, 'SIGKILL');
    sh(sb.ws, 'rm d'); // while nothing watches
    r = await sb.swm(['push', ...sb.target, '--delete']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/--delete refused: no watcher is running for this workspace \(the one started at .* has exited\)/);
    expect(keysOf(await sb.bucket.list())).toEqual(all);

    // a restarted watcher replays the gap from its snapshot: what it recorded is mirrored, `a` (never watched) stays
    await startWatcher(sb);
    r = await pushOk(sb, '--delete');
    expect(r.json.filter((j) => j.type === 'done' && j.action === 'delete-remote').map((j) => j.path).sort()).toEqual(['b', 'c', 'd']);
    expect(keysOf(await sb.bucket.list())).toEqual(['a', 'stays']);
  });

  it('never mirrors an emptied workspace: push --delete is refused, --max-delete 10 aborts, the bucket is untouched', async () => {
    const sb = openSandbox(kind);
    const files = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f/${String(i).padStart(2, '0')}.txt`, `file ${i}`]));
    writeFiles(sb.ws, { ...files, 'top.txt': 'top' });
    await startWatcher(sb);
    await pushOk(sb);
    const before = await sb.bucket.list();
    expect(before).toHaveLength(31);

    sh(sb.ws, 'rm -rf -- *'); // every file, with the watcher running (.swm/ is hidden and stays)
    await waitJournaled(sb.ws, { deleted: ['top.txt', 'f'] }, 20_000); // 31 deletions, batched and fsync'd: give a loaded machine time
    let r = await sb.swm(['push', ...sb.target, '--delete']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/--delete refused: the workspace .* has no files left, so it may be unmounted or wiped; nothing was deleted/);
    expect(await sb.bucket.list()).toEqual(before);
    r = await sb.swm(['push', ...sb.target, '--delete', '--max-delete', '10']);
    expect(r.code).toBe(4);
    expect(await sb.bucket.list()).toEqual(before);

    // one file comes back: the workspace is not empty, but 31 deletions are more than --max-delete 10
    writeFileSync(join(sb.ws, 'new.txt'), 'new');
    await waitJournaled(sb.ws, { changed: ['new.txt'] });
    r = await sb.swm(['push', ...sb.target, '--delete', '--max-delete', '10']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/--delete would delete 31 objects, more than --max-delete 10; nothing was changed/);
    expect(await sb.bucket.list()).toEqual(before); // new.txt not uploaded either

    r = await pushOk(sb, '--delete', '--max-delete', '31');
    expect(lastJson(r, 'summary')).toMatchObject({ deletedRemote: 31, uploaded: 1 });
    expect(keysOf(await sb.bucket.list())).toEqual(['new.txt']);

    // watch --stop leaves no process of this workspace behind
    expect((await sb.swm(['watch', ...sb.target, '--stop'])).code).toBe(0);
    expect(processesUnder(sb.root)).toEqual([]);
    expect(existsSync(swmPaths(sb.ws).watcher)).toBe(false);
  });
});
