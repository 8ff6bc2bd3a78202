// Stage helper: resumable multipart uploads of big files. The upload id and every acknowledged part are recorded in `.swm/uploads/`, so an interrupted push continues from the parts already stored instead of starting over; stale uploads of ours are aborted.
import { open, type FileHandle } from 'node:fs/promises';
import type { MultipartUploads, ObjectMeta, Storage } from '../storage/types.js';
import { NO_SUCH_UPLOAD } from '../storage/types.js';
import { storageErrorCode } from '../storage/storage-error.js';
import {
  appendUploadPart,
  listUploadRecords,
  readUploadRecord,
  removeUploadRecord,
  writeUploadRecord,
  type UploadRecord,
} from '../state/uploads.js';
import { hex64, xxh } from './hash.js';

const MiB = 1024 * 1024;

/** RESUMABLE_MIN_BYTES: files at least this big go through a resumable upload; smaller ones are cheap to resend whole. */
export const RESUMABLE_MIN_BYTES = 64 * MiB;
/** RESUMABLE_MIN_PART: the smallest part used (S3's own minimum is 5 MiB). */
export const RESUMABLE_MIN_PART = 8 * MiB;
/** MAX_PARTS is S3's limit on parts per upload. */
const MAX_PARTS = 10_000;
/** S3_MIN_PART: a recorded layout with smaller parts cannot be completed and is not resumed. */
const S3_MIN_PART = 5 * MiB;
/** parts in flight per file (more for files of BIG_FILE and up). */
const PARTS_IN_FLIGHT = 4;
const PARTS_IN_FLIGHT_BIG = 8;
const BIG_FILE = 256 * MiB;
/** parts in flight across all files of one push: memory stays under this × the part size however many big files move at once. */
const PARTS_IN_FLIGHT_TOTAL = 16;

/** STALE_UPLOAD_MS: a multipart upload under the dest that no resume record refers to is aborted once it is this old. */
export const STALE_UPLOAD_MS = 24 * 60 * 60 * 1000;
/** RESUME_MAX_AGE_MS: a resume record this old is given up (its upload aborted): the file has most likely moved on. */
export const RESUME_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;

/** msFromEnv reads a non-negative millisecond setting from the environment (tests shorten the ages above). */
function msFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

/** resumablePartSize sizes parts to the file: at least RESUMABLE_MIN_PART, whole MiB, at most 10,000 parts. */
export function resumablePartSize(size: number): number {
  return Math.max(RESUMABLE_MIN_PART, Math.ceil(size / MAX_PARTS / MiB) * MiB);
}

/** ResumableFile is the local file version being uploaded: hashed already, its metadata fixed. */
export interface ResumableFile {
  key: string;
  /** absolute path of the file. */
  abs: string;
  size: number;
  mtimeMs: number;
  mode: number;
  /** xxh64 of the content, from the hash pass; the object's bytes must hash to it. */
  hash: string;
  meta: ObjectMeta;
}

/** ResumableResult: stored (with bytes sent now and bytes reused from an earlier run), or the file changed while it was read. */
export type ResumableResult =
  | { kind: 'uploaded'; etag: string; sent: number; resumed: number }
  | { kind: 'changed' };

/**
 * ResumableUploads keeps the resume records of one push target (a storage and a dest): it continues, restarts or gives up
 * recorded uploads, and sweeps stale uploads of ours from the bucket. One instance per push.
 */
export class ResumableUploads {
  /** keys this run uploaded or tried to: their records are up to date. */
  private readonly touched = new Set<string>();
  /** part buffers in use across the files of this push. */
  private readonly slots = new PartSlots(PARTS_IN_FLIGHT_TOTAL);

  private constructor(
    private readonly root: string,
    private readonly storage: Storage,
    private readonly api: MultipartUploads,
    private readonly dest: string,
  ) {}

  /** forTarget returns the resumable uploads of (storage, dest) for the workspace at root, or undefined when the storage cannot resume. */
  static forTarget(root: string, storage: Storage, dest: string): ResumableUploads | undefined {
    if (!storage.features.resumableMultipart || !storage.multipart) return undefined;
    return new ResumableUploads(root, storage, storage.multipart, dest);
  }

  /** applies tells whether a file of this size goes through a resumable upload. */
  applies(size: number): boolean {
    return size >= RESUMABLE_MIN_BYTES;
  }

