// packTar when the tree moves under it: changed files fail the stream (never a lying header), vanished ones are skipped.
import { afterAll, describe, expect, it } from 'vitest';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { SwmError } from '../../src/errors.js';
import { packTar } from '../../src/tar/pack.js';
import { extractTar } from '../../src/tar/extract.js';
import { contentFor, makeTempDir, scanEntries, streamToBuffer } from './tree-fixture.js';

const tmp = makeTempDir('changes');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let caseNo = 0;
function freshTree(files: Record<string, Buffer | string>): string {
  const root = join(tmp, `tree-${caseNo++}`);
  for (const [rel, data] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), data);
  }
  return root;
}

async function packError(stream: Readable): Promise<unknown> {
  return streamToBuffer(stream).then(() => undefined, (e: unknown) => e);
}

function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

describe('packTar detects files that changed since the scan', () => {
  for (const [label, size] of [['small', 1000], ['big', 3 * 1024 * 1024]] as const) {
    it(`fails the stream naming a ${label} file whose size changed between scan and pack`, async () => {
      const root = freshTree({ 'a.txt': 'a', 'grows.bin': contentFor(1, size), 'z.txt': 'z' });
      const entries = scanEntries(root);
      appendFileSync(join(root, 'grows.bin'), 'more');
      const changed: string[] = [];
      const err = await packError(packTar(root, entries, { onChangedWhileReading: (p) => changed.push(p) }));
      expect(err).toBeInstanceOf(SwmError);
      expect((err as SwmError).message).toMatch(/"grows\.bin" changed while it was being packed/);
      expect(changed).toEqual(['grows.bin']);
    });
  }

  it('fails on a same-size rewrite that moved the mtime', async () => {
    const root = freshTree({ 'same.txt': 'before' });
    const entries = scanEntries(root);
    writeFileSync(join(root, 'same.txt'), 'after!');
    utimesSync(join(root, 'same.txt'), 1_800_000_000, 1_800_000_000);
    const err = await packError(packTar(root, entries));
    expect((err as SwmError).message).toMatch(/"same\.txt" changed/);
  });

  it('fails when an ~8 MiB file grows while it is being read, and emits no complete entry for it', async () => {
    const size = 8 * 1024 * 1024;
    const root = freshTree({ 'log.bin': contentFor(2, size) });
    const entries = scanEntries(root);
    const changed: string[] = [];
    const stream = packTar(root, entries, { readAheadBytes: 1024 * 1024, onChangedWhileReading: (p) => changed.push(p) });
    let writer: NodeJS.Timeout | undefined;
    let received = 0;
    const err = await new Promise<unknown>((resolve) => {
      stream.on('error', resolve);
      stream.on('end', () => resolve(undefined));
      // a slow consumer: one chunk every few milliseconds, while a writer appends to the file
      stream.on('readable', function pull() {
        writer ??= setInterval(() => appendFileSync(join(root, 'log.bin'), 'x'.repeat(100)), 2);
        const chunk = stream.read() as Buffer | null;
        if (chunk) received += chunk.length;
        if (chunk) {
          stream.off('readable', pull);
          setTimeout(() => {
            stream.on('readable', pull);
            pull();
          }, 5);
        }
      });
    });
    clearInterval(writer);
    expect(err).toBeInstanceOf(SwmError);
    expect((err as SwmError).message).toMatch(/"log\.bin" changed/);
    expect(changed).toEqual(['log.bin']);
    expect(received).toBeLessThan(size); // the stream failed before the file's data was all out
  });
});

