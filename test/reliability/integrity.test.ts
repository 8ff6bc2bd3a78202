// Integrity (issue 6, item 4): an object whose bytes changed behind swm's back is caught on pull by its xxh64, reported in
// one line with exit 1, and never written into the workspace or recorded as synced; good objects still arrive.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureBuilt,
  expectOneLine,
  filesUnder,
  S3Reader,
  s3Env,
  sharedS3,
  startCorruptingProxy,
  uniqueDest,
  withSandbox,
  workspaceTree,
  writeTree,
  type Sandbox,
} from './support.js';

let s3: S3Reader;
beforeAll(() => {
  ensureBuilt();
  s3 = new S3Reader(sharedS3());
});
afterAll(() => s3?.close());

const GOOD = 'good content';
const EVIL = 'evil content'; // same length: only the hash can tell

/** stateText is every state file of a workspace, concatenated (what swm believes is synced). */
function stateText(ws: string): string {
  const dir = join(ws, '.swm');
  if (!existsSync(dir)) return '';
  return readdirSync(dir)
    .filter((n) => n.startsWith('state-'))
    .map((n) => readFileSync(join(dir, n), 'utf8'))
    .join('\n');
}

function noTempFiles(ws: string): void {
  expect(filesUnder(ws).filter((p) => p.includes('.swm-tmp-'))).toEqual([]);
}

/** flipBytesInPlace changes bytes of a file without changing its size or its mtime (bit rot as a disk would do it). */
function flipBytesInPlace(path: string, offset: number): void {
  const ref = `${path}.ref`;
  copyFileSync(path, ref);
  execFileSync('touch', ['-r', path, ref]);
  const data = readFileSync(path);
  for (let i = offset; i < offset + 3 && i < data.length; i++) data[i] = data[i]! ^ 0x5a;
  writeFileSync(path, data);
  execFileSync('touch', ['-r', ref, path]); // nanosecond mtime restored: the file: bucket's sidecar still vouches for it
  execFileSync('rm', [ref]);
}

