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
  /** true when the backend offers `multipart` (MultipartUploads): uploads that outlive the process and can be resumed. */
  resumableMultipart: boolean;
}

/** UploadedPart is one stored part of a multipart upload, as the server lists it. */
export interface UploadedPart {
  /** 1-based part number. */
  partNumber: number;
  /** the part's etag (quotes stripped), needed to complete the upload. */
  etag: string;
  size: number;
}

/**
 * MultipartUploads is the low-level multipart API behind features.resumableMultipart: the caller chooses the parts and
 * keeps the upload id, so an upload interrupted in one process can be continued (or aborted) by the next.
 * Errors are SwmErrors; an upload that no longer exists fails with code NO_SUCH_UPLOAD.
 */
export interface MultipartUploads {
  /** create starts an upload of key whose object will carry meta; returns its upload id. */
  create(key: string, meta: ObjectMeta): Promise<string>;
  /** uploadPart stores one part (partNumber 1..10,000; whole in memory so a failed request can be retried); returns its etag. */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer, signal?: AbortSignal): Promise<string>;
  /** listParts lists the parts stored so far in part-number order, or undefined when the upload is gone (completed or aborted). */
  listParts(key: string, uploadId: string): Promise<UploadedPart[] | undefined>;
  /** complete assembles the listed parts, in order, into the object (readers see old or new); returns the object's etag. */
  complete(key: string, uploadId: string, parts: { partNumber: number; etag: string }[]): Promise<{ etag: string }>;
  /** abort discards the upload and its stored parts; an upload already gone is not an error. */
  abort(key: string, uploadId: string): Promise<void>;
}

/** Storage is one bucket. Keys are full object keys (the dest prefix included). */
export interface Storage {
  /** "file:/abs/path" or "s3:bucket": for messages. Never contains secrets. */
  readonly description: string;
  readonly features: StorageFeatures;
  /** the resumable multipart API: present exactly when features.resumableMultipart is true. */
  readonly multipart?: MultipartUploads;
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
  /**
   * Aborts incomplete multipart uploads under prefix started before olderThanMs ago, except those whose upload id is in
   * `keep` (uploads a resume record still refers to). Returns how many were aborted.
   */
  abortStaleUploads(prefix: string, olderThanMs: number, keep?: ReadonlySet<string>): Promise<number>;
  /** Releases sockets/handles. */
  close(): Promise<void>;
}

/** StorageNotFound is the error code get() uses for a missing key (error.code === 'NoSuchKey'). */
export const NO_SUCH_KEY = 'NoSuchKey';

/** PRECONDITION_FAILED is the error code of a put with ifNoneMatch when the key already exists. */
export const PRECONDITION_FAILED = 'PreconditionFailed';

/** NO_SUCH_UPLOAD is the error code of a MultipartUploads call on an upload that was completed or aborted. */
export const NO_SUCH_UPLOAD = 'NoSuchUpload';

/** INVALID_RANGE is the error code of a ranged get whose start lies at or beyond the object's end. */
export const INVALID_RANGE = 'InvalidRange';
