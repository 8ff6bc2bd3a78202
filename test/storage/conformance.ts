// The storage conformance suite: one set of behaviours every Storage backend (file:, S3) must show, run by each backend's test file.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwmError } from '../../src/errors.js';
import { compareKeys } from '../../src/keys.js';
import { storageErrorCode } from '../../src/storage/storage-error.js';
import { INVALID_RANGE, NO_SUCH_KEY, PRECONDITION_FAILED, type ObjectMeta, type Storage } from '../../src/storage/types.js';

/** StorageUnderTest is what a backend's test file hands the suite: a storage on an empty bucket (or prefix) and its cleanup. */
export interface StorageUnderTest {
  storage: Storage;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

/** readAll drains a stream into one Buffer. */
export async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

/** listAll collects a listing. */
export async function listAll(storage: Storage, prefix: string) {
  const out = [];
  for await (const o of storage.list(prefix)) out.push(o);
  return out;
}

/** chunked streams a buffer in pieces of `size` bytes, like a file read stream. */
export function chunked(data: Buffer, size = MiB): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

/** failingStream yields `before` bytes and then errors with "disk on fire". */
export function failingStream(before: number): Readable {
  return Readable.from(
    (async function* () {
      const chunk = randomBytes(Math.min(before, MiB));
      for (let sent = 0; sent < before; sent += chunk.length) yield chunk.subarray(0, Math.min(chunk.length, before - sent));
      throw new Error('disk on fire');
    })(),
  );
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** putKeys writes many small objects with bounded concurrency. */
async function putKeys(storage: Storage, keys: string[], concurrency = 32): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        await storage.put(key, Buffer.from(key), { meta: {} });
      }
    }),
  );
}

/** ConformanceOptions describe known limits of the server behind a backend. */
export interface ConformanceOptions {
  /**
   * false when the server cannot list keys below a key that is itself an object (`a` and `a/b`): MinIO stores both but
   * its listing hides `a/b`. S3 and the file: backend support it, so the default is true.
   */
  objectsUnderObjects?: boolean;
  /** the keys per listing page the storage was opened with, when its listing pages (S3): the odd-keys case spans several pages. */
  listPageSize?: number;
}

