// Round trip of a generated tree through packTar and extractTar, and GNU tar reading what packTar writes.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { packTar, type TarSourceEntry } from '../../src/tar/pack.js';
import { extractTar } from '../../src/tar/extract.js';
import { formatPaxTime, parsePaxTime } from '../../src/tar/pax-time.js';
import { LONG_NAME, buildTree, contentFor, listAll, makeTempDir, readTree, scanEntries, streamToBuffer, type TreeEntry } from './tree-fixture.js';

const tmp = makeTempDir('roundtrip');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const src = buildTree(join(tmp, 'src'), { bigFileBytes: 3 * 1024 * 1024 + 17 });
const entries = scanEntries(src);

/** expectSameTree compares two trees path by path: type, content, permission bits, mtime to the microsecond, targets. */
function expectSameTree(actual: Map<string, TreeEntry>, expected: Map<string, TreeEntry>, opts: { mtimeToleranceMs: number }): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [path, want] of expected) {
    const got = actual.get(path)!;
    expect({ path, type: got.type, mode: got.mode, content: got.content, target: got.target }).toEqual({
      path, type: want.type, mode: want.mode, content: want.content, target: want.target,
    });
    expect(Math.abs(got.mtimeMs - want.mtimeMs), `mtime of ${path}: ${got.mtimeMs} vs ${want.mtimeMs}`).toBeLessThan(opts.mtimeToleranceMs);
  }
}

describe('pax mtime records', () => {
  it('formats sub-second times to the microsecond and leaves whole seconds to the ustar field', () => {
    expect(formatPaxTime(1_700_000_000_123)).toBe('1700000000.123');
    expect(formatPaxTime(1_700_000_000_123.4567)).toBe('1700000000.123457');
    expect(formatPaxTime(1_700_000_000_000)).toBeUndefined();
    expect(parsePaxTime('1700000000.123')).toBe(1_700_000_000_123);
    expect(parsePaxTime('1700000000.123456789')).toBeCloseTo(1_700_000_000_123.456, 3);
    expect(parsePaxTime('1700000000')).toBe(1_700_000_000_000);
    expect(parsePaxTime('12abc')).toBeUndefined();
  });
});

