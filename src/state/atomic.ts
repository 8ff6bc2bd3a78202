// Atomic file writes for `.swm/` and the workspace: write a temp file beside the target, fsync, rename. Files 0600 in `.swm/`.
import { mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync } from 'node:fs';
import { open, rename, unlink, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TEMP_INFIX } from './paths.js';

/** tempPathFor gives a hidden temp name in the same folder as target, so the final rename is atomic. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}${TEMP_INFIX}${randomBytes(4).toString('hex')}`);
}

/** writeFileAtomic replaces target with data in one rename; readers see old or new, never partial. */
export async function writeFileAtomic(target: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  const tmp = tempPathFor(target);
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, target);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** writeFileAtomicSync is the synchronous twin, for exit handlers and tiny records. */
export function writeFileAtomicSync(target: string, data: string | Uint8Array, mode = 0o600): void {
  mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
  const tmp = tempPathFor(target);
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, target);
}
