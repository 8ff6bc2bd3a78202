// Per-file xxh64s: packTar reports each file's hash from the bytes it packs; extractTar refuses a file that does not match.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import xxhash from 'xxhash-wasm';
import { SwmError } from '../../src/errors.js';
import { packTar } from '../../src/tar/pack.js';
import { extractTar, TarEntryHashMismatch } from '../../src/tar/extract.js';
import { buildTree, contentFor, listAll, makeTempDir, scanEntries, streamToBuffer } from './tree-fixture.js';

const tmp = makeTempDir('hashes');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const BIG = 3 * 1024 * 1024;

/** xxh64 computed here, independently of swm's hash module. */
async function xxh64(data: Buffer): Promise<string> {
  const { create64 } = await xxhash();
  return create64().update(data).digest().toString(16).padStart(16, '0');
}

let caseNo = 0;
function freshDir(label: string, files: Record<string, Buffer | string> = {}): string {
  const root = join(tmp, `${label}-${caseNo++}`);
  mkdirSync(root, { recursive: true });
  for (const [rel, data] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), data);
  }
  return root;
}

/** packWithHashes packs a whole tree and collects what the packer reports per file. */
async function packWithHashes(root: string): Promise<{ tar: Buffer; hashes: Map<string, string>; calls: number }> {
  const hashes = new Map<string, string>();
  let calls = 0;
  const tar = await streamToBuffer(
    packTar(root, scanEntries(root), {
      onFileHashed: (path, hash) => {
        calls++;
        hashes.set(path, hash);
      },
    }),
  );
  return { tar, hashes, calls };
}

/** corruptAt flips a few bytes of a copy of the archive where `content` (a file's data) starts, plus `into` bytes. */
function corruptAt(tar: Buffer, content: Buffer, into: number): Buffer {
  const at = tar.indexOf(content);
  expect(at, 'the file data is in the archive').toBeGreaterThan(0);
  const bad = Buffer.from(tar);
  for (let i = at + into; i < at + into + 3; i++) bad[i] = bad[i]! ^ 0x5a;
  return bad;
}

async function extractError(archive: Buffer, root: string, expectedHashes?: ReadonlyMap<string, string>): Promise<unknown> {
  return extractTar(Readable.from([archive]), root, { expectedHashes }).then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('packTar onFileHashed', () => {
  it('reports the xxh64 of every regular file (small and big, read in chunks) exactly once, and nothing for folders or symlinks', async () => {
    const root = buildTree(freshDir('tree'), { bigFileBytes: BIG });
    const { hashes, calls } = await packWithHashes(root);
    const files = scanEntries(root).filter((e) => e.type === 'file');
    expect(calls).toBe(files.length);
    expect([...hashes.keys()].sort()).toEqual(files.map((e) => e.path).sort());
    for (const f of files) expect(hashes.get(f.path), f.path).toBe(await xxh64(readFileSync(join(root, f.path))));
    expect(hashes.get('big/checkpoint.bin')).toBe(await xxh64(contentFor(99, BIG)));
    expect(hashes.get('empty-file')).toBe('ef46db3751d8e999'); // xxh64 of nothing
  });
});

describe('extractTar expectedHashes', () => {
  it('extracts an intact archive and reports each file with the hash of what it wrote', async () => {
    const src = buildTree(freshDir('src'), { bigFileBytes: BIG });
    const { tar, hashes } = await packWithHashes(src);
    const dest = freshDir('dest');
    const result = await extractTar(Readable.from([tar]), dest, { expectedHashes: hashes });
    const files = scanEntries(src).filter((e) => e.type === 'file');
    expect(scanEntries(dest).filter((e) => e.type === 'file').map((e) => e.path)).toEqual(files.map((e) => e.path));
    for (const f of files) expect(readFileSync(join(dest, f.path)).equals(readFileSync(join(src, f.path))), f.path).toBe(true);
    const reported = new Map(result.entries.filter((e) => e.type === 'file').map((e) => [e.path, e.hash]));
    expect(reported).toEqual(hashes);
  });

  for (const [label, content, into] of [
    ['small (read whole)', contentFor(7, 5000), 100],
    ['big (streamed to its temp file)', contentFor(8, BIG), 2 * 1024 * 1024],
  ] as const) {
    it(`refuses a ${label} file whose bytes do not match its xxh64: the good local copy stays, nothing after it is written`, async () => {
      const src = freshDir('src', { 'a.txt': 'first, intact\n', 'b.bin': content, 'c.txt': 'after the damaged one\n' });
      const { tar, hashes } = await packWithHashes(src);
      const damaged = corruptAt(tar, content, into);
      const dest = freshDir('dest', { 'b.bin': content });

      const err = await extractError(damaged, dest, hashes);
      expect(err).toBeInstanceOf(TarEntryHashMismatch);
      const e = err as TarEntryHashMismatch;
      expect(e.exitCode).toBe(1);
      expect(e.path).toBe('b.bin');
      expect(e.expected).toBe(hashes.get('b.bin'));
      expect(e.actual).toMatch(/^[0-9a-f]{16}$/);
      expect(e.actual).not.toBe(e.expected);
      expect(e.message).toMatch(/^"b\.bin" does not match its xxh64 \([0-9a-f]{16} ≠ [0-9a-f]{16}\).*nothing written for it$/);
      // a.txt came first and was verified; b.bin kept its good bytes; c.txt was never reached; no temp file left
      expect(listAll(dest)).toEqual(['a.txt', 'b.bin']);
      expect(readFileSync(join(dest, 'a.txt'), 'utf8')).toBe('first, intact\n');
      expect(readFileSync(join(dest, 'b.bin')).equals(content)).toBe(true);
    });

    it(`without expected hashes the same damaged ${label} file is written (what a plain tar gets)`, async () => {
      const src = freshDir('src', { 'b.bin': content });
      const { tar } = await packWithHashes(src);
      const dest = freshDir('dest');
      const result = await extractTar(Readable.from([corruptAt(tar, content, into)]), dest);
      const written = readFileSync(join(dest, 'b.bin'));
      expect(written.equals(content)).toBe(false);
      expect(result.entries[0]).toMatchObject({ path: 'b.bin', hash: await xxh64(written) });
    });
  }

  it('refuses a file the list does not name, writing nothing for it', async () => {
    const src = freshDir('src', { 'a.txt': 'listed\n', 'extra.txt': 'not listed\n' });
    const { tar, hashes } = await packWithHashes(src);
    hashes.delete('extra.txt');
    const dest = freshDir('dest');
    const err = await extractError(tar, dest, hashes);
    expect(err).toBeInstanceOf(SwmError);
    expect((err as SwmError).exitCode).toBe(1);
    expect((err as SwmError).message).toMatch(/^"extra\.txt" has no xxh64 in the snapshot's list.*nothing written for it$/);
    expect(listAll(dest)).toEqual(['a.txt']);
  });
});
