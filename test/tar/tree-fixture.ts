// Test fixtures for the tar layer: generate a workspace tree, list it as pack entries, read a tree back for comparison.
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, symlinkSync, utimesSync, lutimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack as tarPack, type Header } from 'tar-stream';
import { compareKeys } from '../../src/keys.js';
import type { TarSourceEntry } from '../../src/tar/pack.js';

/** LONG_NAME is a 150-byte file name (too long for the ustar name field). */
export const LONG_NAME = 'long-' + 'n'.repeat(141) + '.txt';

/** makeTempDir creates a fresh temporary folder. */
export function makeTempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `swm-tar-${label}-`));
}

/** deterministic bytes for file i. */
export function contentFor(i: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  let x = (i * 2654435761) >>> 0;
  for (let k = 0; k < size; k++) {
    x = (x * 1103515245 + 12345) >>> 0;
    buf[k] = x >>> 24;
  }
  return buf;
}

/** buildTree writes the round-trip tree under root and returns it. */
export function buildTree(root: string, opts: { bigFileBytes?: number } = {}): string {
  const base = 1_700_000_000_000;
  let i = 0;
  const file = (rel: string, data: Buffer | string, mode = 0o644) => {
    const abs = join(root, rel);
    mkdirSync(join(abs, '..'), { recursive: true });
    writeFileSync(abs, data);
    chmodSync(abs, mode);
    const t = (base + i * 1001 + 123) / 1000; // milliseconds that are not whole seconds
    utimesSync(abs, t, t);
    i++;
  };
  for (let d = 0; d < 10; d++) {
    for (let s = 0; s < 3; s++) {
      for (let f = 0; f < 10; f++) file(`d${d}/sub${s}/file-${f}.bin`, contentFor(i, (i * 37) % 3000));
    }
  }
  file(`d0/${LONG_NAME}`, 'the long one\n');
  file(`deep/${'segment-'.repeat(8)}a/${'segment-'.repeat(8)}b/${'segment-'.repeat(8)}c/leaf.txt`, 'deep path over 255 bytes\n');
  file('ünïcödé/日本語のファイル.txt', 'unicode\n');
  file('emoji 😀/🎉 party.txt', 'emoji\n');
  file('with space/a b c.txt', 'spaces\n');
  file('exec.sh', '#!/bin/sh\necho hi\n', 0o755);
  file('secret.key', 'private\n', 0o600);
  file('empty-file', '');
  if (opts.bigFileBytes) file('big/checkpoint.bin', contentFor(99, opts.bigFileBytes));
  mkdirSync(join(root, 'empty-dir'));
  mkdirSync(join(root, 'nested/empty/inner'), { recursive: true });
  symlinkSync('d0/sub0/file-0.bin', join(root, 'link-to-file'));
  symlinkSync('../d2', join(root, 'd1/link-to-dir'));
  lutimesSync(join(root, 'link-to-file'), 1_700_000_100.25, 1_700_000_100.25);
  chmodSync(join(root, 'nested/empty'), 0o700);
  for (const [rel, t] of [['empty-dir', 1_600_000_000.5], ['nested/empty/inner', 1_600_000_001.75], ['nested/empty', 1_600_000_002.125], ['d3', 1_600_000_003.999]] as const) {
    utimesSync(join(root, rel), t, t);
  }
  return root;
}

/** scanEntries lists a tree as pack entries: every folder before its contents, names in S3 byte order. */
export function scanEntries(root: string, rel = ''): TarSourceEntry[] {
  const out: TarSourceEntry[] = [];
  const names = readdirSync(join(root, rel)).sort(compareKeys);
  for (const name of names) {
    const path = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(root, path));
    if (st.isSymbolicLink()) {
      out.push({ path, type: 'symlink', size: 0, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777, target: readlinkSync(join(root, path)) });
    } else if (st.isDirectory()) {
      out.push({ path, type: 'dir', size: 0, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 });
      out.push(...scanEntries(root, path));
    } else if (st.isFile()) {
      out.push({ path, type: 'file', size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 });
    }
  }
  return out;
}

/** TreeEntry is what the comparison looks at for one path. */
export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  mtimeMs: number;
  content?: string;
  target?: string;
}

/** readTree describes every path under root (content as base64 for files). */
export function readTree(root: string): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  for (const e of scanEntries(root)) {
    const abs = join(root, e.path);
    const entry: TreeEntry = { type: e.type, mode: e.mode, mtimeMs: e.mtimeMs };
    if (e.type === 'file') entry.content = readFileSync(abs).toString('base64');
    if (e.type === 'symlink') entry.target = e.target;
    out.set(e.path, entry);
  }
  return out;
}

/** streamToBuffer collects a stream. */
export async function streamToBuffer(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** listAll lists every path (recursively, relative) under a folder, including hidden ones. */
export function listAll(root: string): string[] {
  return readdirSync(root, { recursive: true, encoding: 'utf8' }).sort();
}

/** CraftedEntry is one entry of a hand-built archive: any header tar-stream accepts, and the body of a file. */
export type CraftedEntry = { header: Partial<Header> & { name: string }; data?: string | Buffer };

/**
 * craftTar builds an archive with tar-stream directly, so it can hold anything (hostile names, odd types); `open` leaves
 * off the end-of-archive blocks, so another archive can follow.
 */
export async function craftTar(specs: CraftedEntry[], open = false): Promise<Buffer> {
  const p = tarPack();
  const out = streamToBuffer(Readable.from(p as unknown as AsyncIterable<Buffer>));
  for (const s of specs) {
    await new Promise<void>((resolve, reject) => {
      if (s.data !== undefined) p.entry({ mode: 0o644, ...s.header }, s.data, (e) => (e ? reject(e) : resolve()));
      else p.entry({ mode: 0o644, ...s.header }, (e) => (e ? reject(e) : resolve()));
    });
  }
  p.finalize();
  const whole = await out;
  return open ? whole.subarray(0, whole.length - 1024) : whole;
}
