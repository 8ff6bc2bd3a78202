// extractTar builds a folder that does not exist yet under a hidden temp name and renames it into place whole: contents,
// protections (the disk checks and hash checks of the tree writer included), folders that come back or appear meanwhile,
// a stop midway, and the cleanup of a killed run's temp folder.
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { SwmError } from '../../src/errors.js';
import { extractTar, TarEntryHashMismatch } from '../../src/tar/extract.js';
import { removeStaleWorkspaceTemps } from '../../src/state/stale-temps.js';
import { contentFor, craftTar, listAll, makeTempDir } from './tree-fixture.js';

const tmp = makeTempDir('staging');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let caseNo = 0;
function freshCase(): { box: string; root: string } {
  const box = join(tmp, `case-${caseNo++}`);
  mkdirSync(join(box, 'root'), { recursive: true });
  return { box, root: join(box, 'root') };
}

const TEMP = /\.swm-tmp-/;

function tempPaths(root: string): string[] {
  return listAll(root).filter((p) => TEMP.test(p));
}

/** waitFor polls until check() holds (the extractor works on the bytes fed so far in the background). */
async function waitFor(what: string, check: () => boolean): Promise<void> {
  const until = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('extractTar builds a new folder under a temp name', () => {
  it('keeps it out of its place until the archive moves past it, then renames it there whole', async () => {
    const { root } = freshCase();
    const first = await craftTar([
      { header: { name: 'new', type: 'directory', mode: 0o750 } },
      { header: { name: 'new/a.txt' }, data: 'a' },
      { header: { name: 'new/sub/b.txt', mode: 0o600 }, data: 'b' },
    ], true);
    const rest = await craftTar([
      { header: { name: 'new/c.txt' }, data: 'c' },
      { header: { name: 'top.txt' }, data: 'top' },
    ]);
    const input = new PassThrough();
    const done = extractTar(input, root);
    input.write(first);
    await waitFor('new/sub/b.txt in the temp folder', () => tempPaths(root).some((p) => /^\.new\.swm-tmp-[0-9a-f]{8}\/sub\/b\.txt$/.test(p)));
    expect(existsSync(join(root, 'new')), 'a half-built folder is never at its place').toBe(false);
    expect(readdirSync(root).filter((n) => !TEMP.test(n))).toEqual([]);
    input.end(rest);
    const result = await done;

    expect(readFileSync(join(root, 'new/a.txt'), 'utf8')).toBe('a');
    expect(readFileSync(join(root, 'new/sub/b.txt'), 'utf8')).toBe('b');
    expect(readFileSync(join(root, 'new/c.txt'), 'utf8')).toBe('c');
    expect(readFileSync(join(root, 'top.txt'), 'utf8')).toBe('top');
    expect(statSync(join(root, 'new')).mode & 0o777).toBe(0o750);
    expect(statSync(join(root, 'new/sub/b.txt')).mode & 0o777).toBe(0o600);
    expect(result.files).toBe(4);
    expect(tempPaths(root)).toEqual([]);
  });

  it('writes a folder that comes back later in the archive into its place, and lets a repeated entry replace the first', async () => {
    const { root } = freshCase();
    await extractTar(Readable.from([await craftTar([
      { header: { name: 'a/x' }, data: 'x' },
      { header: { name: 'a/dup' }, data: 'first' },
      { header: { name: 'a/dup' }, data: 'second' },
      { header: { name: 'b/y' }, data: 'y' },
      { header: { name: 'a/z', mode: 0o640 }, data: 'z' },
      { header: { name: 'a/x' }, data: 'x again' },
    ])]), root);
    expect(readFileSync(join(root, 'a/x'), 'utf8')).toBe('x again');
    expect(readFileSync(join(root, 'a/dup'), 'utf8')).toBe('second');
    expect(readFileSync(join(root, 'a/z'), 'utf8')).toBe('z');
    expect(statSync(join(root, 'a/z')).mode & 0o777).toBe(0o640);
    expect(readFileSync(join(root, 'b/y'), 'utf8')).toBe('y');
    expect(tempPaths(root)).toEqual([]);
  });

  it('still refuses writing through a symlink the archive made inside the new folder, keeping what came before whole', async () => {
    const { box, root } = freshCase();
    const err = await extractTar(Readable.from([await craftTar([
      { header: { name: 'n/ok.txt' }, data: 'complete' },
      { header: { name: 'n/up', type: 'symlink', linkname: '..' } },
      { header: { name: 'n/up/escape.txt' }, data: 'evil' },
      { header: { name: 'after.txt' }, data: 'never' },
    ])]), root).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SwmError);
    expect((err as SwmError).exitCode).toBe(2);
    expect((err as SwmError).message).toMatch(/refusing tar entry "n\/up\/escape\.txt".*symlink/);
    expect(readFileSync(join(root, 'n/ok.txt'), 'utf8')).toBe('complete');
    expect(lstatSync(join(root, 'n/up')).isSymbolicLink()).toBe(true);
    expect(existsSync(join(root, 'escape.txt'))).toBe(false);
    expect(existsSync(join(root, 'after.txt'))).toBe(false);
    expect(readdirSync(box)).toEqual(['root']);
    expect(tempPaths(root)).toEqual([]);
  });

  it('refuses a symlink out of the workspace inside a new folder, and ".." names, before writing them', async () => {
    for (const [specs, bad] of [
      [[{ header: { name: 'n/f' }, data: 'f' }, { header: { name: 'n/etc', type: 'symlink', linkname: '/etc' } }], 'n/etc'],
      [[{ header: { name: 'n/f' }, data: 'f' }, { header: { name: 'n/../../x' }, data: 'evil' }], 'n/../../x'],
    ] as const) {
      const { box, root } = freshCase();
      const err = await extractTar(Readable.from([await craftTar([...specs])]), root).then(() => undefined, (e: unknown) => e);
      expect((err as SwmError).message).toContain(`refusing tar entry ${JSON.stringify(bad)}`);
      expect(readFileSync(join(root, 'n/f'), 'utf8')).toBe('f');
      expect(readdirSync(join(root, 'n'))).toEqual(['f']);
      expect(readdirSync(box)).toEqual(['root']);
      expect(tempPaths(root)).toEqual([]);
    }
  });

  it('stopped midway, puts the complete files in place and leaves neither the partial one nor a temp folder', async () => {
    const { root } = freshCase();
    const big = contentFor(5, 3 * 1024 * 1024);
    const whole = await craftTar([
      { header: { name: 'n/a.txt' }, data: 'a' },
      { header: { name: 'n/deeper/b.txt' }, data: 'b' },
      { header: { name: 'n/big.bin' }, data: big },
    ]);
    const input = new PassThrough();
    const done = extractTar(input, root).then(() => undefined, (e: unknown) => e);
    input.write(whole.subarray(0, whole.indexOf(big.subarray(0, 64)) + 1024 * 1024));
    await waitFor('the big file being written', () => tempPaths(root).some((p) => p.endsWith('/big.bin')));
    input.destroy(new Error('connection reset'));
    const err = await done;
    expect((err as SwmError).message).toMatch(/connection reset/);
    expect(readFileSync(join(root, 'n/a.txt'), 'utf8')).toBe('a');
    expect(readFileSync(join(root, 'n/deeper/b.txt'), 'utf8')).toBe('b');
    expect(existsSync(join(root, 'n/big.bin'))).toBe(false);
    expect(tempPaths(root)).toEqual([]);
  });

  it('merges into a folder that appeared at its place meanwhile', async () => {
    const { root } = freshCase();
    const input = new PassThrough();
    const done = extractTar(input, root);
    input.write(await craftTar([{ header: { name: 'n/a.txt' }, data: 'a' }, { header: { name: 'n/sub/b.txt' }, data: 'b' }], true));
    await waitFor('the temp folder', () => tempPaths(root).some((p) => p.endsWith('sub/b.txt')));
    mkdirSync(join(root, 'n/sub'), { recursive: true });
    writeFileSync(join(root, 'n/mine.txt'), 'mine');
    writeFileSync(join(root, 'n/sub/b.txt'), 'old b');
    input.end(await craftTar([{ header: { name: 'n/c.txt' }, data: 'c' }, { header: { name: 'z.txt' }, data: 'z' }]));
    await done;
    expect(readFileSync(join(root, 'n/a.txt'), 'utf8')).toBe('a');
    expect(readFileSync(join(root, 'n/sub/b.txt'), 'utf8')).toBe('b');
    expect(readFileSync(join(root, 'n/c.txt'), 'utf8')).toBe('c');
    expect(readFileSync(join(root, 'n/mine.txt'), 'utf8')).toBe('mine');
    expect(readFileSync(join(root, 'z.txt'), 'utf8')).toBe('z');
    expect(tempPaths(root)).toEqual([]);
  });

  it('fails (exit 1) when a file appeared at the new folder\'s place meanwhile, leaving that file and no temp folder', async () => {
    const { root } = freshCase();
    const input = new PassThrough();
    const done = extractTar(input, root).then(() => undefined, (e: unknown) => e);
    input.write(await craftTar([{ header: { name: 'n/a.txt' }, data: 'a' }], true));
    await waitFor('the temp folder', () => tempPaths(root).some((p) => p.endsWith('a.txt')));
    writeFileSync(join(root, 'n'), 'a file now');
    input.end(await craftTar([{ header: { name: 'z.txt' }, data: 'z' }]));
    const err = await done;
    expect(err).toBeInstanceOf(SwmError);
    expect((err as SwmError).exitCode).toBe(1);
    expect((err as SwmError).message).toMatch(/"n".*not a folder/);
    expect(readFileSync(join(root, 'n'), 'utf8')).toBe('a file now');
    expect(tempPaths(root)).toEqual([]);
  });

  it('refuses what the disk makes unsafe (a symlinked or non-folder parent, a full folder in the way) after writing what came before', async () => {
    const cases: Array<[string, (root: string, box: string) => void, string, RegExp]> = [
      ['linked/x', (root, box) => symlinkSync(join(box, 'elsewhere'), join(root, 'linked')), 'linked/x', /symlink/],
      ['plain/x', (root) => writeFileSync(join(root, 'plain'), 'a file'), 'plain/x', /not a folder/],
      ['full', (root) => mkdirSync(join(root, 'full/inside'), { recursive: true }), 'full', /not empty/],
    ];
    for (const [entry, prepare, bad, reason] of cases) {
      const { box, root } = freshCase();
      mkdirSync(join(box, 'elsewhere'));
      prepare(root, box);
      const err = await extractTar(Readable.from([await craftTar([
        { header: { name: 'before/a.txt' }, data: 'a' },
        { header: { name: 'top.txt' }, data: 'top' },
        { header: { name: entry }, data: 'evil' },
        { header: { name: 'after.txt' }, data: 'never' },
      ])]), root).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(SwmError);
      expect((err as SwmError).exitCode).toBe(2);
      expect((err as SwmError).message).toContain(`refusing tar entry ${JSON.stringify(bad)}`);
      expect((err as SwmError).message).toMatch(reason);
      expect(readFileSync(join(root, 'before/a.txt'), 'utf8')).toBe('a');
      expect(readFileSync(join(root, 'top.txt'), 'utf8')).toBe('top');
      expect(existsSync(join(root, 'after.txt'))).toBe(false);
      expect(readdirSync(join(box, 'elsewhere'))).toEqual([]);
      expect(tempPaths(root)).toEqual([]);
    }
  });

  it('stops at a file whose bytes do not match its expected hash (exit 1), leaving a good local copy and what came before', async () => {
    const { root } = freshCase();
    writeFileSync(join(root, 'weights.bin'), 'the good local copy');
    mkdirSync(join(root, 'old'));
    writeFileSync(join(root, 'old/big.bin'), 'the good big copy');
    const big = contentFor(8, 2 * 1024 * 1024 + 3);
    const archive = await craftTar([
      { header: { name: 'fresh/a.txt' }, data: 'a' },
      { header: { name: 'fresh/b.txt' }, data: 'b' },
      { header: { name: 'old/big.bin' }, data: big },
      { header: { name: 'weights.bin' }, data: 'damaged bytes' },
      { header: { name: 'z.txt' }, data: 'z' },
    ]);
    const hashes = new Map<string, string>();
    const probe = await extractTar(Readable.from([archive]), join(freshCase().root));
    for (const e of probe.entries) if (e.hash) hashes.set(e.path, e.hash);
    for (const [path, bad] of [['old/big.bin', 'fedcba9876543210'], ['weights.bin', '0123456789abcdef']] as const) {
      const expectedHashes = new Map(hashes);
      expectedHashes.set(path, bad);
      const err = await extractTar(Readable.from([archive]), root, { expectedHashes }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(TarEntryHashMismatch);
      expect((err as TarEntryHashMismatch).path).toBe(path);
      expect((err as SwmError).exitCode).toBe(1);
      expect(readFileSync(join(root, 'weights.bin'), 'utf8')).toBe('the good local copy');
      expect(readFileSync(join(root, 'fresh/b.txt'), 'utf8')).toBe('b');
      expect(existsSync(join(root, 'z.txt'))).toBe(false);
      expect(tempPaths(root)).toEqual([]);
      if (path === 'old/big.bin') expect(readFileSync(join(root, 'old/big.bin'), 'utf8')).toBe('the good big copy');
    }
    const done = await extractTar(Readable.from([archive]), root, { expectedHashes: hashes });
    expect(done.entries.map((e) => [e.path, e.hash])).toEqual([...hashes]);
    expect(readFileSync(join(root, 'old/big.bin')).equals(big)).toBe(true);
  });
});

describe('a killed extraction\'s temp folder', () => {
  it('is removed, whole, by the cleanup a run that takes over the lock does; other folders are walked, not removed', () => {
    const { root } = freshCase();
    mkdirSync(join(root, '.models.swm-tmp-0123abcd/deep'), { recursive: true });
    writeFileSync(join(root, '.models.swm-tmp-0123abcd/deep/half.bin'), 'half');
    mkdirSync(join(root, 'kept/.x.swm-tmp-89abcdef'), { recursive: true });
    writeFileSync(join(root, 'kept/file.txt'), 'kept');
    writeFileSync(join(root, 'kept/.file.txt.swm-tmp-00000001'), 'temp');
    expect(removeStaleWorkspaceTemps(root, () => false)).toBe(3);
    expect(listAll(root)).toEqual(['kept', 'kept/file.txt']);
  });
});
