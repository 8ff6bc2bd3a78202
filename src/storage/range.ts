// Byte-range checks shared by both backends, so a malformed range fails the same way on file: and S3.
import { StorageError } from './storage-error.js';
import { INVALID_RANGE, type ByteRange } from './types.js';

/** validateRange rejects ranges that are empty or malformed (start must be >= 0 and below end). */
export function validateRange(key: string, range: ByteRange): void {
  if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end <= range.start) {
    throw new StorageError(INVALID_RANGE, `range ${range.start}-${range.end} of ${key} is empty or malformed: use 0 <= start < end`);
  }
}
