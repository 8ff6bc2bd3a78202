// The one storage interface: where bytes live. Implemented by file.ts (embedded `file:` bucket) and s3.ts (S3 and compatibles).
import type { Readable } from 'node:stream';

/** ObjectMeta is swm's per-object metadata, carried as user metadata (x-amz-meta-swm-*) or in the file backend's sidecar. */
export interface ObjectMeta {
  /** xxh64 of the content, 16 lowercase hex digits. */
  hash?: string;
  /** file mtime in milliseconds since the epoch. */
  mtimeMs?: number;
  /** file mode bits (permission bits only, e.g. 0o644). */
  mode?: number;
  /** what the object stands for: a regular file (default), a symlink (body = link target) or an empty folder. */
  type?: 'file' | 'symlink' | 'dir';
}

/** ObjectInfo describes one stored object. Listing fills key/size/etag/lastModified; head and get also fill meta. */
export interface ObjectInfo {
  key: string;
  size: number;
  /** opaque version tag; changes whenever the content is rewritten. Compared as a string, never parsed. */
  etag: string;
  /** server-side modification time, ms since epoch. */
  lastModified?: number;
  meta?: ObjectMeta;
}

/** ByteRange is inclusive of start, exclusive of end. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface PutOptions {
  /** the body's length when known; chooses single PUT vs multipart. */
  size?: number;
  meta: ObjectMeta;
  /** Reports bytes sent so far for this object (cumulative). */
  onProgress?: (bytesSent: number) => void;
  signal?: AbortSignal;
  /** Write only if no object exists at the key (If-None-Match: *). Rejects with code 'PreconditionFailed'. */
  ifNoneMatch?: boolean;
}

export interface GetResult {
  info: ObjectInfo;
  body: Readable;
}

/** StorageFeatures are optional abilities, declared rather than type-switched on (as rclone's Features()). */
export interface StorageFeatures {
  /** true when put() can resume a multipart upload across processes via the resumable API below. */
  resumableMultipart: boolean;
}

/** Storage is one bucket. Keys are full object keys (the dest prefix included). */
export interface Storage {
  /** "file:/abs/path" or "s3:bucket": for messages. Never contains secrets. */
  readonly description: string;
  readonly features: StorageFeatures;
  /** Checks that the bucket exists and is reachable with the credentials; throws SwmError otherwise. */
  check(): Promise<void>;
  /** Lists objects whose key starts with prefix, in UTF-8 byte order of keys, streaming page by page. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Returns the object's info with meta, or undefined when it does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Streams the object (or a range of it). Throws SwmError(failed) with code 'NoSuchKey' semantics when missing. */
  get(key: string, range?: ByteRange): Promise<GetResult>;
  /** Writes the object atomically (readers see old or new, never partial). Returns the new etag. */
  put(key: string, body: Readable | Buffer, options: PutOptions): Promise<{ etag: string }>;
  /** Deletes keys (missing keys are not an error), batched internally. */
  delete(keys: string[]): Promise<void>;
  /** Aborts incomplete multipart uploads under prefix started before olderThanMs ago. Returns how many were aborted. */
  abortStaleUploads(prefix: string, olderThanMs: number): Promise<number>;
  /** Releases sockets/handles. */
  close(): Promise<void>;
}

/** StorageNotFound is the error code get() uses for a missing key (error.code === 'NoSuchKey'). */
export const NO_SUCH_KEY = 'NoSuchKey';

/** PRECONDITION_FAILED is the error code of a put with ifNoneMatch when the key already exists. */
export const PRECONDITION_FAILED = 'PreconditionFailed';

/** INVALID_RANGE is the error code of a ranged get whose start lies at or beyond the object's end. */
export const INVALID_RANGE = 'InvalidRange';
