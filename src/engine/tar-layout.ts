// Where a `--tar` snapshot lives in the bucket and how its manifest reads: `<dest>.tar` beside the prefix (SPEC §4) is the
// base, a full tar any tool can read; incremental pushes add layer tars under `<dest>.tar.d/` and the manifest lists them.
//
// Per-file hashes (DESIGN invariant 6): each part also carries the xxh64 of every regular file in it, computed by the
// packer from the bytes it put in the archive, so pull verifies each file before renaming it into place instead of
// learning only at the end (from the whole object's `hash`) that it wrote damaged files. Where they live is chosen to
// keep the manifest small, since every push, pull and status reads it whole:
// - a part with at most INLINE_FILE_HASHES_MAX files (a typical layer) lists them inline, `fileHashes: {path: xxh64}`;
// - a bigger one (a base of 100,000 files would add ~7 MB to the manifest) stores them in a companion object
//   `<dest>.tar.d/hashes-<8 hex>.json` (`{"version":1,"files":{path: xxh64}}`), named by the part's `hashesKey`, with
//   the companion's own xxh64 in `hashesHash` so a damaged list is refused before anything is extracted. The random
//   name means a push never overwrites the list the current manifest names; the manifest stays the commit point, and
//   the lists of parts it no longer names are deleted with the old layers.
// A part with neither (a manifest from before per-file hashes, or a plain `<dest>.tar` made by another tool with no
// manifest at all) is extracted unverified file by file and checked only as a whole, if its hash is known.
import { randomBytes } from 'node:crypto';
import type { Storage } from '../storage/types.js';
import { failure } from '../errors.js';
import { hashBytes } from './hash.js';

/** INLINE_FILE_HASHES_MAX: a part listing at most this many files keeps their hashes in the manifest itself. */
export const INLINE_FILE_HASHES_MAX = 100;

/** tarObjectKey maps dest "runpod/abc/" to "runpod/abc.tar" (the bucket root's snapshot is "workspace.tar"). */
export function tarObjectKey(dest: string): string {
  const bare = dest.replace(/\/+$/, '');
  return (bare.length > 0 ? bare : 'workspace') + '.tar';
}

/** tarManifestKey is the manifest beside the base: "runpod/abc.tar.d/manifest.json". */
export function tarManifestKey(dest: string): string {
  return `${tarObjectKey(dest)}.d/manifest.json`;
}

/** tarLayerKey names a new layer object: "runpod/abc.tar.d/000003-<random>.tar". */
export function tarLayerKey(dest: string, seq: number): string {
  return `${tarObjectKey(dest)}.d/${String(seq).padStart(6, '0')}-${randomBytes(4).toString('hex')}.tar`;
}

/** tarHashesKey names a new companion list of per-file hashes: "runpod/abc.tar.d/hashes-<random>.json". */
export function tarHashesKey(dest: string): string {
  return `${tarObjectKey(dest)}.d/hashes-${randomBytes(4).toString('hex')}.json`;
}

/** isHashesKey: key is one of dest's companion hash lists (`<dest>.tar.d/hashes-<8 hex>.json`); only those may be deleted with their part. */
export function isHashesKey(dest: string, key: string): boolean {
  const prefix = `${tarObjectKey(dest)}.d/`;
  return key.startsWith(prefix) && /^hashes-[0-9a-f]{8}\.json$/.test(key.slice(prefix.length));
}

/** isLayerKey: key is one of dest's layer objects (`<dest>.tar.d/….tar`); only those may be deleted when layers are dropped. */
export function isLayerKey(dest: string, key: string): boolean {
  const prefix = `${tarObjectKey(dest)}.d/`;
  return key.startsWith(prefix) && key.endsWith('.tar') && !key.slice(prefix.length).includes('/');
}

/** TarPart is one tar object of a snapshot: the base or a layer. `hash` is the xxh64 of the whole object. */
export interface TarPart {
  key: string;
  etag: string;
  size: number;
  hash: string;
  files: number;
  /**
   * layers only: paths deleted since the previous layer, applied before this layer's entries are extracted (so a path
   * that turned from a file into a folder, or back, is first removed, then written). Folders (empty ones) end in '/'.
   */
  deleted?: string[];
  at: number;
  /** xxh64 of each regular file in this part, by path, when it has at most INLINE_FILE_HASHES_MAX of them. */
  fileHashes?: Record<string, string>;
  /** where the per-file hashes of a bigger part are (a companion JSON object), and that object's own xxh64. */
  hashesKey?: string;
  hashesHash?: string;
}

/** TarManifest lists a snapshot: extract the base, then for each layer in order apply its deletions and extract it. */
export interface TarManifest {
  version: 1;
  base: TarPart;
  layers: TarPart[];
}

