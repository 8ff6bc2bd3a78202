// Atomic file writes for `.swm/` and the workspace: write a temp file beside the target, fsync, rename. Files 0600 in `.swm/`.
import { mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync } from 'node:fs';
import { open, rename, unlink, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TEMP_INFIX } from './paths.js';

/**
 * tempSerial numbers this process's temp names: random once, then counted, so that two processes' names differ without
 * random bytes per name (a pull of many small files takes one per file, and each costs a getpid() in OpenSSL).
 */
let tempSerial = randomBytes(4).readUInt32BE(0);

/** tempProcessTag tells this process's long-name temp names from another's (random once). */
const tempProcessTag = randomBytes(4).toString('hex');

/** NAME_MAX is the longest file name (bytes) Linux file systems accept. */
const NAME_MAX = 255;

/**
 * tempPathFor gives a hidden temp name in the same folder as target, so the final rename is atomic: `.name.swm-tmp-<8 hex>`,
 * or `.swm-tmp-<16 hex>` when the target's name is too long to take the suffix (both are the names stale-temps.ts removes).
 */
export function tempPathFor(target: string): string {
  tempSerial = (tempSerial + 1) >>> 0;
  const serial = tempSerial.toString(16).padStart(8, '0');
  const name = `.${basename(target)}${TEMP_INFIX}${serial}`;
  return join(dirname(target), Buffer.byteLength(name) <= NAME_MAX ? name : `${TEMP_INFIX}${tempProcessTag}${serial}`);
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
