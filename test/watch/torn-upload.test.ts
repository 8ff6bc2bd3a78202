// A big file (streamed, not buffered) that changes while auto or push uploads it: the object must never hold bytes other
// than the ones its swm-hash names. Rewritten in place mid-upload → nothing stored (the old version stays), "unstable";
// appended to mid-upload → exactly the bytes that were hashed are stored. On a `file:` bucket and on the S3 test server.
import { afterEach, describe, expect, inject, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { uploadEntry, type TransferContext } from '../../src/engine/transfer.js';
import { statLocal } from '../../src/engine/scan.js';
import { createProgress } from '../../src/engine/progress.js';
import { createFileStorage } from '../../src/storage/file.js';
import { createS3Storage } from '../../src/storage/s3.js';
import type { Storage } from '../../src/storage/types.js';
import { BACKENDS, hash64, type BackendKind } from './cli-fixtures.js';

const folders: string[] = [];
afterEach(() => {
  for (const f of folders.splice(0)) rmSync(f, { recursive: true, force: true });
});

function openStorageFor(kind: BackendKind, root: string): Storage {
  if (kind === 'file') return createFileStorage(join(root, 'bucket'), { create: true });
  const s3 = inject('s3');
  return createS3Storage(
    { kind: 's3', provider: 'minio', bucket: s3.bucket, text: `minio:${s3.bucket}`, s3: { endpoint: s3.endpoint, region: s3.region } },
    { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
  );
}

/** meddling wraps a storage so that, once the first chunk of a streamed body has gone through, `change` runs on the file. */
function meddling(storage: Storage, change: () => void): Storage {
  return new Proxy(storage, {
    get(target, prop, receiver) {
      if (prop !== 'put') return Reflect.get(target, prop, receiver);
      return (key: string, body: Readable | Buffer, options: Parameters<Storage['put']>[2]) => {
        if (Buffer.isBuffer(body)) throw new Error('expected a streamed body: make the test file bigger');
        let first = true;
        const tap = new Transform({
          transform(chunk: Buffer, _enc, done) {
            done(null, chunk);
            if (first) {
              first = false;
              change();
            }
          },
        });
        body.on('error', (e) => tap.destroy(e));
        return target.put(key, body.pipe(tap), options);
      };
    },
  });
}

async function read(storage: Storage, key: string): Promise<{ body: Buffer; hash?: string } | undefined> {
  const head = await storage.head(key);
  if (!head) return undefined;
  const { info, body } = await storage.get(key);
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
  return { body: Buffer.concat(chunks), hash: info.meta?.hash };
}

describe.each(BACKENDS)('uploading a big file that changes meanwhile, on a %s bucket', (kind) => {
  it.each([3, 20])('%i MiB: a rewrite mid-upload stores nothing torn, an append stores exactly what was hashed', async (mib) => {
    const root = realpathSync(mkdtempSync(join(tmpdir(), 'swm-torn-')));
    folders.push(root);
    const ws = join(root, 'ws');
    const file = join(ws, 'ckpt.bin');
    const storage = openStorageFor(kind, root);
    const dest = `torn/${randomBytes(5).toString('hex')}/`;
    const key = `${dest}ckpt.bin`;
    const ctx = (s: Storage): TransferContext => ({ root: ws, storage: s, dest, progress: createProgress() });
    const rewriteTail = () => {
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.alloc(1 << 20, 0x5a), 0, 1 << 20, mib * (1 << 20) - (1 << 20));
      closeSync(fd);
    };
    try {
      const original = randomBytes(mib << 20);
      mkdirSync(ws);
      writeFileSync(file, original);

      // a new object: rewritten while streaming → not stored at all, reported unstable
      let out = await uploadEntry(statLocal(ws, 'ckpt.bin')!, undefined, ctx(meddling(storage, rewriteTail)));
      expect(out).toEqual({ kind: 'unstable', path: 'ckpt.bin' });
      expect(await storage.head(key)).toBeUndefined();

      // a clean upload, then a new version rewritten while streaming: the clean one stays, whole and matching its hash
      writeFileSync(file, original);
      out = await uploadEntry(statLocal(ws, 'ckpt.bin')!, undefined, ctx(storage));
      expect(out.kind).toBe('uploaded');
      const second = randomBytes(mib << 20);
      writeFileSync(file, second);
      out = await uploadEntry(statLocal(ws, 'ckpt.bin')!, undefined, ctx(meddling(storage, rewriteTail)));
      expect(out.kind).toBe('unstable');
      let stored = await read(storage, key);
      expect(stored?.body.equals(original)).toBe(true);
      expect(stored?.hash).toBe(await hash64(original));

      // appended to while streaming: the bytes that were hashed are stored, and the state says so
      writeFileSync(file, second);
      out = await uploadEntry(statLocal(ws, 'ckpt.bin')!, undefined, ctx(meddling(storage, () => appendFileSync(file, 'more lines\n'))));
      expect(out).toMatchObject({ kind: 'uploaded', entry: { size: second.length, hash: await hash64(second) } });
      stored = await read(storage, key);
      expect(stored?.body.equals(second)).toBe(true);
      expect(stored?.hash).toBe(await hash64(second));
      expect(readFileSync(file).length).toBe(second.length + 11);
    } finally {
      await storage.delete([key]).catch(() => {});
      await storage.close();
    }
  });
});

