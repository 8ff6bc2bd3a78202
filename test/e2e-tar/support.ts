// End-to-end support for the `--tar` tests: the snapshot's keys, GNU tar as an independent reader, crafted tars, deep tree snapshots.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { pack as tarPack, type Header } from 'tar-stream';
import { expect } from 'vitest';
import xxhash from 'xxhash-wasm';
import { compareKeys } from '../../src/keys.js';
import { manyFilesTree, standardTree, type Backend, type TreeSpec } from '../support/e2e.js';

/** tarKey is where `push --tar` puts the base for a dest: "e2e/abc/" → "e2e/abc.tar". */
export function tarKey(dest: string): string {
  return dest.replace(/\/+$/, '') + '.tar';
}

/** manifestKey is the snapshot's manifest beside the base. */
export function manifestKey(dest: string): string {
  return `${tarKey(dest)}.d/manifest.json`;
}

/** ManifestView is the part of the manifest the tests read. */
export interface ManifestView {
  version: number;
  base: { key: string; etag: string; size: number; hash: string; files: number };
  layers: { key: string; etag: string; size: number; hash: string; files: number; deleted?: string[] }[];
}

/** readManifest reads the manifest through the independent reader (undefined when there is none). */
export async function readManifest(backend: Backend): Promise<ManifestView | undefined> {
  const o = await backend.read(manifestKey(backend.dest));
  return o && (JSON.parse(o.body.toString('utf8')) as ManifestView);
}

/** layerObjects lists the layer tars stored beside the base, with their sizes. */
export async function layerObjects(backend: Backend): Promise<{ key: string; size: number }[]> {
  const keys = (await backend.listKeys(`${tarKey(backend.dest)}.d/`)).filter((k) => k.endsWith('.tar'));
  const out: { key: string; size: number }[] = [];
  for (const key of keys) out.push({ key, size: (await backend.read(key))!.body.length });
  return out;
}

/** gnuTar runs GNU tar with `input` on stdin; returns its exit code and output. */
export function gnuTar(args: string[], input: Buffer, cwd?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('tar', args, { input, cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C.UTF-8' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** gnuTarList lists a tar's member names with GNU tar (folders keep their trailing '/'). */
export function gnuTarList(tar: Buffer): string[] {
  const r = gnuTar(['-tf', '-'], tar);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split('\n').filter((l) => l.length > 0);
}

/** gnuTarExtract extracts a tar into a new folder with GNU tar (failing the test if tar complains). */
export function gnuTarExtract(tar: Buffer, into: string): void {
  mkdirSync(into, { recursive: true });
  const r = gnuTar(['-xpf', '-', '--no-same-owner'], tar, into);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
}

/** CraftedEntry is one entry of a hand-made (possibly hostile) tar. */
export type CraftedEntry = Partial<Header> & { name: string; body?: string };

/** craftTar builds a tar with tar-stream directly (not swm's packer), entries written exactly as given. */
export async function craftTar(entries: CraftedEntry[]): Promise<Buffer> {
  const p = tarPack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    p.on('end', () => resolve());
    p.on('error', reject);
  });
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      const h = { type: 'file' as const, mode: 0o644, mtime: new Date(1_700_000_000_000), ...header };
      if (body !== undefined) p.entry(h, body, (e) => (e ? reject(e) : resolve()));
      else p.entry(h, (e) => (e ? reject(e) : resolve())).end(undefined);
    });
  }
  p.finalize();
  await ended;
  return Buffer.concat(chunks);
}

/** LONG_NAME is a 150-byte file name: more than the 100 bytes a ustar name field holds, so it needs a pax record. */
export const LONG_NAME = `long-${'n'.repeat(141)}.txt`;

/** tarTree is the round-trip tree: the standard tree, n small files, long and unicode names, modes, nested folders. */
export function tarTree(n: number): TreeSpec {
  return {
    ...standardTree(),
    ...manyFilesTree(n),
    [`names/${LONG_NAME}`]: 'a name longer than 100 bytes\n',
    [`names/${'deep-folder-name-'.repeat(6)}x/${'another-long-segment-'.repeat(5)}y/leaf.txt`]: 'a path longer than 255 bytes\n',
    'names/ελληνικά/中文/한국어.txt': 'unicode path\n',
    'names/zero-width\u200b and nfd e\u0301.txt': 'odd unicode\n',
    'modes/read-only.txt': { content: 'ro\n', mode: 0o444 },
    'modes/group-write.txt': { content: 'gw\n', mode: 0o664 },
    'modes/private/inside.txt': { content: 'p\n', mode: 0o600 },
    'links/relative-up': { symlink: '../README.md' },
    'links/to-folder': { symlink: '../many' },
  };
}

/** DeepEntry is one path of a deep tree snapshot (folders included, with mode and mtime). */
export interface DeepEntry {
  type: 'file' | 'symlink' | 'dir';
  mode?: number;
  mtimeMs?: number;
  size?: number;
  sha256?: string;
  target?: string;
}

/**
 * readDeepTree snapshots root like e2e's readTree, but also every folder (not only empty ones) with its mode and,
 * when `folderMtimes`, its whole-ms mtime: what a tar round trip keeps and per-file objects do not.
 */
export function readDeepTree(root: string, options: { folderMtimes: boolean }): Record<string, DeepEntry> {
  const out: Record<string, DeepEntry> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort(compareKeys)) {
      const path = rel ? `${rel}/${name}` : name;
      if (path === '.swm') continue;
      const abs = join(root, path);
      const st = lstatSync(abs);
      if (st.isSymbolicLink()) out[path] = { type: 'symlink', target: readlinkSync(abs) };
      else if (st.isDirectory()) {
        out[path + '/'] = { type: 'dir', mode: st.mode & 0o7777, ...(options.folderMtimes ? { mtimeMs: Math.floor(st.mtimeMs) } : {}) };
        walk(path);
      } else {
        out[path] = {
          type: 'file',
          mode: st.mode & 0o7777,
          mtimeMs: Math.floor(st.mtimeMs),
          size: st.size,
          sha256: createHash('sha256').update(readFileSync(abs)).digest('hex'),
        };
      }
    }
  };
  walk('');
  return out;
}

/** expectSameDeepTree compares two trees path by path, folders included (reports the first differing paths readably). */
export function expectSameDeepTree(actual: string, expected: string, options: { folderMtimes: boolean }): void {
  const a = readDeepTree(actual, options);
  const e = readDeepTree(expected, options);
  const differing = [...new Set([...Object.keys(a), ...Object.keys(e)])]
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(e[k]))
    .slice(0, 10)
    .map((k) => ({ path: k, actual: a[k], expected: e[k] }));
  expect(differing).toEqual([]);
}

/** uploadedKeys lists the objects a --json push reports as uploaded ("done" upload events), with their sizes. */
export function uploadedKeys(events: Record<string, unknown>[]): { path: string; size: number }[] {
  return events
    .filter((e) => e.type === 'done' && e.action === 'upload')
    .map((e) => ({ path: String(e.path), size: Number(e.size) }));
}

/** xxh64 of a buffer as 16 hex digits, computed here (not by swm) to check the manifest's hashes. */
export async function xxh64(data: Buffer): Promise<string> {
  const { create64 } = await xxhash();
  return create64().update(data).digest().toString(16).padStart(16, '0');
}