describe.concurrent('S3: object bytes rewritten behind swm, its metadata (and xxh64) kept', () => {
  async function corruptedBucket(sb: Sandbox): Promise<{ dest: string; target: string[] }> {
    sb.setEnv(s3Env(sharedS3()));
    const dest = uniqueDest('int');
    const target = ['-b', `s3:${sharedS3().bucket}`, '-d', dest];
    const origin = sb.dir('origin');
    writeTree(origin, { 'a.txt': GOOD, 'b.txt': 'other file\n', 'sub/c.txt': 'third\n' });
    const pushed = await sb.swm(['sync', 'push', 'demo', origin, ...target, '-q']);
    expect(pushed, pushed.stderr).toMatchObject({ code: 0 });
    const meta = await s3.meta(`${dest}a.txt`);
    expect(meta['swm-hash']).toMatch(/^[0-9a-f]{16}$/);
    await s3.plant(`${dest}a.txt`, EVIL, meta);
    return { dest, target };
  }

  it('a fresh pull reports it (exit 1), writes the rest, and never writes or records the corrupt file', async () => {
    await withSandbox(async (sb) => {
      const { dest, target } = await corruptedBucket(sb);
      const before = await s3.snapshot(dest);
      const ws = sb.path('ws');
      const run = await sb.swm(['sync', 'pull', 'demo', ws, ...target]);
      expectOneLine(run, 1, /^swm: warning: a\.txt: downloaded content does not match its xxh64 \([0-9a-f]{16} ≠ [0-9a-f]{16}\).*nothing written$/);
      expect(Object.keys(workspaceTree(ws)).sort()).toEqual(['b.txt', 'sub/c.txt']);
      noTempFiles(ws);
      expect(stateText(ws)).not.toContain('a.txt');
      expect(existsSync(join(ws, '.swm', 'stamp.json')), 'a failed pull writes no stamp').toBe(false);
      // still caught the next time: the failure was not recorded as synced
      const again = await sb.swm(['sync', 'pull', 'demo', ws, ...target]);
      expectOneLine(again, 1, /a\.txt: downloaded content does not match its xxh64/);
      expect(existsSync(join(ws, 'a.txt'))).toBe(false);
      expect(await s3.snapshot(dest)).toEqual(before);
    });
  });

  it('a pull over the good local copy keeps it byte for byte', async () => {
    await withSandbox(async (sb) => {
      sb.setEnv(s3Env(sharedS3()));
      const dest = uniqueDest('int');
      const target = ['-b', `s3:${sharedS3().bucket}`, '-d', dest];
      const ws = sb.dir('ws');
      writeTree(ws, { 'a.txt': GOOD, 'b.txt': 'other file\n' });
      expect((await sb.swm(['sync', 'push', 'demo', ws, ...target, '-q'])).code).toBe(0);
      // another machine pushes a new version, which then rots in the bucket
      const other = sb.dir('other');
      expect((await sb.swm(['sync', 'pull', 'demo', other, ...target, '-q'])).code).toBe(0);
      writeFileSync(join(other, 'a.txt'), 'newer content, longer');
      expect((await sb.swm(['sync', 'push', 'demo', other, ...target, '-q'])).code).toBe(0);
      const meta = await s3.meta(`${dest}a.txt`);
      await s3.plant(`${dest}a.txt`, 'newer content, LONGER', meta);
      const local = workspaceTree(ws);

      const run = await sb.swm(['sync', 'pull', 'demo', ws, ...target]);
      expectOneLine(run, 1, /a\.txt: downloaded content does not match its xxh64/);
      expect(workspaceTree(ws)).toEqual(local);
      expect(readFileSync(join(ws, 'a.txt'), 'utf8')).toBe(GOOD);
      noTempFiles(ws);
      // push runs the same pull pass first: the corrupt object is reported again, never adopted as the local base
      const pushed = await sb.swm(['sync', 'push', 'demo', ws, ...target]);
      expectOneLine(pushed, 1, /a\.txt: downloaded content does not match its xxh64/);
      expect(readFileSync(join(ws, 'a.txt'), 'utf8')).toBe(GOOD);
    });
  });

  it('--raw pulls verify too', async () => {
    await withSandbox(async (sb) => {
      const { target } = await corruptedBucket(sb);
      const ws = sb.dir('ws');
      writeTree(ws, { 'a.txt': 'local, to be overwritten only by good bytes' });
      const run = await sb.swm(['sync', 'pull', 'demo', ws, ...target, '--raw']);
      expectOneLine(run, 1, /a\.txt: downloaded content does not match its xxh64/);
      expect(readFileSync(join(ws, 'a.txt'), 'utf8')).toBe('local, to be overwritten only by good bytes');
      expect(readFileSync(join(ws, 'b.txt'), 'utf8')).toBe('other file\n');
    });
  });

  it('--json reports the corrupt path as an error in the summary', async () => {
    await withSandbox(async (sb) => {
      const { target } = await corruptedBucket(sb);
      const run = await sb.swm(['sync', 'pull', 'demo', sb.path('ws'), ...target, '--json']);
      expect(run.code).toBe(1);
      const summary = run.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { type: string; errors?: { path: string; message: string }[]; downloaded?: number })
        .find((e) => e.type === 'summary');
      expect(summary).toMatchObject({ downloaded: 2, errors: [{ path: 'a.txt', message: expect.stringMatching(/xxh64/) }] });
    });
  });
});

