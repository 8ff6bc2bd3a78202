// Storage failures that callers branch on: an SwmError (exit 1) carrying an S3-style code such as 'NoSuchKey' or 'PreconditionFailed'.
import { ExitCode, SwmError } from '../errors.js';

/** StorageError is an SwmError with a machine-readable `code` (NO_SUCH_KEY, PRECONDITION_FAILED, INVALID_RANGE from types.ts). */
export class StorageError extends SwmError {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown; hint?: string }) {
    super(ExitCode.failed, message, options);
    this.name = 'StorageError';
    this.code = code;
  }
}

/** storageErrorCode returns the `code` of a StorageError (or of any error carrying a string code), else undefined. */
export function storageErrorCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}