  /**
   * prepare runs before a push's uploads: with `discard` (-f) every record of this target is given up; records older
   * than RESUME_MAX_AGE_MS (SWM_RESUME_MAX_AGE_MS) are too; then uploads under the dest that no remaining record refers
   * to and that are older than STALE_UPLOAD_MS (SWM_STALE_UPLOAD_MS) are aborted. Best effort: a cleanup that fails is
   * tried again by the next push. Returns how many uploads were given up or aborted.
   */
  async prepare(options: { discard: boolean }): Promise<number> {
    const maxAge = msFromEnv('SWM_RESUME_MAX_AGE_MS', RESUME_MAX_AGE_MS);
    const now = Date.now();
    let dropped = 0;
    const kept = new Set<string>();
    for (const record of this.records()) {
      if (options.discard || now - record.startedAt > maxAge) {
        await this.giveUp(record);
        dropped++;
      } else kept.add(record.uploadId);
    }
    try {
      dropped += await this.storage.abortStaleUploads(this.dest, msFromEnv('SWM_STALE_UPLOAD_MS', STALE_UPLOAD_MS), kept);
    } catch {
      // listing uploads may be denied or unsupported; nothing depends on it
    }
    return dropped;
  }

  /** finishPass runs after a complete upload pass over the whole workspace: records it did not touch (file gone, unchanged, excluded) are given up. */
  async finishPass(): Promise<void> {
    for (const record of this.records()) if (!this.touched.has(record.key)) await this.giveUp(record);
  }

  /**
   * upload stores one file through a multipart upload, continuing the recorded one when it was made for this very file
   * version (size, mtime, mode, hash and a usable part layout) and the server still has it: parts listed by the server
   * whose etag was logged and whose bytes still hash as logged are kept, the others sent. A record that does not match
   * is given up (its upload aborted). The file's bytes are hashed again as parts are read, and nothing is completed
   * unless they hash to `file.hash`. On failure or abort the record stays, so the next push continues from here.
   */
  async upload(file: ResumableFile, options: { signal?: AbortSignal; onProgress?: (sent: number) => void } = {}): Promise<ResumableResult> {
    const { signal, onProgress } = options;
    this.touched.add(file.key);
    const bucket = this.storage.description;
    let record: UploadRecord | undefined;
    let landed = new Map<number, { etag: string; hash: string }>();
    const stored = readUploadRecord(this.root, bucket, file.key);
    if (stored) {
      if (fitsFile(stored.record, file)) {
        const listed = await this.api.listParts(file.key, stored.record.uploadId);
        if (listed) {
          record = stored.record;
          const layout = partLayout(file.size, record.partSize);
          for (const p of listed) {
            const logged = stored.parts.get(p.partNumber);
            if (logged && logged.etag === p.etag && p.partNumber <= layout.count && p.size === layout.length(p.partNumber)) {
              landed.set(p.partNumber, { etag: p.etag, hash: logged.hash });
            }
          }
        }
      }
      if (!record) await this.giveUp(stored.record);
    }
    signal?.throwIfAborted();
    if (!record) {
      landed = new Map();
      const uploadId = await this.api.create(file.key, file.meta);
      record = {
        bucket, key: file.key, uploadId, size: file.size, mtimeMs: file.mtimeMs, mode: file.mode, hash: file.hash,
        partSize: resumablePartSize(file.size), startedAt: Date.now(),
      };
      try {
        await writeUploadRecord(this.root, record);
      } catch (e) {
        await this.api.abort(file.key, uploadId).catch(() => {});
        throw e;
      }
    }

    const fh = await open(file.abs, 'r');
    let parts: { partNumber: number; etag: string }[];
    let sent: number;
    let resumed: number;
    try {
      const sending = await this.sendParts(fh, file, record, landed, signal, onProgress);
      if (sending === 'changed') {
        await this.giveUp(record);
        return { kind: 'changed' };
      }
      ({ parts, sent, resumed } = sending);
    } finally {
      await fh.close();
    }

    let etag: string;
    try {
      ({ etag } = await this.api.complete(file.key, record.uploadId, parts));
    } catch (e) {
      // a completion refused as malformed (a part the server does not accept) would be refused again: start afresh next time
      if (isClientError(e)) await this.giveUp(record);
      // the server completed it but the answer was lost (the retry finds the upload gone): the object is ours if it is
      // this file version, which its size and swm metadata (content hash included) tell
      if (storageErrorCode(e) !== NO_SUCH_UPLOAD) throw e;
      const landedObject = await this.storage.head(file.key);
      if (!landedObject || landedObject.size !== file.size || landedObject.meta?.hash !== file.hash || landedObject.meta.mtimeMs !== file.mtimeMs) {
        removeUploadRecord(this.root, bucket, file.key);
        throw e;
      }
      etag = landedObject.etag;
    }
    removeUploadRecord(this.root, bucket, file.key);
    return { kind: 'uploaded', etag, sent, resumed };
  }

