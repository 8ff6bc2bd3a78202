// The `file:` backend: the conformance suite plus its own layout, sidecar-consistency and bucket-folder behaviour.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SwmError } from '../../src/errors.js';
import { compareKeys } from '../../src/keys.js';
import { createFileStorage, decodeSegment, encodeSegment } from '../../src/storage/file.js';
import { defineStorageConformance, listAll, readAll } from './conformance.js';

const scratch = mkdtempSync(join(tmpdir(), 'swm-file-storage-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let n = 0;
const newRoot = () => {
  const root = join(scratch, `bucket-${++n}`);
  mkdirSync(root);
  return root;
};

defineStorageConformance('file', async () => {
  const root = newRoot();
  return { storage: createFileStorage(root), cleanup: async () => rmSync(root, { recursive: true, force: true }) };
});

describe('file storage', () => {
  it('stores an object as a plain file under objects/, with folders marked by a trailing %', async () => {
    const root = newRoot();
    const s = createFileStorage(root);
    await s.put('runpod/abc/src/main.py', Buffer.from('print(1)\n'), { meta: { hash: '0123456789abcdef' } });
    expect(readFileSync(join(root, 'objects', 'runpod%', 'abc%', 'src%', 'main.py'), 'utf8')).toBe('print(1)\n');
    expect(readdirSync(join(root, 'objects', 'runpod%', 'abc%', 'src%')).sort()).toEqual(['.main.py%m', 'main.py']);
  });

  it('escapes segments so that ".", "..", empty segments, "%" and NUL keys stay inside and round-trip', async () => {
    for (const seg of ['', '.', '..', '%', '%25', 'a%', '%2F', '%2E', 'x\0y', 'plain']) {
      expect(decodeSegment(encodeSegment(seg))).toBe(seg);
      expect(encodeSegment(seg)).not.toMatch(/^\.{1,2}$|\/|\0|^$/);
    }
    expect(decodeSegment('%41')).toBeUndefined(); // not something encodeSegment produces
    expect(decodeSegment('.x%m')).toBeUndefined();
    const root = newRoot();
    const s = createFileStorage(root);
    const keys = ['x/../y', 'x/./y', 'x//y', '../up', '..', '.', '%', '100%/done', 'nul\0key', 'x/'];
    for (const k of keys) await s.put(k, Buffer.from(k), { meta: {} });
    expect((await listAll(s, '')).map((o) => o.key)).toEqual([...keys].sort(compareKeys));
    for (const k of keys) expect((await readAll((await s.get(k)).body)).toString()).toBe(k);
    expect(readdirSync(root)).toEqual(['objects']);
    await s.delete(keys);
    expect(readdirSync(join(root, 'objects'))).toEqual([]);
  });

  it('removes folders left empty by delete, and keeps folders that still hold objects', async () => {
    const root = newRoot();
    const s = createFileStorage(root);
    await s.put('a/b/c/d.txt', Buffer.from('d'), { meta: {} });
    await s.put('a/keep.txt', Buffer.from('k'), { meta: {} });
    await s.delete(['a/b/c/d.txt']);
    expect(readdirSync(join(root, 'objects', 'a%'))).toEqual(['.keep.txt%m', 'keep.txt']);
    await s.delete(['a/keep.txt']);
    expect(readdirSync(join(root, 'objects'))).toEqual([]);
  });

  it('never reports one version\'s meta with another version\'s bytes while puts race reads', async () => {
    const root = newRoot();
    const s = createFileStorage(root);
    const hashOf = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 150; i++) {
        const body = randomBytes(64 + (i % 3));
        await s.put('race', body, { meta: { hash: hashOf(body) } });
      }
      writing = false;
    })();
    let checked = 0;
    let withMeta = 0;
    while (writing) {
      const got = await s.get('race').catch(() => undefined);
      await new Promise((r) => setImmediate(r)); // let the writer's I/O callbacks run
      if (!got) continue;
      const bytes = await readAll(got.body);
      checked++;
      if (got.info.meta?.hash !== undefined) {
        withMeta++;
        expect(got.info.meta.hash).toBe(hashOf(bytes));
      }
      expect(got.info.size).toBe(bytes.length);
    }
    await writer;
    expect(checked).toBeGreaterThan(10);
    expect(withMeta).toBeGreaterThan(0);
  });

  it('drops meta (and changes the etag) when the data file no longer matches its sidecar', async () => {
    const root = newRoot();
    const s = createFileStorage(root);
    const { etag } = await s.put('k', Buffer.from('one'), { meta: { hash: '1111111111111111' } });
    const path = join(root, 'objects', 'k');
    writeFileSync(path, 'two'); // same size, new content: as a crash between the two renames would leave it
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    const head = await s.head('k');
    expect(head?.meta).toEqual({});
    expect(head?.etag).not.toBe(etag);
    expect((await readAll((await s.get('k')).body)).toString()).toBe('two');
  });

  it('lists files dropped into objects/ by other tools, without meta, and ignores foreign names', async () => {
    const root = newRoot();
    const s = createFileStorage(root);
    mkdirSync(join(root, 'objects', 'in%'), { recursive: true });
    writeFileSync(join(root, 'objects', 'in%', 'dropped.txt'), 'by hand');
    writeFileSync(join(root, 'objects', 'in%', 'weird%41'), 'not canonical');
    mkdirSync(join(root, 'objects', 'plain-folder'));
    writeFileSync(join(root, 'objects', 'plain-folder', 'x'), 'x');
    expect((await listAll(s, '')).map((o) => o.key)).toEqual(['in/dropped.txt']);
    expect(await s.head('in/dropped.txt')).toMatchObject({ size: 7, meta: {} });
  });

  it('abortStaleUploads removes stale temp files and orphaned sidecars under the prefix, not fresh ones', async () => {
    const root = newRoot();
    const s = createFileStorage(root);
    await s.put('p/keep', Buffer.from('x'), { meta: {} });
    const dir = join(root, 'objects', 'p%');
    const old = new Date(Date.now() - 3_600_000);
    writeFileSync(join(dir, '.0123456789abcdef%t'), 'stale');
    utimesSync(join(dir, '.0123456789abcdef%t'), old, old);
    writeFileSync(join(dir, '.fedcba9876543210%t'), 'fresh');
    writeFileSync(join(dir, '.gone%m'), '{}');
    utimesSync(join(dir, '.gone%m'), old, old);
    mkdirSync(join(root, 'objects', 'q%'));
    writeFileSync(join(root, 'objects', 'q%', '.aaaaaaaaaaaaaaaa%t'), 'other prefix');
    utimesSync(join(root, 'objects', 'q%', '.aaaaaaaaaaaaaaaa%t'), old, old);
    expect(await s.abortStaleUploads('p/', 60_000)).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(['.fedcba9876543210%t', '.keep%m', 'keep']);
    expect(existsSync(join(root, 'objects', 'q%', '.aaaaaaaaaaaaaaaa%t'))).toBe(true);
    expect(await s.abortStaleUploads('', 60_000)).toBe(1);
    expect(existsSync(join(root, 'objects', 'q%'))).toBe(false);
  });

  it('check() fails with exit 1 on a missing bucket folder and creates it when allowed; put does not create it', async () => {
    const missing = join(scratch, 'no-such-bucket');
    const s = createFileStorage(missing);
    const err = await s.check().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SwmError);
    expect((err as SwmError).exitCode).toBe(1);
    expect((err as Error).message).toMatch(/^bucket file:.*no-such-bucket does not exist: create the folder/);
    await expect(s.put('x', Buffer.from('x'), { meta: {} })).rejects.toThrow(/does not exist/);
    await expect(listAll(s, '')).rejects.toThrow(/does not exist/);
    expect(existsSync(missing)).toBe(false);

    const created = createFileStorage(missing, { create: true });
    await created.check();
    expect(existsSync(missing)).toBe(true);
    expect(await listAll(created, '')).toEqual([]);
    await created.put('x', Buffer.from('x'), { meta: {} });
    expect(await s.head('x')).toMatchObject({ size: 1 });
  });

  it('check() refuses a bucket path that is a file', async () => {
    const file = join(scratch, 'a-file');
    writeFileSync(file, 'x');
    await expect(createFileStorage(file).check()).rejects.toThrow(/is not a folder/);
  });

  it('refuses keys it cannot store with a one-line error', async () => {
    const s = createFileStorage(newRoot());
    await expect(s.put('', Buffer.from('x'), { meta: {} })).rejects.toThrow(/cannot store/);
    await expect(s.put(`dir/${'x'.repeat(300)}`, Buffer.from('x'), { meta: {} })).rejects.toThrow(/longer than/);
    expect(await s.head(`dir/${'x'.repeat(300)}`)).toBeUndefined();
  });
});