/** defineStorageConformance registers the suite for one backend; `make` gives a storage over an empty bucket. */
export function defineStorageConformance(name: string, make: () => Promise<StorageUnderTest>, options: ConformanceOptions = {}): void {
  const overlap = options.objectsUnderObjects ?? true;
  /** usable drops keys that are also a prefix of another key in the set when the server cannot list those. */
  const usable = (names: string[]) => (overlap ? names : names.filter((n) => !names.some((m) => m.startsWith(`${n}/`))));
  describe(`storage conformance: ${name}`, () => {
    let sut: StorageUnderTest;
    let s: Storage;
    let counter = 0;
    /** fresh gives each test its own key prefix. */
    const fresh = () => `t${++counter}-${randomBytes(3).toString('hex')}/`;

    beforeAll(async () => {
      sut = await make();
      s = sut.storage;
      await s.check();
    });
    afterAll(async () => {
      await sut?.cleanup();
    });

    it('round-trips Buffer, stream, empty and binary bodies, and put returns the etag head and list report', async () => {
      const p = fresh();
      const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const bodies: [string, Buffer, 'buffer' | 'stream'][] = [
        [`${p}buffer.txt`, Buffer.from('hello buffer\n'), 'buffer'],
        [`${p}stream.txt`, Buffer.from('hello stream\n'.repeat(1000)), 'stream'],
        [`${p}empty`, Buffer.alloc(0), 'buffer'],
        [`${p}empty-stream`, Buffer.alloc(0), 'stream'],
        [`${p}binary.bin`, Buffer.concat([binary, randomBytes(70_000), binary]), 'stream'],
      ];
      const etags = new Map<string, string>();
      for (const [key, data, kind] of bodies) {
        const body = kind === 'buffer' ? data : chunked(data, 4096);
        const { etag } = await s.put(key, body, { size: data.length, meta: {} });
        expect(etag).toBeTruthy();
        etags.set(key, etag);
      }
      for (const [key, data] of bodies) {
        const { info, body } = await s.get(key);
        expect(sha(await readAll(body))).toBe(sha(data));
        expect(info.size).toBe(data.length);
        expect(info.etag).toBe(etags.get(key));
        const head = await s.head(key);
        expect(head?.size).toBe(data.length);
        expect(head?.etag).toBe(etags.get(key));
      }
      const listed = await listAll(s, p);
      expect(listed.map((o) => [o.key, o.size, o.etag])).toEqual(
        [...bodies].sort((a, b) => compareKeys(a[0], b[0])).map(([k, d]) => [k, d.length, etags.get(k)]),
      );
      expect(listed.every((o) => typeof o.lastModified === 'number' && o.lastModified > Date.now() - 3_600_000)).toBe(true);
    });

    it('round-trips metadata through head and get', async () => {
      const p = fresh();
      const metas: ObjectMeta[] = [
        { hash: '0123456789abcdef', mtimeMs: 1_732_360_000_123, mode: 0o644, type: 'file' },
        { hash: 'fedcba9876543210', mtimeMs: 1_600_000_000_000.5, mode: 0o755 },
        { type: 'symlink', mode: 0o777, mtimeMs: 0 },
        { type: 'dir', mode: 0o700 },
        {},
      ];
      for (const [i, meta] of metas.entries()) await s.put(`${p}m${i}`, Buffer.from(`m${i}`), { meta });
      for (const [i, meta] of metas.entries()) {
        expect((await s.head(`${p}m${i}`))?.meta).toEqual(meta);
        const { info, body } = await s.get(`${p}m${i}`);
        expect(info.meta).toEqual(meta);
        expect((await readAll(body)).toString()).toBe(`m${i}`);
      }
    });

    it('gives a rewritten object a new etag and the new meta', async () => {
      const p = fresh();
      const key = `${p}file`;
      const seen = new Set<string>();
      for (let i = 0; i < 5; i++) {
        // same size every time: the etag must still change
        const { etag } = await s.put(key, Buffer.from(`version ${i}`), { meta: { hash: `000000000000000${i}` } });
        expect(seen.has(etag)).toBe(false);
        seen.add(etag);
        const head = await s.head(key);
        expect(head?.etag).toBe(etag);
        expect(head?.meta?.hash).toBe(`000000000000000${i}`);
      }
      expect((await readAll((await s.get(key)).body)).toString()).toBe('version 4');
    });

    it('reports missing objects: head gives undefined, get rejects with NoSuchKey (exit 1)', async () => {
      const p = fresh();
      expect(await s.head(`${p}nope`)).toBeUndefined();
      expect(await s.head(`${p}dir/nope`)).toBeUndefined();
      const err = await s.get(`${p}nope`).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SwmError);
      expect((err as SwmError).exitCode).toBe(1);
      expect(storageErrorCode(err)).toBe(NO_SUCH_KEY);
      expect((err as Error).message).not.toContain('\n');
    });

    it('serves byte ranges and reports the full size', async () => {
      const p = fresh();
      const data = randomBytes(1000);
      await s.put(`${p}r`, data, { meta: { hash: 'aaaaaaaaaaaaaaaa' } });
      const mid = await s.get(`${p}r`, { start: 10, end: 20 });
      expect(await readAll(mid.body)).toEqual(data.subarray(10, 20));
      expect(mid.info.size).toBe(1000);
      expect(mid.info.meta?.hash).toBe('aaaaaaaaaaaaaaaa');
      const tail = await s.get(`${p}r`, { start: 990, end: 5000 });
      expect(await readAll(tail.body)).toEqual(data.subarray(990));
      const one = await s.get(`${p}r`, { start: 999, end: 1000 });
      expect(await readAll(one.body)).toEqual(data.subarray(999));
      await expect(s.get(`${p}r`, { start: 1000, end: 1001 })).rejects.toSatisfy((e) => storageErrorCode(e) === INVALID_RANGE);
      await expect(s.get(`${p}r`, { start: 5, end: 5 })).rejects.toSatisfy((e) => storageErrorCode(e) === INVALID_RANGE);
    });

    it('lists in UTF-8 byte order, with objects that are also prefixes and folder markers', async () => {
      const p = fresh();
      const names = usable([
        'a', 'a-b', 'a/b', 'a/b/c', 'a/b-c', 'a0', 'a b', 'A', 'B/x', 'd/', 'd/x', 'd/y/', 'with space.txt', 'ü.txt', 'u.txt',
        '\uFF5E-fullwidth', '\u{1F600}-emoji', 'z', '%41-percent', '.hidden', 'a/.dot', 'tab\there', 'plus+sign', 'q?x=1&y',
        '日本語/ファイル', '~tilde',
      ]);
      await putKeys(s, names.map((n) => p + n), 8);
      const expected = names.map((n) => p + n).sort(compareKeys);
      const listed = (await listAll(s, p)).map((o) => o.key);
      expect(listed).toEqual(expected);
      // the emoji (4-byte UTF-8) sorts after U+FF5E although its UTF-16 form sorts before
      expect(listed.indexOf(`${p}\uFF5E-fullwidth`)).toBeLessThan(listed.indexOf(`${p}\u{1F600}-emoji`));
      expect((await s.head(`${p}d/`))?.size).toBe(`${p}d/`.length);
      for (const n of names) expect((await readAll((await s.get(p + n)).body)).toString()).toBe(p + n);
    });

    it('lists (and deletes) keys with characters XML 1.0 cannot carry, entities, escapes and + across several pages exactly', async () => {
      const p = fresh();
      const odd = [
        'ctl\x01\x1f-control', 'cr\rlf\n-line-ends', '\uFFFE-nonchar', 'a+b', 'a b', '  two spaces', 'pct%25%zz%', 'amp&amp;', 'lt<gt>',
        `quote"apos'`, '~*!()', 'semi;eq=comma,q?hash#', 'ü-combining-u\u0308', '\u{1F600}-emoji', '日本語', 'back`tick', 'tab\t', 'del\x7f',
        '\u2028-line-sep', '\u0085-nel', '&#34;entity-like', '%2B', '+', '%',
      ];
      // more than two pages' worth when the storage pages
      const pageSize = options.listPageSize ?? 10;
      const names = Array.from({ length: Math.max(odd.length, 2 * pageSize + 5) }, (_, i) => `${String(i).padStart(3, '0')}/${odd[i % odd.length]}`);
      await putKeys(s, names.map((n) => p + n), 8);
      const listed = await listAll(s, p);
      expect(listed.map((o) => o.key)).toEqual(names.map((n) => p + n).sort(compareKeys));
      expect(listed.every((o) => o.size === Buffer.byteLength(o.key))).toBe(true);
      // a prefix that is itself odd lists just its own keys
      expect((await listAll(s, `${p}001/`)).map((o) => o.key)).toEqual([`${p}${names[1]}`]);
      expect((await listAll(s, `${p}000/ctl\x01`)).map((o) => o.key)).toEqual([`${p}${names[0]}`]);
      for (const o of listed.slice(0, odd.length)) {
        const head = await s.head(o.key);
        expect(head?.etag).toBe(o.etag);
        expect((await readAll((await s.get(o.key)).body)).toString()).toBe(o.key);
      }
      await s.delete(listed.map((o) => o.key));
      expect(await listAll(s, p)).toEqual([]);
    });

    it('lists only keys under a prefix, including a prefix that ends mid-name', async () => {
      const p = fresh();
      const names = usable(['a', 'a-b', 'a/b', 'a/b/c', 'a0', 'ab/c', 'b', 'b/a', 'd/', 'd/x']);
      await putKeys(s, names.map((n) => p + n), 8);
      const keys = async (prefix: string) => (await listAll(s, p + prefix)).map((o) => o.key.slice(p.length));
      const expected = (prefix: string) => names.filter((n) => n.startsWith(prefix)).sort(compareKeys);
      for (const prefix of ['a/', 'a', 'a/b', 'd/', 'b', 'zzz', 'nothing/here/', 'a/b/c', 'ab']) {
        expect(await keys(prefix)).toEqual(expected(prefix));
      }
      expect(expected('a').length).toBeGreaterThanOrEqual(overlap ? 6 : 4);
    });

    it('pages through more than 1,000 keys in order, and deletes more than 1,000 (some missing) in one call', async () => {
      const p = fresh();
      const keys = Array.from({ length: 1100 }, (_, i) => `${p}${i % 3 === 0 ? 'sub/' : ''}k${String(i).padStart(5, '0')}`);
      await putKeys(s, keys);
      const listed = (await listAll(s, p)).map((o) => o.key);
      expect(listed).toEqual([...keys].sort(compareKeys));
      const missing = Array.from({ length: 20 }, (_, i) => `${p}missing-${i}`);
      const keep = `${p}keep`;
      await s.put(keep, Buffer.from('keep'), { meta: {} });
      await s.delete([...missing.slice(0, 10), ...keys, ...missing.slice(10)]);
      expect((await listAll(s, p)).map((o) => o.key)).toEqual([keep]);
      await s.delete([]);
      await s.delete([`${p}never-existed`]);
      expect(await s.head(keep)).toBeDefined();
    });

    it('honours ifNoneMatch: creates a missing key, refuses an existing one with PreconditionFailed', async () => {
      const p = fresh();
      await s.put(`${p}once`, Buffer.from('first'), { meta: { hash: '1111111111111111' }, ifNoneMatch: true });
      const err = await s.put(`${p}once`, Buffer.from('second'), { meta: { hash: '2222222222222222' }, ifNoneMatch: true }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(storageErrorCode(err)).toBe(PRECONDITION_FAILED);
      expect((err as SwmError).exitCode).toBe(1);
      const { info, body } = await s.get(`${p}once`);
      expect((await readAll(body)).toString()).toBe('first');
      expect(info.meta?.hash).toBe('1111111111111111');
    });

    it('uploads ~20 MiB streams of unknown and known size (multipart on S3) with bytes, meta and progress intact', async () => {
      const p = fresh();
      const data = randomBytes(20 * MiB + 12345);
      for (const known of [false, true]) {
        const key = `${p}${known ? 'known' : 'unknown'}.bin`;
        let progress = 0;
        const meta: ObjectMeta = { hash: 'abcdefabcdefabcd', mtimeMs: 1_700_000_000_000, mode: 0o600, type: 'file' };
        const { etag } = await s.put(key, chunked(data), { size: known ? data.length : undefined, meta, onProgress: (n) => (progress = n) });
        expect(progress).toBe(data.length);
        const head = await s.head(key);
        expect(head).toMatchObject({ size: data.length, etag, meta });
        const { body } = await s.get(key);
        expect(sha(await readAll(body))).toBe(sha(data));
      }
    });

    it('leaves no object and no visible partial when the body stream fails, and keeps the old version', async () => {
      const p = fresh();
      await expect(s.put(`${p}small`, failingStream(100_000), { size: 200_000, meta: {} })).rejects.toThrow(/disk on fire/);
      await expect(s.put(`${p}big`, failingStream(18 * MiB), { meta: {} })).rejects.toThrow(/disk on fire/);
      await expect(s.put(`${p}big-known`, failingStream(18 * MiB), { size: 24 * MiB, meta: {} })).rejects.toThrow(/disk on fire/);
      expect(await s.head(`${p}small`)).toBeUndefined();
      expect(await s.head(`${p}big`)).toBeUndefined();
      expect(await s.head(`${p}big-known`)).toBeUndefined();
      await s.put(`${p}old`, Buffer.from('old content'), { meta: { hash: '0000000000000001' } });
      await expect(s.put(`${p}old`, failingStream(50_000), { size: 100_000, meta: { hash: '0000000000000002' } })).rejects.toThrow(
        /disk on fire/,
      );
      const { info, body } = await s.get(`${p}old`);
      expect((await readAll(body)).toString()).toBe('old content');
      expect(info.meta?.hash).toBe('0000000000000001');
      expect((await listAll(s, p)).map((o) => o.key)).toEqual([`${p}old`]);
    });

    it('rejects a body whose length differs from the announced size, storing nothing', async () => {
      const p = fresh();
      await expect(s.put(`${p}short`, chunked(Buffer.alloc(1000, 1), 100), { size: 2000, meta: {} })).rejects.toThrow(/announced/);
      await expect(s.put(`${p}long`, chunked(Buffer.alloc(3000, 1), 100), { size: 2000, meta: {} })).rejects.toThrow(/announced/);
      await expect(s.put(`${p}buffer`, Buffer.alloc(3000, 1), { size: 2000, meta: {} })).rejects.toThrow(/announced/);
      await expect(s.put(`${p}big-short`, chunked(Buffer.alloc(17 * MiB, 1)), { size: 20 * MiB, meta: {} })).rejects.toThrow(/announced/);
      expect(await listAll(s, p)).toEqual([]);
    });

    it('stops a put when its signal aborts, small or multipart, storing nothing', async () => {
      const p = fresh();
      for (const [name, size, fed] of [['small', 10 * MiB, 64 * 1024], ['multipart', undefined, 17 * MiB]] as const) {
        const controller = new AbortController();
        const body = new Readable({ read() {} });
        const part = randomBytes(MiB);
        for (let sent = 0; sent < fed; sent += MiB) body.push(part.subarray(0, Math.min(MiB, fed - sent)));
        let progress = 0;
        const put = s.put(`${p}${name}`, body, { size, meta: {}, signal: controller.signal, onProgress: (n) => (progress = n) });
        for (let i = 0; i < 200 && progress < Math.min(fed, 8 * MiB) && name === 'multipart'; i++) await sleep(25);
        await sleep(50);
        controller.abort();
        await expect(put).rejects.toSatisfy((e) => (e as Error).name === 'AbortError');
        expect(await s.head(`${p}${name}`)).toBeUndefined();
      }
      await expect(s.put(`${p}pre`, Buffer.from('x'), { meta: {}, signal: AbortSignal.abort() })).rejects.toSatisfy(
        (e) => (e as Error).name === 'AbortError',
      );
      expect(await listAll(s, p)).toEqual([]);
    });

    it('abortStaleUploads aborts an upload in progress under the prefix only when it is old enough', async () => {
      const p = fresh();
      const body = new Readable({ read() {} });
      const part = randomBytes(MiB);
      let progress = 0;
      const put = s.put(`${p}slow.bin`, body, { size: 24 * MiB, meta: {}, onProgress: (n) => (progress = n) });
      const failed = put.then(
        () => undefined,
        (e: unknown) => e,
      );
      // feed 17 MiB: enough for S3 to have started a multipart upload and sent parts
      for (let i = 0; i < 17; i++) body.push(part);
      for (let i = 0; i < 200 && progress < 8 * MiB; i++) await sleep(50);
      expect(progress).toBeGreaterThanOrEqual(8 * MiB);
      await sleep(1100); // S3 records upload start times in whole seconds on some servers
      expect(await s.abortStaleUploads(p, 3_600_000)).toBe(0);
      expect(await s.abortStaleUploads(`${p}other/`, 0)).toBe(0);
      expect(await s.abortStaleUploads(p, 500)).toBeGreaterThanOrEqual(1);
      for (let i = 0; i < 7; i++) body.push(part);
      body.push(null);
      expect(await failed).toBeInstanceOf(Error);
      expect(await s.head(`${p}slow.bin`)).toBeUndefined();
      expect(await s.abortStaleUploads(p, 0)).toBe(0);
    });
  });
}
