// End-to-end stateful sync (SPEC §5) through the built CLI on both backends: unchanged-content detection, remote deletions, non-destructive push, conflicts from both sides, --dry-run, --skip-pull, other dests, corrupted state.
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { BACKENDS, eventsOf, expectSameTree, pathsOf, readTree, setMtime, standardTree, summaryOf, useBackend, writeTree, expectCode } from '../support/e2e.js';

// each CLI run is bounded by runSwm's own timeout (60 s); a test runs several, on a machine that may be busy
vi.setConfig({ testTimeout: 240_000 });

describe.each(BACKENDS)('stateful sync on $name', (factory) => {
  const setup = useBackend(factory);

  it('a touched but identical file is not uploaded again (object etag unchanged)', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'same.txt': 'same\n', 'other.txt': 'other\n' });
    expectCode(await t.sync('push', a), 0);
    const before = await t.backend.read(`${t.backend.dest}same.txt`);

    setMtime(join(a, 'same.txt'), Date.now() + 5000); // stat differs, content does not
    writeFileSync(join(a, 'same.txt'), 'same\n'); // rewritten with the same bytes, too
    const push = await t.sync('push', a, '--json');
    expectCode(push, 0);
    expect(pathsOf(push, 'done', 'upload')).toEqual([]);
    expect(pathsOf(push, 'plan', 'upload')).toEqual([]);
    const after = await t.backend.read(`${t.backend.dest}same.txt`);
    expect(after?.etag).toBe(before?.etag);

    // the state took the new stat: status shows nothing pending
    const status = await t.sync('status', a, '--json');
    expectCode(status, 0);
    expect((status.events[0] as { pending: { changed: { count: number } } }).pending.changed.count).toBe(0);
  });

  it('a mode-only change travels to other workspaces; re-uploading identical files is no conflict (and no download on S3)', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'run.sh': '#!/bin/sh\n', 'data.txt': 'data\n' });
    expectCode(await t.sync('push', a), 0);
    const b = t.scratch.path('b');
    expectCode(await t.sync('pull', b), 0);

    chmodSync(join(a, 'run.sh'), 0o755); // same bytes: on S3 the ETag stays the same
    expect(pathsOf(expectCode(await t.sync('push', a, '--json'), 0), 'done', 'upload')).toEqual(['run.sh']);
    const pull = expectCode(await t.sync('pull', b, '--json'), 0);
    expect(pathsOf(pull, 'done', 'download')).toEqual(['run.sh']);
    expect(statSync(join(b, 'run.sh')).mode & 0o777).toBe(0o755);

    // a --raw push rewrites every object with the same content (later, so their times move): no conflict for b; on S3
    // the ETag (a content digest) tells b nothing changed, so it fetches nothing; file: ETags are per write, b re-fetches
    await new Promise((r) => setTimeout(r, 1100));
    expect(summaryOf(expectCode(await t.sync('push', a, '--raw', '--json'), 0)).uploaded).toBe(2);
    const again = expectCode(await t.sync('pull', b, '--json'), 0);
    expect(summaryOf(again).conflicts).toEqual([]);
    if (t.backend.name === 's3') expect(pathsOf(again, 'done')).toEqual([]);
    expectSameTree(b, a);
  });

  it('a remote deletion deletes the local file only if it is unchanged locally', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'gone.txt': 'gone\n', 'edited.txt': 'edited\n', 'kept.txt': 'kept\n' });
    expectCode(await t.sync('push', a), 0);
    const b = t.scratch.path('b');
    expectCode(await t.sync('pull', b), 0);

    // another machine deletes two objects; b edits one of them meanwhile
    await t.backend.remove([`${t.backend.dest}gone.txt`, `${t.backend.dest}edited.txt`]);
    writeFileSync(join(b, 'edited.txt'), 'edited on b\n');
    const pull = await t.sync('pull', b, '--json');
    expectCode(pull, 0);
    expect(pathsOf(pull, 'done', 'delete-local')).toEqual(['gone.txt']);
    expect(existsSync(join(b, 'gone.txt'))).toBe(false);
    expect(readFileSync(join(b, 'edited.txt'), 'utf8')).toBe('edited on b\n');
    expect(readFileSync(join(b, 'kept.txt'), 'utf8')).toBe('kept\n');

    // the kept edit is a local change now: the next push uploads it as new
    const push = await t.sync('push', b, '--json');
    expectCode(push, 0);
    expect(pathsOf(push, 'done', 'upload')).toEqual(['edited.txt']);
    expect((await t.backend.read(`${t.backend.dest}edited.txt`))?.body.toString()).toBe('edited on b\n');
  });

  it('push is non-destructive: a file deleted locally stays in the bucket', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'x.txt': 'x\n', 'dir/y.txt': 'y\n' });
    expectCode(await t.sync('push', a), 0);
    rmSync(join(a, 'dir'), { recursive: true });
    unlinkSync(join(a, 'x.txt'));
    const push = await t.sync('push', a, '--json');
    expectCode(push, 0);
    expect(eventsOf(push, 'done')).toEqual([]);
    expect((await t.remote()).sort()).toEqual(['dir/y.txt', 'x.txt']);
    // and a pull does not bring them back either: they are unchanged remotely
    const pull = await t.sync('pull', a, '--json');
    expectCode(pull, 0);
    expect(readdirSync(a).filter((n) => n !== '.swm')).toEqual([]);
  });

  it('conflicts from both sides: push uploads nothing (exit 3), pull lists them (exit 3), both sides stay untouched', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'edit.txt': 'v1\n', 'same-edit.txt': 'v1\n', 'deleted-on-b.txt': 'v1\n', 'clean.txt': 'v1\n' });
    expectCode(await t.sync('push', a), 0);
    const b = t.scratch.path('b');
    expectCode(await t.sync('pull', b), 0);

    // a changes and pushes
    writeTree(a, { 'edit.txt': 'from a\n', 'same-edit.txt': 'both made this\n', 'deleted-on-b.txt': 'from a\n', 'both-new.txt': 'new on a\n' });
    expectCode(await t.sync('push', a), 0);
    const remoteBefore = Object.fromEntries(await Promise.all((await t.remote()).map(async (p) => [p, (await t.backend.read(t.backend.dest + p))?.etag])));

    // b changes the same files differently (one identically), deletes one, and adds an unrelated file
    writeTree(b, { 'edit.txt': 'from b\n', 'same-edit.txt': 'both made this\n', 'both-new.txt': 'new on b\n', 'b-only.txt': 'b only\n' });
    unlinkSync(join(b, 'deleted-on-b.txt'));
    const localBefore = readTree(b);

    const push = await t.sync('push', b, '--json');
    expectCode(push, 3);
    expect(pathsOf(push, 'conflict')).toEqual(['both-new.txt', 'deleted-on-b.txt', 'edit.txt']);
    expect(pathsOf(push, 'done', 'upload')).toEqual([]);
    expect(summaryOf(push).exitCode).toBe(3);
    expect(await t.remote()).not.toContain('b-only.txt'); // nothing uploaded, not even the unrelated file
    const remoteAfter = Object.fromEntries(await Promise.all((await t.remote()).map(async (p) => [p, (await t.backend.read(t.backend.dest + p))?.etag])));
    expect(remoteAfter).toEqual(remoteBefore);
    expect(readTree(b)).toEqual(localBefore);

    // pull from b: same conflicts, listed in text output; the identical edit is no conflict; nothing written
    const pull = await t.sync('pull', b);
    expect(pull.code).toBe(3);
    for (const p of ['both-new.txt', 'deleted-on-b.txt', 'edit.txt']) expect(pull.stderr).toContain(`conflict: ${p}`);
    expect(pull.stderr).not.toContain('same-edit.txt');
    expect(pull.stderr).toMatch(/3 conflicts/);
    expect(readTree(b)).toEqual(localBefore);

    // a pulls: its side has no conflict (b never uploaded), and it is up to date
    const pullA = await t.sync('pull', a, '--json');
    expectCode(pullA, 0);
    expect(summaryOf(pullA).downloaded).toBe(0);

    // a local deletion of a remotely changed file stays a conflict: deleting b's copy does not resolve edit.txt
    unlinkSync(join(b, 'edit.txt'));
    expectCode(await t.sync('pull', b), 3);
    // resolving by taking a's content on b (same content on both sides is no conflict), then push succeeds
    writeFileSync(join(b, 'edit.txt'), 'from a\n');
    writeFileSync(join(b, 'both-new.txt'), 'new on a\n');
    writeFileSync(join(b, 'deleted-on-b.txt'), 'from a\n');
    const retry = await t.sync('push', b, '--json');
    expectCode(retry, 0);
    expect(pathsOf(retry, 'done', 'upload')).toEqual(['b-only.txt']);
    expect(await t.remote()).toContain('b-only.txt');
  });

  it('--dry-run changes nothing on either side', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'x.txt': 'x\n', 'y.txt': 'y\n' });
    const dry = await t.sync('push', a, '--dry-run', '--json');
    expectCode(dry, 0);
    expect(pathsOf(dry, 'plan', 'upload')).toEqual(['x.txt', 'y.txt']);
    expect(pathsOf(dry, 'done')).toEqual([]);
    expect(await t.remote()).toEqual([]);
    expect(existsSync(join(a, '.swm')) ? readdirSync(join(a, '.swm')) : []).toEqual([]);

    expectCode(await t.sync('push', a), 0);
    const b = t.ws('b');
    writeTree(b, { 'local.txt': 'local\n' });
    const bBefore = readTree(b);
    const dryPull = await t.sync('pull', b, '--dry-run');
    expectCode(dryPull, 0);
    expect(dryPull.stdout).toContain('would download x.txt');
    expect(readTree(b)).toEqual(bBefore);
    expect(existsSync(join(b, '.swm')) ? readdirSync(join(b, '.swm')) : []).toEqual([]);

    // a dry-run pull into a folder that does not exist yet does not create it
    const missing = t.scratch.path('not yet');
    const dryNew = await t.sync('pull', missing, '--dry-run', '--json');
    expectCode(dryNew, 0);
    expect(pathsOf(dryNew, 'plan', 'download')).toEqual(['x.txt', 'y.txt']);
    expect(existsSync(missing)).toBe(false);

    // after a real pull, a dry-run push of a change plans it and leaves the object alone
    expectCode(await t.sync('pull', b), 0);
    writeFileSync(join(b, 'x.txt'), 'changed\n');
    const etag = (await t.backend.read(`${t.backend.dest}x.txt`))?.etag;
    const dryChange = await t.sync('push', b, '--dry-run');
    expectCode(dryChange, 0);
    expect(dryChange.stdout).toContain('would upload x.txt');
    expect(dryChange.stdout).toContain('would upload local.txt');
    expect((await t.backend.read(`${t.backend.dest}x.txt`))?.etag).toBe(etag);
    // and the state still calls it changed
    const real = await t.sync('push', b, '--json');
    expect(pathsOf(real, 'done', 'upload')).toEqual(['local.txt', 'x.txt']);
  });

  it('--skip-pull uploads local changes without pulling remote ones', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'x.txt': 'x1\n', 'y.txt': 'y1\n' });
    expectCode(await t.sync('push', a), 0);
    const b = t.scratch.path('b');
    expectCode(await t.sync('pull', b), 0);
    writeFileSync(join(a, 'x.txt'), 'x2 from a\n');
    expectCode(await t.sync('push', a), 0);

    writeFileSync(join(b, 'y.txt'), 'y2 from b\n');
    const push = await t.sync('push', b, '--skip-pull', '--json');
    expectCode(push, 0);
    expect(pathsOf(push, 'done', 'upload')).toEqual(['y.txt']);
    expect(pathsOf(push, 'done', 'download')).toEqual([]);
    expect(readFileSync(join(b, 'x.txt'), 'utf8')).toBe('x1\n');
    expect((await t.backend.read(`${t.backend.dest}y.txt`))?.body.toString()).toBe('y2 from b\n');
    // a later ordinary pull brings x in
    const pull = await t.sync('pull', b, '--json');
    expect(pathsOf(pull, 'done', 'download')).toEqual(['x.txt']);
  });

  it('the same folder synced with another dest never loses local files; an emptied remote is refused (exit 4)', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, standardTree());
    const tree = readTree(a);
    expectCode(await t.sync('push', a), 0);

    const otherDest = t.backend.dest.replace(/\/$/, '-other/');
    const other = (verb: string, ...flags: string[]) => t.scratch.swm(['sync', verb, 'demo', a, '-b', t.backend.bucket, '-d', otherDest, ...flags]);
    // pull from an empty, never-used dest: nothing to do, nothing deleted
    const pullEmpty = await other('pull', '--json');
    expectCode(pullEmpty, 0);
    expect(readTree(a)).toEqual(tree);
    // push to the other dest uploads everything there and deletes nothing here
    const pushOther = await other('push', '--json');
    expectCode(pushOther, 0);
    expect(summaryOf(pushOther).uploaded).toBe(Object.keys(tree).length);
    expect(readTree(a)).toEqual(tree);
    // back to the first dest: up to date, nothing deleted
    const pullFirst = await t.sync('pull', a, '--json');
    expectCode(pullFirst, 0);
    expect(eventsOf(pullFirst, 'done')).toEqual([]);
    expect(readTree(a)).toEqual(tree);

    // the first dest emptied behind swm's back (wrong -d, a wiped bucket): pull refuses instead of deleting everything
    await t.backend.remove(await t.backend.listKeys(t.backend.dest));
    expect(await t.backend.listKeys(otherDest)).toHaveLength(Object.keys(tree).length);
    const refused = await t.sync('pull', a);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/^swm: .*has nothing under/);
    expect(readTree(a)).toEqual(tree);
  });

  it('a corrupted state file is rebuilt with a warning, by a full compare: no data lost, no spurious conflicts', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, standardTree());
    expectCode(await t.sync('push', a), 0);
    const b = t.scratch.path('b');
    expectCode(await t.sync('pull', b), 0);
    const tree = readTree(b);

    const stateFiles = (ws: string) => readdirSync(join(ws, '.swm')).filter((n) => /^state-.*\.tsv$/.test(n));
    expect(stateFiles(b)).toHaveLength(1);
    const corrupt = (ws: string) => writeFileSync(join(ws, '.swm', stateFiles(ws)[0]!), Buffer.from([0x23, 0x00, 0xff, 0xfe, 0x0a, 0x7b, 0x5b, 0x01]));

    corrupt(b);
    const pull = await t.sync('pull', b, '--json');
    expectCode(pull, 0);
    expect(eventsOf(pull, 'warning').map((e) => e.message).join('\n')).toMatch(/state .*corrupt.*rebuild/);
    expect(summaryOf(pull).conflicts).toEqual([]);
    expect(summaryOf(pull).downloaded).toBe(0);
    expect(readTree(b)).toEqual(tree);

    corrupt(b);
    const push = await t.sync('push', b, '--json');
    expectCode(push, 0);
    expect(eventsOf(push, 'warning')).toHaveLength(1);
    expect(summaryOf(push).conflicts).toEqual([]);
    expect(pathsOf(push, 'done', 'upload')).toEqual([]);
    // the rebuilt state is valid: the next run warns no more, and a real change is seen against it
    writeFileSync(join(b, 'src/main.py'), 'print("b")\n');
    const again = await t.sync('push', b, '--json');
    expectCode(again, 0);
    expect(eventsOf(again, 'warning')).toEqual([]);
    expect(pathsOf(again, 'done', 'upload')).toEqual(['src/main.py']);
    const c = t.scratch.path('c');
    expectCode(await t.sync('pull', c), 0);
    expectSameTree(c, b);
  });
});
