// extractTar against hostile and damaged archives: nothing lands outside the root, refusals exit 2 naming the entry.
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { SwmError } from '../../src/errors.js';
import { extractTar, unsafeSymlinkTarget } from '../../src/tar/extract.js';
import { packTar } from '../../src/tar/pack.js';
import { contentFor, craftTar, listAll, makeTempDir, scanEntries, streamToBuffer, type CraftedEntry } from './tree-fixture.js';

const tmp = makeTempDir('safety');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let caseNo = 0;
/** freshCase gives `<case>/root` to extract into; `<case>` must end up holding only `root` (and what the test put there). */
function freshCase(): { box: string; root: string } {
  const box = join(tmp, `case-${caseNo++}`);
  mkdirSync(join(box, 'root'), { recursive: true });
  return { box, root: join(box, 'root') };
}

async function expectRefused(archive: Buffer, root: string, entryName: string): Promise<SwmError> {
  const err = await extractTar(Readable.from([archive]), root).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'extraction should have been refused').toBeInstanceOf(SwmError);
  const swm = err as SwmError;
  expect(swm.exitCode).toBe(2);
  expect(swm.message).toContain(`refusing tar entry ${JSON.stringify(entryName)}`);
  return swm;
}

function noTempFiles(root: string): void {
  expect(listAll(root).filter((p) => p.includes('.swm-tmp-'))).toEqual([]);
}

describe('extractTar refuses entries that would escape the root', () => {
  const cases: Array<{ title: string; specs: CraftedEntry[]; bad: string; reason: RegExp }> = [
    { title: 'a "../x" name', specs: [{ header: { name: '../x' }, data: 'evil' }], bad: '../x', reason: /\.\./ },
    { title: 'an absolute name', specs: [{ header: { name: '/abs/x' }, data: 'evil' }], bad: '/abs/x', reason: /absolute/ },
    { title: 'a name climbing out through a folder', specs: [{ header: { name: 'a/../../x' }, data: 'evil' }], bad: 'a/../../x', reason: /\.\./ },
    { title: 'a NUL in a (pax) name', specs: [{ header: { name: 'a\0b', pax: {} }, data: 'evil' }], bad: 'a\0b', reason: /NUL/ },
    {
      title: 'a symlink to ".." followed by an entry under it',
      specs: [{ header: { name: 'l', type: 'symlink', linkname: '..' } }, { header: { name: 'l/x' }, data: 'evil' }],
      bad: 'l', reason: /outside the workspace/,
    },
    {
      title: 'a symlink to /etc followed by l/passwd',
      specs: [{ header: { name: 'l', type: 'symlink', linkname: '/etc' } }, { header: { name: 'l/passwd' }, data: 'evil' }],
      bad: 'l', reason: /absolute target/,
    },
    {
      title: 'a symlink that climbs out from a subfolder',
      specs: [{ header: { name: 'a', type: 'directory' } }, { header: { name: 'a/l', type: 'symlink', linkname: '../../x' } }],
      bad: 'a/l', reason: /outside the workspace/,
    },
    {
      title: 'a symlink that goes back up after entering a folder (s/.. when s may itself be a link)',
      specs: [{ header: { name: 's', type: 'symlink', linkname: '.' } }, { header: { name: 't', type: 'symlink', linkname: 's/..' } }],
      bad: 't', reason: /leading/,
    },
    {
      title: 'a hard link to /etc/passwd',
      specs: [{ header: { name: 'h', type: 'link', linkname: '/etc/passwd' } }],
      bad: 'h', reason: /hard links/,
    },
    {
      title: 'a hard link inside the archive',
      specs: [{ header: { name: 'f' }, data: 'ok' }, { header: { name: 'h', type: 'link', linkname: 'f' } }],
      bad: 'h', reason: /hard links/,
    },
    { title: 'an entry inside .swm/ (swm\'s own state)', specs: [{ header: { name: '.swm/state.tsv' }, data: 'evil' }], bad: '.swm/state.tsv', reason: /never extracted/ },
    { title: 'a FIFO', specs: [{ header: { name: 'p', type: 'fifo' } }], bad: 'p', reason: /fifo/ },
    { title: 'a device', specs: [{ header: { name: 'sda', type: 'block-device', devmajor: 8 } }], bad: 'sda', reason: /block-device/ },
  ];

  for (const c of cases) {
    it(`refuses ${c.title}`, async () => {
      const { box, root } = freshCase();
      const err = await expectRefused(await craftTar(c.specs), root, c.bad);
      expect(err.message).toMatch(c.reason);
      expect(readdirSync(box)).toEqual(['root']);
      expect(existsSync(join(box, 'x'))).toBe(false);
      noTempFiles(root);
    });
  }

  it('refuses to write through a symlink the archive created, even one pointing inside', async () => {
    const { box, root } = freshCase();
    const archive = await craftTar([
      { header: { name: 'sub', type: 'directory' } },
      { header: { name: 'l', type: 'symlink', linkname: 'sub' } },
      { header: { name: 'l/x' }, data: 'through the link' },
    ]);
    const err = await expectRefused(archive, root, 'l/x');
    expect(err.message).toMatch(/symlink/);
    expect(readlinkSync(join(root, 'l'))).toBe('sub');
    expect(readdirSync(join(root, 'sub'))).toEqual([]);
    expect(readdirSync(box)).toEqual(['root']);
  });

  it('refuses to write through a symlink already on disk that points outside', async () => {
    const { box, root } = freshCase();
    mkdirSync(join(box, 'outside'));
    symlinkSync(join(box, 'outside'), join(root, 'data'));
    const err = await expectRefused(await craftTar([{ header: { name: 'data/x' }, data: 'evil' }]), root, 'data/x');
    expect(err.message).toMatch(/symlink/);
    expect(readdirSync(join(box, 'outside'))).toEqual([]);
  });

  it('keeps the files extracted before a bad entry whole, and leaves no temp file', async () => {
    const { box, root } = freshCase();
    const big = contentFor(7, 2 * 1024 * 1024 + 5);
    const archive = await craftTar([
      { header: { name: 'good/small.txt' }, data: 'small and complete' },
      { header: { name: 'good/big.bin' }, data: big },
      { header: { name: '../escape' }, data: 'evil' },
      { header: { name: 'after.txt' }, data: 'never reached' },
    ]);
    await expectRefused(archive, root, '../escape');
    expect(readFileSync(join(root, 'good/small.txt'), 'utf8')).toBe('small and complete');
    expect(readFileSync(join(root, 'good/big.bin')).equals(big)).toBe(true);
    expect(existsSync(join(root, 'after.txt'))).toBe(false);
    expect(readdirSync(box)).toEqual(['root']);
    noTempFiles(root);
  });
});

