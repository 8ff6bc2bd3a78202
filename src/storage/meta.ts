// swm's object metadata in wire form: the x-amz-meta-swm-* user metadata of S3, reused as the file backend's sidecar record.
import type { ObjectMeta } from './types.js';

/** META_FIELDS names the user-metadata keys (without the x-amz-meta- prefix) that carry ObjectMeta. */
export const META_FIELDS = {
  hash: 'swm-hash',
  mtimeMs: 'swm-mtime',
  mode: 'swm-mode',
  type: 'swm-type',
} as const;

const OBJECT_TYPES: ReadonlySet<string> = new Set(['file', 'symlink', 'dir']);

/** encodeMeta turns ObjectMeta into string user metadata: hash as is, mtime in decimal ms, mode in octal, type. */
export function encodeMeta(meta: ObjectMeta): Record<string, string> {
  const out: Record<string, string> = {};
  if (meta.hash !== undefined) out[META_FIELDS.hash] = meta.hash;
  if (meta.mtimeMs !== undefined && Number.isFinite(meta.mtimeMs)) out[META_FIELDS.mtimeMs] = String(meta.mtimeMs);
  if (meta.mode !== undefined && Number.isInteger(meta.mode)) out[META_FIELDS.mode] = (meta.mode & 0o7777).toString(8);
  if (meta.type !== undefined) out[META_FIELDS.type] = meta.type;
  return out;
}

/**
 * decodeMeta reads ObjectMeta back from user metadata (keys compared case-insensitively, as HTTP headers are).
 * Values that do not parse are dropped rather than trusted, so a foreign or damaged record yields less meta, never wrong meta.
 */
export function decodeMeta(record: Record<string, string | undefined> | undefined): ObjectMeta {
  const meta: ObjectMeta = {};
  if (!record) return meta;
  const lower: Record<string, string> = {};
  for (const [k, v] of Object.entries(record)) if (typeof v === 'string') lower[k.toLowerCase()] = v.trim();
  const hash = lower[META_FIELDS.hash];
  if (hash !== undefined && /^[0-9a-f]{1,64}$/i.test(hash)) meta.hash = hash.toLowerCase();
  const mtime = lower[META_FIELDS.mtimeMs];
  if (mtime !== undefined && mtime !== '' && Number.isFinite(Number(mtime))) meta.mtimeMs = Number(mtime);
  const mode = lower[META_FIELDS.mode];
  if (mode !== undefined && /^[0-7]{1,6}$/.test(mode)) meta.mode = parseInt(mode, 8) & 0o7777;
  const type = lower[META_FIELDS.type];
  if (type !== undefined && OBJECT_TYPES.has(type)) meta.type = type as ObjectMeta['type'];
  return meta;
}
