// Stage: content hashes (xxh64 via xxhash-wasm), read in one pass; detects files that change while being read.
import { openSync, readSync, fstatSync, closeSync, createReadStream } from 'node:fs';
import xxhash from 'xxhash-wasm';

type Hasher = Awaited<ReturnType<typeof xxhash>>;
let hasher: Promise<Hasher> | undefined;

/** xxh returns the lazily-initialised xxhash-wasm instance. */
export function xxh(): Promise<Hasher> {
  hasher ??= xxhash();
  return hasher;
}

/** hex64 formats a 64-bit hash as 16 lowercase hex digits. */
export function hex64(n: bigint): string {
  return n.toString(16).padStart(16, '0');
}

/** hashBytes is xxh64 (seed 0) of a buffer, as 16 hex digits (matches `xxh64sum`). */
export async function hashBytes(data: Uint8Array | string): Promise<string> {
  const h = await xxh();
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  return hex64(h.create64().update(bytes).digest());
}

/** SMALL_FILE_BYTES: at or below this a file is read whole with one sync read (NOTES: far faster than streams for small files). */
export const SMALL_FILE_BYTES = 1 << 20;

/** ChangedWhileReading is thrown when a file's size or mtime moved while it was read: it must not be uploaded torn. */
export class ChangedWhileReading extends Error {
  constructor(readonly path: string) {
    super(`${path} changed while being read`);
    this.name = 'ChangedWhileReading';
  }
}

export interface ReadResult {
  hash: string;
  size: number;
  mtimeMs: number;
  /** the whole content, for small files only (reused as the upload body so the file is read once). */
  data?: Buffer;
}

/**
 * readAndHash hashes a file, checking that size and mtime match `expected` (the scan's stat) before and after.
 * Small files come back with their bytes; big ones are streamed in 1 MiB chunks.
 */
export async function readAndHash(absPath: string, expected: { size: number; mtimeMs: number }, keepData: boolean): Promise<ReadResult> {
  const h = await xxh();
  if (expected.size <= SMALL_FILE_BYTES) {
    const fd = openSync(absPath, 'r');
    try {
      const before = fstatSync(fd);
      if (before.size !== expected.size || Math.floor(before.mtimeMs) !== expected.mtimeMs) throw new ChangedWhileReading(absPath);
      const data = Buffer.allocUnsafe(before.size);
      let off = 0;
      while (off < data.length) {
        const n = readSync(fd, data, off, data.length - off, off);
        if (n === 0) break;
        off += n;
      }
      const after = fstatSync(fd);
      if (off !== before.size || after.size !== before.size || after.mtimeMs !== before.mtimeMs) throw new ChangedWhileReading(absPath);
      return { hash: hex64(h.create64().update(data).digest()), size: before.size, mtimeMs: Math.floor(before.mtimeMs), data: keepData ? data : undefined };
    } finally {
      closeSync(fd);
    }
  }
  const state = h.create64();
  const fd = openSync(absPath, 'r');
  let size = 0;
  try {
    const before = fstatSync(fd);
    if (before.size !== expected.size || Math.floor(before.mtimeMs) !== expected.mtimeMs) throw new ChangedWhileReading(absPath);
    const stream = createReadStream('', { fd, autoClose: false, highWaterMark: 1 << 20 });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      state.update(chunk);
      size += chunk.length;
    }
    const after = fstatSync(fd);
    if (size !== before.size || after.size !== before.size || after.mtimeMs !== before.mtimeMs) throw new ChangedWhileReading(absPath);
    return { hash: hex64(state.digest()), size, mtimeMs: Math.floor(before.mtimeMs) };
  } finally {
    closeSync(fd);
  }
}