describe('extractTar strips dangerous bits and accepts safe links', () => {
  it('extracts a setuid/setgid/sticky file without those bits', async () => {
    const { root } = freshCase();
    const archive = await craftTar([
      { header: { name: 'suid', mode: 0o4755 }, data: '#!/bin/sh\n' },
      { header: { name: 'sgid-dir', type: 'directory', mode: 0o3775 } },
    ]);
    const result = await extractTar(Readable.from([archive]), root);
    expect(statSync(join(root, 'suid')).mode & 0o7777).toBe(0o755);
    expect(statSync(join(root, 'sgid-dir')).mode & 0o7777).toBe(0o775);
    expect(result.entries.map((e) => [e.path, e.mode])).toEqual([['suid', 0o755], ['sgid-dir', 0o775]]);
  });

  it('accepts relative symlinks that stay inside, whatever their depth', async () => {
    const { root } = freshCase();
    const archive = await craftTar([
      { header: { name: 'a/b', type: 'directory' } },
      { header: { name: 'a/b/up2', type: 'symlink', linkname: '../../top.txt' } },
      { header: { name: 'a/dot', type: 'symlink', linkname: './b/./x' } },
      { header: { name: 'top.txt' }, data: 'top' },
    ]);
    const result = await extractTar(Readable.from([archive]), root);
    expect(result.symlinks).toBe(2);
    expect(readFileSync(join(root, 'a/b/up2'), 'utf8')).toBe('top');
  });

  it('replaces a file or symlink in the way of a folder, and refuses a file where a non-empty folder stands', async () => {
    const { root } = freshCase();
    writeFileSync(join(root, 'was-file'), 'old');
    symlinkSync('/etc', join(root, 'was-link'));
    await extractTar(Readable.from([await craftTar([
      { header: { name: 'was-file', type: 'directory' } },
      { header: { name: 'was-link', type: 'directory' } },
      { header: { name: 'was-link/inside' }, data: 'safe' },
    ])]), root);
    expect(lstatSync(join(root, 'was-file')).isDirectory()).toBe(true);
    expect(lstatSync(join(root, 'was-link')).isDirectory()).toBe(true);
    expect(readFileSync(join(root, 'was-link/inside'), 'utf8')).toBe('safe');

    const err = await expectRefused(await craftTar([{ header: { name: 'was-link' }, data: 'x' }]), root, 'was-link');
    expect(err.message).toMatch(/folder/);
    expect(readFileSync(join(root, 'was-link/inside'), 'utf8')).toBe('safe');
    noTempFiles(root);
  });

  it('judges symlink targets by their segments', () => {
    expect(unsafeSymlinkTarget('l', 'x/y')).toBeUndefined();
    expect(unsafeSymlinkTarget('a/b/l', '../../x')).toBeUndefined();
    expect(unsafeSymlinkTarget('a/b/l', '../../../x')).toMatch(/outside/);
    expect(unsafeSymlinkTarget('l', '/etc')).toMatch(/absolute/);
    expect(unsafeSymlinkTarget('a/l', 'x/../y')).toMatch(/leading/);
    expect(unsafeSymlinkTarget('l', '')).toMatch(/empty/);
  });
});

