// Where a `--tar` snapshot lives in the bucket and how its manifest reads: `<dest>.tar` beside the prefix (SPEC §4) is the
// base, a full tar any tool can read; incremental pushes add layer tars under `<dest>.tar.d/` and the manifest lists them.
import { randomBytes } from 'node:crypto';
import type { Storage } from '../storage/types.js';
import { failure } from '../errors.js';

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