describe.concurrent('S3: corruption in transit (same object, same ETag, a proxy flips a byte of the body)', () => {
  it('is caught by the xxh64; the same pull without the proxy then succeeds', async () => {
    await withSandbox(async (sb) => {
      const s3c = sharedS3();
      sb.setEnv(s3Env(s3c));
      const dest = uniqueDest('transit');
      const target = ['-b', `s3:${s3c.bucket}`, '-d', dest];
      const origin = sb.dir('origin');
      writeTree(origin, { 'model.bin': Buffer.alloc(4096, 3), 'notes.txt': 'notes\n' });
      expect((await sb.swm(['sync', 'push', 'demo', origin, ...target, '-q'])).code).toBe(0);
      const proxy = await startCorruptingProxy(s3c.endpoint, '/model.bin');
      try {
        const ws = sb.path('ws');
        const run = await sb.swm(['sync', 'pull', 'demo', ws, ...target], { env: { AWS_ENDPOINT_URL: proxy.url } });
        expect(proxy.corrupted()).toBeGreaterThan(0);
        expectOneLine(run, 1, /model\.bin: downloaded content does not match its xxh64/);
        expect(Object.keys(workspaceTree(ws))).toEqual(['notes.txt']);
        noTempFiles(ws);
        const direct = await sb.swm(['sync', 'pull', 'demo', ws, ...target]);
        expect(direct, direct.stderr).toMatchObject({ code: 0, stderr: '' });
        expect(readFileSync(join(ws, 'model.bin'))).toEqual(Buffer.alloc(4096, 3));
      } finally {
        await proxy.close();
      }
    });
  });
});

describe.concurrent('file: bucket: bit rot in an object (size and nanosecond mtime unchanged)', () => {
  it.each([
    ['a small file (read whole)', 'small.txt', Buffer.from('x'.repeat(5000)), 100],
    ['a big file (streamed)', 'big.bin', Buffer.alloc(3 * 1024 * 1024, 9), 2 * 1024 * 1024],
    // at or above RANGED_DOWNLOAD_MIN (32 MiB): parallel ranged GETs, hashed in order; the damage sits in the third part
    ['a huge file (ranged GETs)', 'huge.bin', Buffer.alloc(40 * 1024 * 1024, 7), 20 * 1024 * 1024],
  ])('%s is reported and not written; the rest arrives', async (_title, name, content, offset) => {
    await withSandbox(async (sb) => {
      const bucketDir = sb.path('bucket');
      const target = ['-b', `file:${bucketDir}`, '-d', 'team/run/'];
      const origin = sb.dir('origin');
      writeTree(origin, { [name]: content, 'fine.txt': 'fine\n' });
      expect((await sb.swm(['sync', 'push', 'demo', origin, ...target, '-q'])).code).toBe(0);
      const dataFile = join(bucketDir, 'objects', 'team%', 'run%', name);
      const mtimeNs = statSync(dataFile, { bigint: true }).mtimeNs;
      flipBytesInPlace(dataFile, offset);
      expect(statSync(dataFile, { bigint: true }).mtimeNs).toBe(mtimeNs);

      const ws = sb.dir('ws');
      writeTree(ws, { 'mine.txt': 'mine\n' });
      const run = await sb.swm(['sync', 'pull', 'demo', ws, ...target]);
      expectOneLine(run, 1, new RegExp(`${name.replace('.', '\\.')}: downloaded content does not match its xxh64`));
      expect(Object.keys(workspaceTree(ws)).sort()).toEqual(['fine.txt', 'mine.txt']);
      noTempFiles(ws);
      expect(stateText(ws)).not.toContain(name);
    });
  });
});