describe('extractTar on damaged streams', () => {
  const src = join(tmp, 'damaged-src');
  mkdirSync(join(src, 'dir'), { recursive: true });
  writeFileSync(join(src, 'a.txt'), 'first\n');
  writeFileSync(join(src, 'dir/big.bin'), contentFor(3, 3 * 1024 * 1024));
  writeFileSync(join(src, 'z.txt'), 'last\n');
  const entries = scanEntries(src);

  async function expectCorrupt(archive: Buffer | Readable, root: string): Promise<SwmError> {
    const input = Buffer.isBuffer(archive) ? Readable.from([archive]) : archive;
    const err = await extractTar(input, root).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SwmError);
    expect((err as SwmError).exitCode).toBe(2);
    expect((err as SwmError).message).toMatch(/corrupt tar stream/);
    noTempFiles(root);
    return err as SwmError;
  }

  it('fails on an archive cut inside a file, leaving no partial file', async () => {
    const whole = await streamToBuffer(packTar(src, entries));
    const { root } = freshCase();
    await expectCorrupt(whole.subarray(0, 2 * 1024 * 1024), root);
    expect(existsSync(join(root, 'a.txt'))).toBe(true);
    expect(existsSync(join(root, 'dir/big.bin'))).toBe(false);
  });

  it('fails on an archive cut exactly between two entries (no end-of-archive block)', async () => {
    const whole = await streamToBuffer(packTar(src, entries));
    // cut right after dir/big.bin's data: 3 MiB is a multiple of 512, so the next header starts there
    const bigAt = whole.indexOf(contentFor(3, 64));
    const cut = whole.subarray(0, bigAt + 3 * 1024 * 1024);
    const { root } = freshCase();
    await expectCorrupt(cut, root);
    expect(readFileSync(join(root, 'dir/big.bin')).length).toBe(3 * 1024 * 1024);
    expect(existsSync(join(root, 'z.txt'))).toBe(false);
  });

  it('fails on an archive cut after a pax header, before its entry', async () => {
    const archive = await craftTar([{ header: { name: 'a.txt' }, data: 'a' }, { header: { name: 'n'.repeat(150) }, data: 'b' }]);
    // entry 1: header + 1 data block; entry 2: pax header block + pax data block + header + data
    const { root } = freshCase();
    await expectCorrupt(archive.subarray(0, 1024 + 1024), root);
  });

  it('fails on a stream that is not a tar, and on damaged gzip', async () => {
    await expectCorrupt(Buffer.from('this is not a tar archive at all'.repeat(40)), freshCase().root);
    const gz = gzipSync(await streamToBuffer(packTar(src, entries)));
    const damaged = Buffer.from(gz);
    damaged[damaged.length >> 1] ^= 0xff;
    const err = await expectCorrupt(damaged, freshCase().root);
    expect(err.message).toMatch(/gzip|corrupt/);
    await expectCorrupt(Buffer.alloc(0), freshCase().root);
  });

  it('passes an input stream failure through as a failure, not as corruption', async () => {
    const whole = await streamToBuffer(packTar(src, entries));
    const input = new Readable({ read() {} });
    input.push(whole.subarray(0, 1024 * 1024));
    setTimeout(() => input.destroy(new Error('socket hang up')), 20);
    const { root } = freshCase();
    const err = await extractTar(input, root).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SwmError);
    expect((err as SwmError).exitCode).toBe(1);
    expect((err as SwmError).message).toMatch(/socket hang up/);
    noTempFiles(root);
  });

  it('stops when its signal is aborted', async () => {
    const input = new Readable({ read() {} });
    input.push((await streamToBuffer(packTar(src, entries))).subarray(0, 1024 * 1024));
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('interrupted')), 20);
    const { root } = freshCase();
    await expect(extractTar(input, root, { signal: ac.signal })).rejects.toThrow('interrupted');
    noTempFiles(root);
  });
});
