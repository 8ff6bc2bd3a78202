// Resume records of multipart uploads in progress, in `.swm/uploads/`: a header written once (atomic, 0600) and an append-only log of the parts the server acknowledged.
import { appendFileSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { swmPaths } from './paths.js';
import { errnoCode } from '../errors.js';

/** UploadRecord describes one multipart upload that a later push may continue: which object, which file version, which parts layout. */
export interface UploadRecord {
  /** the storage's description ("s3:bucket"): records of other buckets are left alone. */
  bucket: string;
  /** the full object key (dest prefix included). */
  key: string;
  uploadId: string;
  /** the file version being uploaded: its size, mtime (ms), mode and xxh64, as sent in the object metadata. */
  size: number;
  mtimeMs: number;
  mode: number;
  hash: string;
  /** every part but the last is exactly this long. */
  partSize: number;
  /** ms since the epoch when the upload was created. */
  startedAt: number;
}

/** RecordedPart is a part the server acknowledged: its number, etag and the xxh64 of the bytes sent. */
export interface RecordedPart {
  partNumber: number;
  etag: string;
  hash: string;
}

/** StoredUpload is a record read back with the parts logged for its upload id. */
export interface StoredUpload {
  record: UploadRecord;
  parts: Map<number, RecordedPart>;
}

const RECORD_VERSION = 1;

/** uploadFilesFor names a record's two files: `<sha1(bucket, key)>.json` (header) and `.parts` (append-only part log). */
function uploadFilesFor(workspace: string, bucket: string, key: string): { header: string; parts: string } {
  const id = createHash('sha1').update(`${bucket}\n${key}`).digest('hex');
  const dir = swmPaths(workspace).uploads;
  return { header: join(dir, `${id}.json`), parts: join(dir, `${id}.parts`) };
}

/** uploadTag ties a part-log line to its upload id, so lines of an earlier upload of the same key never count. */
function uploadTag(uploadId: string): string {
  return createHash('sha1').update(uploadId).digest('hex').slice(0, 16);
}

/** writeUploadRecord stores a new record (replacing any earlier one for the same bucket and key, whose part lines stop counting). */
export async function writeUploadRecord(workspace: string, record: UploadRecord): Promise<void> {
  const files = uploadFilesFor(workspace, record.bucket, record.key);
  removeQuietly(files.parts);
  await writeFileAtomic(files.header, JSON.stringify({ version: RECORD_VERSION, ...record }) + '\n');
}

/**
 * appendUploadPart logs one acknowledged part. A line torn by a crash is ignored when read back, which costs at most
 * that part being sent again.
 */
export function appendUploadPart(workspace: string, record: UploadRecord, part: RecordedPart): void {
  const files = uploadFilesFor(workspace, record.bucket, record.key);
  appendFileSync(files.parts, `${uploadTag(record.uploadId)} ${part.partNumber} ${part.etag} ${part.hash}\n`, { mode: 0o600 });
}

/** readUploadRecord returns the record for (bucket, key) with its logged parts, or undefined when there is none or it is unreadable. */
export function readUploadRecord(workspace: string, bucket: string, key: string): StoredUpload | undefined {
  const files = uploadFilesFor(workspace, bucket, key);
  const record = parseRecord(readOptional(files.header));
  if (!record || record.bucket !== bucket || record.key !== key) return undefined;
  return { record, parts: parseParts(readOptional(files.parts), record.uploadId) };
}

/** listUploadRecords returns every readable record in `.swm/uploads/` (any bucket); unreadable headers and orphaned part logs are removed. */
export function listUploadRecords(workspace: string): UploadRecord[] {
  const dir = swmPaths(workspace).uploads;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw e;
  }
  const records: UploadRecord[] = [];
  const headers = new Set(names.filter((n) => n.endsWith('.json')));
  for (const name of headers) {
    const record = parseRecord(readOptional(join(dir, name)));
    if (record) records.push(record);
    else {
      removeQuietly(join(dir, name));
      removeQuietly(join(dir, name.replace(/\.json$/, '.parts')));
    }
  }
  for (const name of names) {
    if (name.endsWith('.parts') && !headers.has(name.replace(/\.parts$/, '.json'))) removeQuietly(join(dir, name));
  }
  return records.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** removeUploadRecord forgets the record for (bucket, key): header first, so a crash in between leaves only an orphaned part log. */
export function removeUploadRecord(workspace: string, bucket: string, key: string): void {
  const files = uploadFilesFor(workspace, bucket, key);
  removeQuietly(files.header);
  removeQuietly(files.parts);
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const isText = (s: unknown): s is string => typeof s === 'string' && s.length > 0;

/** parseRecord accepts only a complete record of the current version; anything else reads as no record (a fresh upload). */
function parseRecord(text: string | undefined): UploadRecord | undefined {
  if (text === undefined) return undefined;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || raw.version !== RECORD_VERSION) return undefined;
  const { bucket, key, uploadId, size, mtimeMs, mode, hash, partSize, startedAt } = raw;
  if (!isText(bucket) || !isText(key) || !isText(uploadId) || !isText(hash)) return undefined;
  if (!isCount(size) || !isCount(mtimeMs) || !isCount(mode) || !isCount(partSize) || partSize === 0 || !isCount(startedAt)) return undefined;
  return { bucket, key, uploadId, size, mtimeMs, mode, hash, partSize, startedAt };
}

const PART_LINE = /^([0-9a-f]{16}) ([1-9][0-9]{0,4}) (\S+) ([0-9a-f]{16})$/;

/** parseParts reads the part log, keeping well-formed lines of this upload id; a part logged twice keeps its last line. */
function parseParts(text: string | undefined, uploadId: string): Map<number, RecordedPart> {
  const parts = new Map<number, RecordedPart>();
  if (text === undefined) return parts;
  const tag = uploadTag(uploadId);
  for (const line of text.split('\n')) {
    const m = PART_LINE.exec(line);
    if (!m || m[1] !== tag) continue;
    const partNumber = Number(m[2]);
    parts.set(partNumber, { partNumber, etag: m[3]!, hash: m[4]! });
  }
  return parts;
}
