// End-to-end round trips through the built CLI on both backends: push, modify, push, pull elsewhere, compare trees byte for byte; big trees, multipart, raw mode, excludes.
import { appendFileSync, chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { BACKENDS, expectSameTree, manyFilesTree, pathsOf, readTree, setMtime, sha256, standardTree, summaryOf, useBackend, writeTree, expectCode, xxh64Hex } from '../support/e2e.js';

// each CLI run is bounded by runSwm's own timeout (60 s); a test runs several, on a machine that may be busy
vi.setConfig({ testTimeout: 240_000 });

describe.each(BACKENDS)('round trip on $name', (factory) => {
  const setup = useBackend(factory);

  it('push, modify, push, pull into a second folder: identical trees, objects carry the content hash', async () => {
    const t = await setup();
    const a = t.ws('workspace a');
    writeTree(a, { ...standardTree(), 'odd names/100% #1 ?&+=;.txt': 'odd\n', 'odd names/-dash': 'dash\n', 'odd names/.hidden': 'hidden\n' });

    const first = await t.sync('push', a, '--json');
    expectCode(first, 0);
    const tree = readTree(a);
    // every file, symlink and empty folder became one object
    expect(summaryOf(first).uploaded).toBe(Object.keys(tree).length);
    const b = t.scratch.path('workspace b');
    const firstPull = await t.sync('pull', b, '--json');
    expectCode(firstPull, 0);
    expectSameTree(b, a);

    // modify: change content, change a mode, add a file, add an empty folder, retarget a symlink. S3 keeps the ETag of a
    // mode-only rewrite and its LastModified has whole seconds: a chmod is only visible to other workspaces once the
    // rewrite lands in a later second than the upload they saw (README, "Remote layout") — so let one second pass
    await new Promise((r) => setTimeout(r, 1100));
    writeFileSync(join(a, 'src/main.py'), 'print("changed")\n');
    chmodSync(join(a, 'secret.key'), 0o640);
    writeTree(a, { 'new folder/new file.txt': 'new\n', 'later-empty': { dir: true } });
    rmSync(join(a, 'link-to-file'));
    writeTree(a, { 'link-to-file': { symlink: 'README.md' } });
    const second = await t.sync('push', a, '--json');
    expectCode(second, 0);
    expect(pathsOf(second, 'done', 'upload')).toEqual(['later-empty/', 'link-to-file', 'new folder/new file.txt', 'secret.key', 'src/main.py']);

    // an incremental pull into the existing copy, and a fresh one, both end up identical
    const pulled = await t.sync('pull', b, '--json');
    expectCode(pulled, 0);
    expect(pathsOf(pulled, 'done', 'download')).toEqual(['later-empty/', 'link-to-file', 'new folder/new file.txt', 'secret.key', 'src/main.py']);
    expectSameTree(b, a);
    const c = t.scratch.path('workspace c');
    expectCode(await t.sync('pull', c), 0);
    expectSameTree(c, a);

    // an independent reader sees one object per file at <dest>/<path>, with the right bytes and the swm hash
    const keys = await t.backend.listKeys(t.backend.dest);
    expect(keys).toContain(`${t.backend.dest}ünïcödé/日本語のファイル.txt`);
    expect(keys).toContain(`${t.backend.dest}empty-dir/`);
    expect(keys).toContain(`${t.backend.dest}odd names/100% #1 ?&+=;.txt`);
    const main = await t.backend.read(`${t.backend.dest}src/main.py`);
    expect(main?.body.toString()).toBe('print("changed")\n');
    expect(main?.meta['swm-hash']).toBe(await xxh64Hex(main!.body));
    const shard = await t.backend.read(`${t.backend.dest}data/shard-0.bin`);
    expect(shard && sha256(shard.body)).toBe(readTree(a)['data/shard-0.bin']!.sha256);
    expect(shard?.meta['swm-hash']).toBe(await xxh64Hex(shard!.body));
    expect(shard?.meta['swm-mode']).toBe('644');
    expect((await t.backend.read(`${t.backend.dest}run.sh`))?.meta['swm-mode']).toBe('755');

    // pulling again changes nothing; pushing the pulled copy uploads nothing
    const again = await t.sync('pull', b, '--json');
    expectCode(again, 0);
    expect(summaryOf(again).downloaded).toBe(0);
    const back = await t.sync('push', b, '--json');
    expectCode(back, 0);
    expect(summaryOf(back).uploaded).toBe(0);
  });

  it('a file whose name is too long to take the temp suffix (250 bytes) is pulled through a short temp name', async () => {
    const t = await setup();
    const a = t.ws('a');
    const long = `${'n'.repeat(246)}.txt`;
    writeTree(a, { [long]: 'long\n', [`dir/${long}`]: 'long in a folder\n' });
    expectCode(await t.sync('push', a), 0);
    const b = t.scratch.path('b');
    expectCode(await t.sync('pull', b), 0);
    expectSameTree(b, a);
  });

  it('a 3,000-file tree (paginated listings) and a 20 MiB file (multipart) survive push and pull', async () => {
    const t = await setup();
    const a = t.ws('big');
    writeTree(a, { ...manyFilesTree(3000), 'ckpt/model.bin': randomBytes(20 * 1024 * 1024) });
    const push = await t.sync('push', a, '-q');
    expectCode(push, 0);
    expect(push.stdout + push.stderr).toBe('');
    expect(await t.remote()).toHaveLength(3001);

    const b = t.scratch.path('big copy');
    const pull = await t.sync('pull', b, '-q');
    expectCode(pull, 0);
    expect(pull.stdout + pull.stderr).toBe('');
    expectSameTree(b, a);

    // the big object was stored whole (multipart on S3) and carries its hash
    const big = await t.backend.read(`${t.backend.dest}ckpt/model.bin`);
    expect(big && sha256(big.body)).toBe(readTree(a)['ckpt/model.bin']!.sha256);
    expect(big?.meta['swm-hash']).toBe(await xxh64Hex(big!.body));
    if (t.backend.name === 's3') expect(big?.etag).toMatch(/-\d+$/); // a multipart ETag ends in -<parts>

    // a second push of the unchanged tree uploads nothing and reads the state, not the files
    const noop = await t.sync('push', a, '--json');
    expectCode(noop, 0);
    expect(summaryOf(noop).uploaded).toBe(0);
    expect(summaryOf(noop).unchanged).toBe(3001);
  });

  it('--raw push uploads everything without state; --raw pull overwrites local files', async () => {
    const t = await setup();
    const a = t.ws('raw-a');
    writeTree(a, { 'x.txt': 'one\n', 'd/y.txt': 'two\n', 'empty': { dir: true } });
    const push = await t.sync('push', a, '--raw', '--json');
    expectCode(push, 0);
    expect(summaryOf(push).uploaded).toBe(3);
    // a raw run keeps no state and no stamp
    expect(existsSync(join(a, '.swm')) ? readdirSync(join(a, '.swm')) : []).toEqual([]);

    // raw again: everything uploaded again (no state to say it is unchanged)
    const again = await t.sync('push', a, '--raw', '--json');
    expect(summaryOf(again).uploaded).toBe(3);

    const b = t.ws('raw-b');
    writeTree(b, { 'x.txt': 'local edit that raw pull overwrites\n', 'only-local.txt': 'kept\n' });
    const pull = await t.sync('pull', b, '--raw', '--json');
    expectCode(pull, 0);
    const tree = readTree(b);
    expect(tree['x.txt']).toEqual(readTree(a)['x.txt']);
    expect(tree['d/y.txt']).toEqual(readTree(a)['d/y.txt']);
    expect(tree['empty/']).toBeDefined();
    expect(tree['only-local.txt']).toBeDefined();
  });

  it('excludes from -x and .swmignore are neither pushed nor pulled', async () => {
    const t = await setup();
    const a = t.ws('excl');
    writeTree(a, {
      '.swmignore': '# caches\n__pycache__/\n*.log\n',
      'keep.py': 'keep\n',
      'train.log': 'log\n',
      'sub/debug.log': 'log\n',
      'pkg/__pycache__/m.pyc': 'pyc\n',
      'tmp/scratch.bin': 'tmp\n',
      'big.ckpt': 'ckpt\n',
    });
    const push = await t.sync('push', a, '-x', 'tmp/', '-x', '*.ckpt', '--json');
    expectCode(push, 0);
    // folders left with only excluded files travel as empty-folder markers (kept structure); no excluded file travels
    expect((await t.remote()).sort()).toEqual(['.swmignore', 'keep.py', 'pkg/', 'sub/']);

    // objects that match the excludes, already in the bucket, are not pulled either
    await t.backend.plant(`${t.backend.dest}other.log`, 'remote log\n');
    await t.backend.plant(`${t.backend.dest}tmp/remote.bin`, 'remote tmp\n');
    const b = t.scratch.path('excl-b');
    mkdirSync(b);
    writeFileSync(join(b, '.swmignore'), readFileSync(join(a, '.swmignore'))); // the same file: no conflict
    const pull = await t.sync('pull', b, '-x', 'tmp/', '--json');
    expectCode(pull, 0);
    expect(Object.keys(readTree(b)).sort()).toEqual(['.swmignore', 'keep.py', 'pkg/', 'sub/']);
  });

  it('an appended file with the same mtime second is still seen as changed (size differs)', async () => {
    const t = await setup();
    const a = t.ws('append');
    writeTree(a, { 'log.txt': 'line 1\n' });
    expectCode(await t.sync('push', a), 0);
    appendFileSync(join(a, 'log.txt'), 'line 2\n');
    setMtime(join(a, 'log.txt'), readTree(a)['log.txt']!.mtimeMs!);
    const push = await t.sync('push', a, '--json');
    expect(pathsOf(push, 'done', 'upload')).toEqual(['log.txt']);
    expect((await t.backend.read(`${t.backend.dest}log.txt`))?.body.toString()).toBe('line 1\nline 2\n');
  });
});
