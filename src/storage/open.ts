// Opens the Storage for a BucketSpec; the S3 backend (and the AWS SDK, ~70 ms to import) is loaded only when a spec needs it.
import type { BucketSpec } from '../config/types.js';
import { createFileStorage } from './file.js';
import type { Storage } from './types.js';

/** OpenStorageOptions: `create` lets a missing `file:` bucket folder be created (the embedded default bucket). */
export interface OpenStorageOptions {
  create?: boolean;
}

/** openStorage returns the backend for spec without touching the network or disk; call check() to verify the bucket. */
export async function openStorage(spec: BucketSpec, options: OpenStorageOptions = {}): Promise<Storage> {
  if (spec.kind === 'file') return createFileStorage(spec.path, { create: options.create ?? false });
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { createS3Storage } = await import('./s3.js');
  return createS3Storage(spec);
}