/** readTarManifest fetches the manifest, or undefined when there is none (a plain `<dest>.tar` or nothing). */
export async function readTarManifest(storage: Storage, dest: string): Promise<{ manifest: TarManifest; etag: string } | undefined> {
  const key = tarManifestKey(dest);
  if (!(await storage.head(key))) return undefined;
  const { info, body } = await storage.get(key);
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
  try {
    const manifest = JSON.parse(Buffer.concat(chunks).toString('utf8')) as TarManifest;
    if (manifest.version !== 1 || !manifest.base || !Array.isArray(manifest.layers)) throw new Error('unknown layout');
    for (const part of [manifest.base, ...manifest.layers]) {
      if (typeof part !== 'object' || part === null || typeof part.key !== 'string' || typeof part.etag !== 'string' ||
          typeof part.size !== 'number' || typeof part.hash !== 'string') throw new Error('a part lacks its key, etag, size or hash');
      if (part.deleted !== undefined && (!Array.isArray(part.deleted) || part.deleted.some((p) => typeof p !== 'string'))) {
        throw new Error('a list of deleted paths is not a list of paths');
      }
      if (part.fileHashes !== undefined && !isHashList(part.fileHashes)) throw new Error('a list of file hashes is not paths with xxh64s');
      if ((part.hashesKey === undefined) !== (part.hashesHash === undefined) ||
          (part.hashesKey !== undefined && (typeof part.hashesKey !== 'string' || !isXxh64(part.hashesHash)))) {
        throw new Error('a part names its hash list without its xxh64, or the other way round');
      }
    }
    return { manifest, etag: info.etag };
  } catch (e) {
    throw failure(`the tar manifest ${key} is unreadable (${(e as Error).message}); push --tar again to rewrite it`);
  }
}

/** writeTarManifest stores the manifest (the commit point of a tar push: layers it does not list do not count). */
export async function writeTarManifest(storage: Storage, dest: string, manifest: TarManifest): Promise<void> {
  const body = Buffer.from(JSON.stringify(manifest));
  await storage.put(tarManifestKey(dest), body, { size: body.length, meta: { type: 'file' } });
}

/** FileHashesRef is how a part refers to its per-file hashes: inline, or a companion object and its xxh64. */
export type FileHashesRef = Pick<TarPart, 'fileHashes' | 'hashesKey' | 'hashesHash'>;

/**
 * storeFileHashes keeps a part's per-file hashes where the module comment says: returns them inline for a small part,
 * else uploads a companion object and returns its key and xxh64. Merge the result into the part before the manifest.
 */
export async function storeFileHashes(storage: Storage, dest: string, hashes: ReadonlyMap<string, string>): Promise<FileHashesRef> {
  const files = Object.fromEntries(hashes);
  if (hashes.size <= INLINE_FILE_HASHES_MAX) return { fileHashes: files };
  const body = Buffer.from(JSON.stringify({ version: 1, files }));
  const hashesHash = await hashBytes(body);
  const hashesKey = tarHashesKey(dest);
  await storage.put(hashesKey, body, { size: body.length, meta: { type: 'file', hash: hashesHash } });
  return { hashesKey, hashesHash };
}

/**
 * loadFileHashes returns a part's per-file hashes by path, or undefined when it has none (unverified extraction). A
 * companion list that is missing, unreadable or does not match its xxh64 fails the pull before anything is extracted.
 */
export async function loadFileHashes(storage: Storage, part: TarPart): Promise<Map<string, string> | undefined> {
  if (part.fileHashes !== undefined) return new Map(Object.entries(part.fileHashes));
  if (part.hashesKey === undefined) return undefined;
  const key = part.hashesKey;
  const again = 'push --tar again to rewrite the snapshot';
  if (!(await storage.head(key))) throw failure(`the per-file hash list ${key} of ${part.key} is missing`, undefined, again);
  const { body } = await storage.get(key);
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  const actual = await hashBytes(bytes);
  if (actual !== part.hashesHash) {
    throw failure(`the per-file hash list ${key} does not match its xxh64 (${actual} ≠ ${part.hashesHash}): the snapshot is corrupt; nothing extracted from ${part.key}`, undefined, again);
  }
  let list: { version?: unknown; files?: unknown };
  try {
    list = JSON.parse(bytes.toString('utf8')) as typeof list;
  } catch (e) {
    throw failure(`the per-file hash list ${key} is unreadable (${(e as Error).message})`, e, again);
  }
  if (list.version !== 1 || !isHashList(list.files)) throw failure(`the per-file hash list ${key} is unreadable (unknown layout)`, undefined, again);
  return new Map(Object.entries(list.files));
}

/**
 * ownedObjectKeys lists the objects a manifest's parts own besides the base tar: its layer tars and hash lists (only
 * keys shaped like dest's own, so a damaged or hostile manifest naming other keys never turns into deletions elsewhere).
 */
export function ownedObjectKeys(dest: string, manifest: TarManifest): string[] {
  const keys: string[] = [];
  for (const part of [manifest.base, ...manifest.layers]) {
    if (part !== manifest.base && isLayerKey(dest, part.key)) keys.push(part.key);
    if (part.hashesKey !== undefined && isHashesKey(dest, part.hashesKey)) keys.push(part.hashesKey);
  }
  return keys;
}

function isXxh64(v: unknown): v is string {
  return typeof v === 'string' && /^[0-9a-f]{16}$/.test(v);
}

function isHashList(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every(isXxh64);
}
