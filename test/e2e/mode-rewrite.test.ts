// A metadata-only rewrite (a chmod, same bytes) on S3 must land in another LastModified second than the object it replaces: the ETag digests the content only, so that second is how other workspaces see the change.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createProgress } from '../../src/engine/progress.js';
import { statLocal } from '../../src/engine/scan.js';
import { uploadEntry } from '../../src/engine/transfer.js';
import { createS3Storage } from '../../src/storage/s3.js';

const s3 = inject('s3');
const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
const admin = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials, maxAttempts: 1 });
afterAll(() => admin.destroy());

describe('metadata-only rewrite on S3', () => {
  it('a chmod pushed right after the upload moves the object into a new second, with the new mode', async () => {
    const bucket = `swm-rewrite-${randomBytes(4).toString('hex')}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    const storage = createS3Storage({ kind: 's3', provider: 'minio', bucket, text: `minio:${bucket}`, s3: { endpoint: s3.endpoint, region: s3.region } }, { credentials });
    const root = mkdtempSync(join(tmpdir(), 'swm-rewrite-'));
    try {
      writeFileSync(join(root, 'run.sh'), '#!/bin/sh\n', { mode: 0o644 });
      const ctx = { root, storage, dest: 'w/', progress: createProgress() };
      const first = await uploadEntry(statLocal(root, 'run.sh')!, undefined, ctx);
      expect(first.kind).toBe('uploaded');
      const before = (await storage.head('w/run.sh'))!;

      chmodSync(join(root, 'run.sh'), 0o755); // same bytes: same ETag; only LastModified can tell
      if (first.kind !== 'uploaded') return;
      const second = await uploadEntry(statLocal(root, 'run.sh')!, first.entry, ctx);
      expect(second.kind).toBe('uploaded');
      const after = (await storage.head('w/run.sh'))!;
      expect(after.etag).toBe(before.etag);
      expect(after.meta?.mode).toBe(0o755);
      expect(Math.floor(after.lastModified! / 1000)).not.toBe(Math.floor(before.lastModified! / 1000));
    } finally {
      rmSync(root, { recursive: true, force: true });
      await storage.close();
    }
  });
});