describe('packTar skips what vanished', () => {
  it('skips a deleted file and a file replaced by a symlink, and the archive stays valid', async () => {
    const root = freshTree({ 'a.txt': 'a', 'gone.txt': 'gone', 'gone-big.bin': contentFor(4, 2 * 1024 * 1024), 'swapped.txt': 'swapped', 'z.txt': 'z' });
    writeFileSync(join(tmp, 'outside-secret'), 'secret');
    const entries = scanEntries(root);
    unlinkSync(join(root, 'gone.txt'));
    unlinkSync(join(root, 'gone-big.bin'));
    unlinkSync(join(root, 'swapped.txt'));
    symlinkSync(join(tmp, 'outside-secret'), join(root, 'swapped.txt'));
    const vanished: string[] = [];
    const archive = await streamToBuffer(packTar(root, entries, { onVanished: (p) => vanished.push(p) }));
    expect(vanished).toEqual(['gone-big.bin', 'gone.txt', 'swapped.txt']);
    expect(archive.includes(Buffer.from('secret'))).toBe(false); // the new symlink was not followed
    const out = join(tmp, `out-${caseNo++}`);
    const result = await extractTar(Readable.from([archive]), out);
    expect(result.entries.map((e) => e.path)).toEqual(['a.txt', 'z.txt']);
    expect(readFileSync(join(out, 'z.txt'), 'utf8')).toBe('z');
  });

  it('skips a small file replaced by a FIFO or a folder since the scan, without blocking on the FIFO', async () => {
    const root = freshTree({ 'a.txt': 'a', 'dir.txt': 'd', 'fifo.txt': 'f', 'z.txt': 'z' });
    const entries = scanEntries(root);
    unlinkSync(join(root, 'fifo.txt'));
    execFileSync('mkfifo', [join(root, 'fifo.txt')]);
    unlinkSync(join(root, 'dir.txt'));
    mkdirSync(join(root, 'dir.txt'));
    const vanished: string[] = [];
    const archive = await streamToBuffer(packTar(root, entries, { onVanished: (p) => vanished.push(p) }));
    expect(vanished).toEqual(['dir.txt', 'fifo.txt']);
    const result = await extractTar(Readable.from([archive]), join(tmp, `out-${caseNo++}`));
    expect(result.entries.map((e) => e.path)).toEqual(['a.txt', 'z.txt']);
  });

  it('reads a symlink target from disk when the entry has none, and skips a symlink that vanished', async () => {
    const root = freshTree({ 'f.txt': 'f' });
    symlinkSync('f.txt', join(root, 'l1'));
    const vanished: string[] = [];
    const archive = await streamToBuffer(packTar(root, [
      { path: 'l1', type: 'symlink', size: 0, mtimeMs: 1_700_000_000_000, mode: 0o777 },
      { path: 'l2', type: 'symlink', size: 0, mtimeMs: 1_700_000_000_000, mode: 0o777 },
    ], { onVanished: (p) => vanished.push(p) }));
    expect(vanished).toEqual(['l2']);
    const result = await extractTar(Readable.from([archive]), join(tmp, `out-${caseNo++}`));
    expect(result.entries).toMatchObject([{ path: 'l1', type: 'symlink', target: 'f.txt' }]);
  });
});

describe('packTar stops cleanly', () => {
  const root = freshTree(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}.bin`, contentFor(i, 512 * 1024)])));
  const entries = scanEntries(root);

  it('fails with the signal reason when aborted, and closes its files', async () => {
    const before = openFdCount();
    const ac = new AbortController();
    const stream = packTar(root, entries, { signal: ac.signal, readAheadBytes: 1024 * 1024 });
    stream.once('data', () => ac.abort(new Error('interrupted by the user')));
    const err = await packError(stream);
    expect((err as Error).message).toBe('interrupted by the user');
    await new Promise((r) => setTimeout(r, 20));
    expect(openFdCount()).toBeLessThanOrEqual(before);
  });

  it('stops reading when the consumer destroys the stream', async () => {
    let pulled = 0;
    const stream = packTar(root, (function* () {
      for (const e of entries) {
        pulled++;
        yield e;
      }
    })(), { readAheadBytes: 1024 * 1024 });
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.destroy();
    const at = pulled;
    await new Promise((r) => setTimeout(r, 50));
    expect(pulled).toBe(at);
    expect(pulled).toBeLessThan(entries.length);
  });

  it('gzip output fails too when a file changes', async () => {
    const r = freshTree({ 'x.bin': contentFor(9, 10_000) });
    const es = scanEntries(r);
    appendFileSync(join(r, 'x.bin'), '!');
    const err = await packError(packTar(r, es, { gzip: true }));
    expect((err as Error).message).toMatch(/"x\.bin" changed/);
  });
});
