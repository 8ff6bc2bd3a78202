// Deterministic benchmark data: small-file trees, one big file and in-place edits, all from an AES-CTR keystream (incompressible, reproducible).
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const MiB = 1024 * 1024;

/** streamBytes returns `length` bytes of the keystream named `seed`, starting at byte `offset` (a multiple of 16). */
export function streamBytes(seed, offset, length) {
  if (offset % 16 !== 0) throw new Error(`streamBytes: offset ${offset} is not a multiple of 16`);
  const key = createHash('sha256').update(`swm-bench:${seed}`).digest().subarray(0, 16);
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(offset / 16), 8);
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

/**
 * TreeSpec describes a small-file tree: `files` files of `size` bytes, `perFolder` to a folder, folders
 * grouped `perGroup` to a top-level folder when `perGroup` is set (two levels), else one level.
 */
export function treeFilePath(spec, i) {
  const folder = Math.floor(i / spec.perFolder);
  const name = `f${String(i).padStart(6, '0')}.bin`;
  if (!spec.perGroup) return `d${String(folder).padStart(4, '0')}/${name}`;
  return `g${String(Math.floor(folder / spec.perGroup)).padStart(3, '0')}/d${String(folder % spec.perGroup).padStart(3, '0')}/${name}`;
}

/** fileContent is file i's original bytes in the tree made from spec. */
export function fileContent(spec, i) {
  return streamBytes(spec.seed, i * spec.size, spec.size);
}

/** makeTree writes the tree described by spec under root (which must not exist yet); returns the file count. */
export function makeTree(root, spec) {
  const made = new Set();
  const chunkFiles = Math.max(1, Math.floor((8 * MiB) / spec.size));
  for (let first = 0; first < spec.files; first += chunkFiles) {
    const n = Math.min(chunkFiles, spec.files - first);
    const bytes = streamBytes(spec.seed, first * spec.size, n * spec.size);
    for (let k = 0; k < n; k++) {
      const rel = treeFilePath(spec, first + k);
      const parent = join(root, rel.slice(0, rel.lastIndexOf('/')));
      if (!made.has(parent)) {
        mkdirSync(parent, { recursive: true });
        made.add(parent);
      }
      writeFileSync(join(root, rel), bytes.subarray(k * spec.size, (k + 1) * spec.size));
    }
  }
  return spec.files;
}

/** changedIndexes picks `count` files spread evenly over the tree (deterministic). */
export function changedIndexes(spec, count) {
  const step = Math.max(1, Math.floor(spec.files / count));
  const out = [];
  for (let i = 0; i < spec.files && out.length < count; i += step) out.push(i);
  return out;
}

/** changeFiles rewrites the given files with new bytes (16 longer, so size and content both change) for edit round `round`; returns their previous times for restoreFiles. */
export function changeFiles(root, spec, indexes, round) {
  const times = new Map();
  for (const i of indexes) {
    const file = join(root, treeFilePath(spec, i));
    const st = statSync(file);
    times.set(i, [st.atime, st.mtime]);
    writeFileSync(file, streamBytes(`${spec.seed}-edit-${round}`, i * (spec.size + 16), spec.size + 16));
  }
  return times;
}

/** restoreFiles puts the original bytes and times back into the given files, so the tree looks untouched to mtime-based tools. */
export function restoreFiles(root, spec, indexes, times) {
  for (const i of indexes) {
    const file = join(root, treeFilePath(spec, i));
    writeFileSync(file, fileContent(spec, i));
    const t = times?.get(i);
    if (t) utimesSync(file, t[0], t[1]);
  }
}

/** makeBigFile writes `size` keystream bytes named seed to file, 8 MiB at a time. */
export function makeBigFile(file, size, seed) {
  const fd = openSync(file, 'w');
  try {
    for (let off = 0; off < size; off += 8 * MiB) writeSync(fd, streamBytes(seed, off, Math.min(8 * MiB, size - off)));
  } finally {
    closeSync(fd);
  }
}