  /**
   * sendParts reads the file part by part in order (positional reads), hashing every byte, and sends the parts not
   * already landed, at most PARTS_IN_FLIGHT of this file and PARTS_IN_FLIGHT_TOTAL of the push in flight (a buffer of
   * one part each); each acknowledged part is logged before it counts.
   */
  private async sendParts(
    fh: FileHandle,
    file: ResumableFile,
    record: UploadRecord,
    landed: Map<number, { etag: string; hash: string }>,
    signal: AbortSignal | undefined,
    onProgress: ((sent: number) => void) | undefined,
  ): Promise<{ parts: { partNumber: number; etag: string }[]; sent: number; resumed: number } | 'changed'> {
    const before = await fh.stat();
    if (before.size !== file.size || Math.floor(before.mtimeMs) !== file.mtimeMs) return 'changed';
    const hasher = await xxh();
    const whole = hasher.create64();
    const layout = partLayout(file.size, record.partSize);
    const limit = file.size >= BIG_FILE ? PARTS_IN_FLIGHT_BIG : PARTS_IN_FLIGHT;
    const etags: string[] = new Array(layout.count);
    const inFlight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let sent = 0;
    let resumed = 0;
    let changed = false;

    const send = async (partNumber: number, body: Buffer, partHash: string) => {
      try {
        const etag = await this.api.uploadPart(file.key, record.uploadId, partNumber, body, signal);
        appendUploadPart(this.root, record, { partNumber, etag, hash: partHash });
        etags[partNumber - 1] = etag;
        sent += body.length;
        onProgress?.(sent);
      } catch (e) {
        failure ??= { error: e };
      } finally {
        this.slots.give();
      }
    };

    for (let partNumber = 1; partNumber <= layout.count; partNumber++) {
      while (inFlight.size >= limit) await Promise.race(inFlight);
      if (failure || signal?.aborted) break;
      await this.slots.take();
      const length = layout.length(partNumber);
      const body = Buffer.allocUnsafe(length);
      let complete = false;
      try {
        complete = await readFully(fh, body, (partNumber - 1) * record.partSize);
      } catch (e) {
        failure ??= { error: e };
      }
      if (!complete) {
        this.slots.give();
        if (!failure) changed = true; // the file shrank
        break;
      }
      whole.update(body);
      const partHash = hex64(hasher.create64().update(body).digest());
      const prior = landed.get(partNumber);
      if (prior && prior.hash === partHash) {
        etags[partNumber - 1] = prior.etag;
        resumed += length;
        this.slots.give();
        continue;
      }
      const task: Promise<void> = send(partNumber, body, partHash).finally(() => inFlight.delete(task));
      inFlight.add(task);
    }
    await Promise.all(inFlight);
    if (failure) throw failure.error;
    signal?.throwIfAborted();
    if (changed) return 'changed';
    const after = await fh.stat();
    if (after.size !== file.size || after.mtimeMs !== before.mtimeMs || hex64(whole.digest()) !== file.hash) return 'changed';
    return { parts: etags.map((etag, i) => ({ partNumber: i + 1, etag })), sent, resumed };
  }

  /** records lists the resume records of this target (this bucket, keys under the dest). */
  private records(): UploadRecord[] {
    return listUploadRecords(this.root).filter((r) => r.bucket === this.storage.description && r.key.startsWith(this.dest));
  }

  /** giveUp aborts a recorded upload (best effort: a leftover is swept once stale) and forgets its record. */
  private async giveUp(record: UploadRecord): Promise<void> {
    await this.api.abort(record.key, record.uploadId).catch(() => {});
    removeUploadRecord(this.root, record.bucket, record.key);
  }
}

/**
 * isClientError: the server found the request itself wrong (HTTP 400: InvalidPart, InvalidPartOrder, EntityTooSmall),
 * as opposed to a network failure, a server error or expired credentials, after which the same request may succeed.
 */
function isClientError(e: unknown): boolean {
  return (e as { cause?: { httpStatusCode?: unknown } })?.cause?.httpStatusCode === 400;
}

/** PartSlots counts the part buffers a push may hold at once; take() waits for a free one. */
class PartSlots {
  private readonly waiters: (() => void)[] = [];
  constructor(private free: number) {}

  async take(): Promise<void> {
    while (this.free === 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.free--;
  }

  give(): void {
    this.free++;
    this.waiters.shift()?.();
  }
}

/** fitsFile: the record was made for this file version, with a part layout S3 can complete. */
function fitsFile(record: UploadRecord, file: ResumableFile): boolean {
  return (
    record.size === file.size &&
    record.mtimeMs === file.mtimeMs &&
    record.mode === file.mode &&
    record.hash === file.hash &&
    record.partSize >= S3_MIN_PART &&
    Math.ceil(file.size / record.partSize) <= MAX_PARTS
  );
}

/** partLayout: how many parts a file of `size` has with parts of `partSize`, and how long part n is. */
function partLayout(size: number, partSize: number): { count: number; length: (partNumber: number) => number } {
  const count = Math.max(1, Math.ceil(size / partSize));
  return { count, length: (n) => Math.min(partSize, size - (n - 1) * partSize) };
}

/** readFully fills buf from the file at position; false when the file ends first (it shrank). */
async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<boolean> {
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, position + off);
    if (bytesRead === 0) return false;
    off += bytesRead;
  }
  return true;
}