describe.concurrent('pull --tar: a rotten snapshot', () => {
  /** pushTarSnapshot pushes `files` as a tar snapshot to a file: bucket; returns the target flags and the tar object's file. */
  async function pushTarSnapshot(sb: Sandbox, files: Record<string, string | Buffer>): Promise<{ target: string[]; tarFile: string }> {
    const bucketDir = sb.path('bucket');
    const target = ['-b', `file:${bucketDir}`, '-d', 'team/tar/'];
    const origin = sb.dir('origin');
    writeTree(origin, files);
    expect((await sb.swm(['sync', 'push', 'demo', origin, ...target, '--tar', '-q'])).code).toBe(0);
    return { target, tarFile: join(bucketDir, 'objects', 'team%', 'tar.tar') };
  }

  /** rotAfter flips bytes of the tar object `into` bytes past where `marker` starts in it (size and mtime kept). */
  function rotAfter(tarFile: string, marker: Buffer, into: number): void {
    const at = readFileSync(tarFile).indexOf(marker);
    expect(at, 'the marker is in the tar').toBeGreaterThan(0);
    flipBytesInPlace(tarFile, at + into);
  }

  /** tarStateText is the workspace's tar state files, concatenated (what swm believes the last tar pull wrote). */
  function tarStateText(ws: string): string {
    const dir = join(ws, '.swm');
    return readdirSync(dir)
      .filter((n) => n.startsWith('tar-state-'))
      .map((n) => readFileSync(join(dir, n), 'utf8'))
      .join('\n');
  }

  const WEIGHTS = Buffer.alloc(100_000, 5);

  it('stops at the damaged file before writing it (exit 1 naming it): a good local copy stays byte for byte, nothing damaged lands', async () => {
    await withSandbox(async (sb) => {
      const { target, tarFile } = await pushTarSnapshot(sb, { 'a.txt': 'first, intact\n', 'weights.bin': WEIGHTS, 'z.txt': 'after the damage\n' });
      // a workspace that already holds the good snapshot, pulled before the object rots
      const ws = sb.path('ws');
      expect((await sb.swm(['sync', 'pull', 'demo', ws, ...target, '--tar', '-q'])).code).toBe(0);
      const local = workspaceTree(ws);
      const localState = tarStateText(ws);
      expect(localState).toMatch(/weights\.bin/);
      rotAfter(tarFile, WEIGHTS.subarray(0, 512), 50_000);

      const line = /^swm: team\/tar\.tar: "weights\.bin" does not match its xxh64 \([0-9a-f]{16} ≠ [0-9a-f]{16}\): the snapshot is corrupt; nothing written for it/;
      const run = await sb.swm(['sync', 'pull', 'demo', ws, ...target, '--tar']);
      expectOneLine(run, 1, line);
      expect(workspaceTree(ws)).toEqual(local);
      expect(readFileSync(join(ws, 'weights.bin')).equals(WEIGHTS)).toBe(true);
      expect(tarStateText(ws), 'the state still describes the good pull').toBe(localState);
      noTempFiles(ws);

      // a fresh workspace gets the file before the damage (verified), neither the damaged file nor anything after it
      const fresh = sb.dir('fresh');
      const again = await sb.swm(['sync', 'pull', 'demo', fresh, ...target, '--tar']);
      expectOneLine(again, 1, line);
      expect(Object.keys(workspaceTree(fresh))).toEqual(['a.txt']);
      expect(readFileSync(join(fresh, 'a.txt'), 'utf8')).toBe('first, intact\n');
      expect(existsSync(join(fresh, '.swm', 'stamp.json')), 'no stamp: the pull did not happen').toBe(false);
      expect(existsSync(join(fresh, '.swm', 'tar.json')), 'no snapshot record: the next push --tar is not incremental on it').toBe(false);
      noTempFiles(fresh);
    });
  });

  it('damage outside any file\'s bytes is still caught by the whole object\'s xxh64 (exit 1), and the run is not recorded as a pull', async () => {
    await withSandbox(async (sb) => {
      // the zero padding after z.txt's two bytes: no file's content changes, the archive's does
      const { target, tarFile } = await pushTarSnapshot(sb, { 'weights.bin': WEIGHTS, 'z.txt': 'z\n' });
      rotAfter(tarFile, Buffer.from('z\n\0\0\0\0'), 100);
      const ws = sb.dir('ws');
      const run = await sb.swm(['sync', 'pull', 'demo', ws, ...target, '--tar']);
      expectOneLine(run, 1, /team\/tar\.tar does not match its xxh64 \([0-9a-f]{16} ≠ [0-9a-f]{16}\): the snapshot is corrupt/);
      expect(existsSync(join(ws, '.swm', 'stamp.json')), 'no stamp: the pull did not happen').toBe(false);
      expect(existsSync(join(ws, '.swm', 'tar.json')), 'no snapshot record: the next push --tar is not incremental on it').toBe(false);
      noTempFiles(ws);
    });
  });
});