describe('packTar → extractTar', () => {
  it('round-trips contents, modes, mtimes, symlinks, long and unicode names and empty folders', async () => {
    expect(entries.length).toBeGreaterThan(300);
    const dest = join(tmp, 'out-plain');
    const result = await extractTar(packTar(src, entries), dest);
    expectSameTree(readTree(dest), readTree(src), { mtimeToleranceMs: 0.002 });
    expect(result.files).toBe(entries.filter((e) => e.type === 'file').length);
    expect(result.dirs).toBe(entries.filter((e) => e.type === 'dir').length);
    expect(result.symlinks).toBe(2);
    expect(result.bytes).toBe(entries.reduce((n, e) => n + (e.type === 'file' ? e.size : 0), 0));
    expect(result.entries.map((e) => e.path)).toEqual(entries.map((e) => e.path));
    const link = result.entries.find((e) => e.path === 'd1/link-to-dir')!;
    expect(link).toMatchObject({ type: 'symlink', target: '../d2' });
    expect(statSync(join(dest, 'exec.sh')).mode & 0o777).toBe(0o755);
    expect(statSync(join(dest, 'secret.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dest, 'nested/empty')).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(dest, 'd0', LONG_NAME), 'utf8')).toBe('the long one\n');
    expect(readFileSync(join(dest, 'big/checkpoint.bin')).equals(contentFor(99, 3 * 1024 * 1024 + 17))).toBe(true);
    expect(listAll(dest).some((p) => p.includes('.swm-tmp-'))).toBe(false);
  });

  it('works with a tiny read-ahead budget and with gzip, and extract recognises gzip by itself', async () => {
    const dest = join(tmp, 'out-gzip');
    const gz = await streamToBuffer(packTar(src, entries, { readAheadBytes: 1, gzip: true }));
    expect(gz[0]).toBe(0x1f);
    expect(gz[1]).toBe(0x8b);
    await extractTar(Readable.from([gz]), dest);
    expectSameTree(readTree(dest), readTree(src), { mtimeToleranceMs: 0.002 });
  });

  it('accepts entries as an async iterable and overwrites existing files in place', async () => {
    const dest = join(tmp, 'out-async');
    async function* gen(): AsyncGenerator<TarSourceEntry> {
      yield* entries;
    }
    await extractTar(packTar(src, gen()), dest);
    // a second extraction over the first replaces every file and reuses every folder
    const again = await extractTar(packTar(src, entries, { readAheadBytes: 4096 }), dest);
    expect(again.files).toBe(entries.filter((e) => e.type === 'file').length);
    expectSameTree(readTree(dest), readTree(src), { mtimeToleranceMs: 0.002 });
  });

  it('packs entries given in batches (arrays, as the scan yields them) into the same bytes as one by one', async () => {
    async function* batches(): AsyncGenerator<TarSourceEntry[]> {
      for (let i = 0; i < entries.length; i += 37) yield entries.slice(i, i + 37);
      yield [];
    }
    const batched = await streamToBuffer(packTar(src, batches()));
    expect(batched.equals(await streamToBuffer(packTar(src, entries)))).toBe(true);
    const dest = join(tmp, 'out-batches');
    await extractTar(Readable.from([batched]), dest);
    expectSameTree(readTree(dest), readTree(src), { mtimeToleranceMs: 0.002 });
  });

  it('stays within its read-ahead budget while nobody reads the stream', async () => {
    const many = makeTempDir('budget');
    const big: TarSourceEntry[] = [];
    for (let i = 0; i < 200; i++) {
      const data = contentFor(i, 64 * 1024);
      const path = `f${String(i).padStart(3, '0')}`;
      (await import('node:fs')).writeFileSync(join(many, path), data);
      const st = statSync(join(many, path));
      big.push({ path, type: 'file', size: st.size, mtimeMs: st.mtimeMs, mode: 0o644 });
    }
    let pulled = 0;
    function* counting(): Generator<TarSourceEntry> {
      for (const e of big) {
        pulled++;
        yield e;
      }
    }
    const stream = packTar(many, counting(), { readAheadBytes: 1024 * 1024 });
    await new Promise((r) => setTimeout(r, 50));
    expect(pulled).toBe(0); // nothing is read before the stream is read
    const first = await new Promise<Buffer>((resolve) => stream.once('readable', () => resolve(stream.read() as Buffer)));
    expect(first.length).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 200));
    // 200 × 64 KiB = 12.5 MiB; read-ahead (1 MiB) + tar-stream's queue (2 MiB) + the stream's buffer (1 MiB) hold far less
    expect(pulled).toBeGreaterThan(0);
    expect(pulled).toBeLessThan(120);
    const rest = await streamToBuffer(stream);
    expect(first.length + rest.length).toBeGreaterThan(200 * 64 * 1024);
    rmSync(many, { recursive: true, force: true });
  });
});

describe('GNU tar reads what packTar writes', () => {
  const gnuTar = spawnSync('tar', ['--version']).status === 0;

  it('lists every entry with its full name', async () => {
    expect(gnuTar, 'GNU tar is needed for this test').toBe(true);
    const archive = await streamToBuffer(packTar(src, entries));
    const listed = execFileSync('tar', ['tf', '-'], { input: archive, maxBuffer: 64 * 1024 * 1024 }).toString('utf8').split('\n').filter(Boolean);
    expect(listed.map((n) => n.replace(/\/$/, ''))).toEqual(entries.map((e) => e.path));
    expect(listed).toContain(`d0/${LONG_NAME}`);
    expect(listed).toContain('emoji 😀/🎉 party.txt');
  });

  it('extracts long and unicode names, symlinks, modes and sub-second mtimes', async () => {
    const archive = await streamToBuffer(packTar(src, entries, { gzip: 6 }));
    const dest = join(tmp, 'out-gnu');
    mkdirSync(dest);
    execFileSync('tar', ['xzf', '-', '-C', dest], { input: archive, maxBuffer: 64 * 1024 * 1024 });
    expectSameTree(readTree(dest), readTree(src), { mtimeToleranceMs: 0.002 });
  });

  it('is read back by extractTar when GNU tar wrote it (pax format, "./" prefix)', async () => {
    const archive = execFileSync('tar', ['--format=posix', '-cf', '-', '-C', src, '.'], { maxBuffer: 64 * 1024 * 1024 });
    const dest = join(tmp, 'out-from-gnu');
    await extractTar(Readable.from([archive]), dest);
    const want = readTree(src);
    const got = readTree(dest);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [path, w] of want) expect(got.get(path)?.content, path).toBe(w.content);
  });
});
