// Resumable multipart uploads (issue 6 item 3): a push of a big file killed midway continues from the parts already stored, sending only the rest; a changed file, -f or an expired record start fresh and abort the old upload; stale uploads of ours are aborted.
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import xxhash from 'xxhash-wasm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { SWM_MAIN, summaryOf, useScratch, type Scratch, type SwmRun } from '../support/e2e.js';
import { createS3Storage } from '../../src/storage/s3.js';
import { NO_SUCH_UPLOAD, type Storage } from '../../src/storage/types.js';
import { ResumableUploads } from '../../src/engine/resumable-upload.js';
import { appendUploadPart, listUploadRecords, readUploadRecord, removeUploadRecord, writeUploadRecord, type UploadRecord } from '../../src/state/uploads.js';

const MiB = 1024 * 1024;
/** size of the file killed and resumed (SWM_RESUME_TEST_MIB; the case is 1024, CI keeps 256). */
const BIG_BYTES = Number(process.env.SWM_RESUME_TEST_MIB ?? 256) * MiB;
/** size of the files in the other cases: above the 64 MiB resumable threshold, 9 parts of 8 MiB. */
const MID_BYTES = 72 * MiB;
/** the part size swm picks for files up to ~78 GiB. */
const PART = 8 * MiB;
/** at most this many parts are in flight per file, so at most this many can land unrecorded before a kill. */
const MAX_IN_FLIGHT = 8;

/** fillRandom writes `size` random bytes to path (fast: one random block, varied per MiB so no two parts are alike). */
function fillRandom(path: string, size: number, seed: number): void {
  const block = Buffer.alloc(MiB);
  randomFillSync(block);
  const out = Buffer.allocUnsafe(size);
  for (let off = 0, i = 0; off < size; off += MiB, i++) {
    block.writeUInt32LE(seed, 0);
    block.writeUInt32LE(i, 4);
    block.copy(out, off, 0, Math.min(MiB, size - off));
  }
  writeFileSync(path, out);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('resumable multipart uploads of big files (S3)', () => {
  const scratch = useScratch();
  const s3 = inject('s3');
  const bucket = `s3:${s3.bucket}`;
  let direct: S3Client;
  let proxy: FaultProxy;
  let xxh64: (data: Buffer) => string;
  let destCounter = 0;

  beforeAll(async () => {
    direct = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    proxy = await startFaultProxy(s3.endpoint);
    const h = await xxhash();
    xxh64 = (data) => h.create64().update(data).digest().toString(16).padStart(16, '0');
  });
  afterAll(async () => {
    direct?.destroy();
    await proxy?.close();
  });

  const s3Env = (endpoint = s3.endpoint) => ({
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: s3.region,
  });
  const freshDest = () => `resume/${process.pid}-${Date.now().toString(36)}-${destCounter++}/`;

  /** push runs `swm sync push` against the server (or the fault proxy) with --json. */
  function push(s: Scratch, ws: string, dest: string, extra: string[] = [], env: Record<string, string> = {}, endpoint?: string): Promise<SwmRun> {
    return s.swm(['sync', 'push', 'demo', ws, '-b', bucket, '-d', dest, '--json', ...extra], { env: { ...s3Env(endpoint), ...env }, timeoutMs: 120_000 });
  }

  /** bytesSent is what a push's --json summary says went over the wire. */
  const bytesSent = (run: SwmRun) => summaryOf(run).bytes as number;

  /** uploadsUnder lists the multipart uploads in progress whose key starts with prefix (whole bucket listed: MinIO's Prefix matches whole keys). */
  async function uploadsUnder(prefix: string): Promise<{ key: string; uploadId: string }[]> {
    const found: { key: string; uploadId: string }[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await direct.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      for (const u of page.Uploads ?? []) if (u.Key?.startsWith(prefix) && u.UploadId) found.push({ key: u.Key, uploadId: u.UploadId });
      if (!page.IsTruncated) return found;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async function partsOf(key: string, uploadId: string): Promise<{ partNumber: number; size: number }[]> {
    const r = await direct.send(new ListPartsCommand({ Bucket: s3.bucket, Key: key, UploadId: uploadId }));
    return (r.Parts ?? []).map((p) => ({ partNumber: p.PartNumber!, size: p.Size! }));
  }

  /** expectObjectIs checks the stored object against the local file: same bytes (sha256 of a raw download) and swm metadata. */
  async function expectObjectIs(key: string, file: string): Promise<void> {
    const local = readFileSync(file);
    const r = await direct.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    const body = Buffer.from(await r.Body!.transformToByteArray());
    expect(body.length).toBe(local.length);
    expect(sha256(body)).toBe(sha256(local));
    const head = await direct.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    expect(head.Metadata).toMatchObject({
      'swm-hash': xxh64(local),
      'swm-mtime': String(Math.floor(statSync(file).mtimeMs)),
      'swm-mode': (statSync(file).mode & 0o7777).toString(8),
    });
  }

  /** recordFiles lists what `.swm/uploads/` holds. */
  const recordFiles = (ws: string) => (existsSync(join(ws, '.swm', 'uploads')) ? readdirSync(join(ws, '.swm', 'uploads')) : []);

  /**
   * pushUntilKilled starts a push and SIGKILLs it once its --json progress reports `fraction` of the file sent (the
   * parts counted there are stored and recorded). Resolves with the bytes the progress last reported.
   */
  function pushUntilKilled(s: Scratch, ws: string, dest: string, path: string, size: number, fraction: number): Promise<{ reported: number; signal: string | null; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [SWM_MAIN, 'sync', 'push', 'demo', ws, '-b', bucket, '-d', dest, '--json'], {
        env: { ...s.env, ...s3Env() },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let reported = 0;
      let pending = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        pending += d;
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith('{')) continue;
          const event = JSON.parse(line) as { type: string; path?: string; bytes?: number };
          if (event.type === 'bytes' && event.path === path) {
            reported = Math.max(reported, event.bytes ?? 0);
            if (reported >= fraction * size && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          }
        }
      });
      child.on('error', reject);
      child.on('close', (_code, signal) => {
        clearTimeout(timer);
        resolve({ reported, signal, stderr });
      });
    });
  }

  it(
    `a push of a ${BIG_BYTES / MiB} MiB file killed midway continues from its stored parts: only the rest is sent`,
    async () => {
      const s = scratch();
      const ws = s.dir('ws');
      const file = join(ws, 'big.bin');
      fillRandom(file, BIG_BYTES, 1);
      writeFileSync(join(ws, 'small.txt'), 'hello');
      const dest = freshDest();
      const key = `${dest}big.bin`;

      const killed = await pushUntilKilled(s, ws, dest, 'big.bin', BIG_BYTES, 0.4);
      expect(killed.signal, `the push finished before it could be killed:\n${killed.stderr}`).toBe('SIGKILL');
      expect(killed.reported).toBeGreaterThanOrEqual(0.4 * BIG_BYTES);
      expect(killed.reported).toBeLessThan(BIG_BYTES);

      // the server holds one upload of ours with the parts the progress counted (and perhaps a few more in flight)
      const open = await uploadsUnder(dest);
      expect(open.map((u) => u.key)).toEqual([key]);
      const landed = await partsOf(key, open[0]!.uploadId);
      const landedBytes = landed.reduce((n, p) => n + p.size, 0);
      expect(landedBytes).toBeGreaterThanOrEqual(killed.reported);
      expect(recordFiles(ws).some((n) => n.endsWith('.json'))).toBe(true);

      // SWM_STALE_UPLOAD_MS=0: the sweep of stale uploads must leave the recorded one alone
      const resumed = await push(s, ws, dest, [], { SWM_STALE_UPLOAD_MS: '0' });
      expect(resumed.code, resumed.stderr).toBe(0);
      const sent = bytesSent(resumed);
      const bigSent = Math.max(0, ...resumed.events.filter((e) => e.type === 'bytes' && e.path === 'big.bin').map((e) => e.bytes as number));
      console.log(
        `resume: ${BIG_BYTES / MiB} MiB file killed after ${(killed.reported / MiB).toFixed(0)} MiB reported, ` +
          `${(landedBytes / MiB).toFixed(0)} MiB in ${landed.length} stored parts; the resumed push sent ${(bigSent / MiB).toFixed(0)} MiB of it ` +
          `(summary ${sent} bytes, small.txt included)`,
      );
      // only the missing parts went over the wire: the stored ones, less those that landed after their run was killed
      // but before it could log them (at most the parts in flight)
      expect(bigSent).toBeGreaterThanOrEqual(BIG_BYTES - landedBytes);
      expect(bigSent).toBeLessThanOrEqual(BIG_BYTES - landedBytes + MAX_IN_FLIGHT * PART);
      expect(bigSent).toBeLessThanOrEqual(BIG_BYTES - killed.reported);
      // small.txt went in the killed run; the rerun sends it again or, finding it equal in the bucket, not at all
      expect([bigSent, bigSent + 'hello'.length]).toContain(sent);

      await expectObjectIs(key, file);
      expect(recordFiles(ws)).toEqual([]);
      expect(await uploadsUnder(dest)).toEqual([]);

      // and the state knows it: the next push sends nothing
      const again = await push(s, ws, dest);
      expect(again.code, again.stderr).toBe(0);
      expect(bytesSent(again)).toBe(0);
    },
    120_000,
  );

  /**
   * interruptThroughProxy pushes through the fault proxy with every UploadPart from part 5 on refused (403): parts 1–4
   * land and are recorded, the push fails (exit 1) and leaves its upload for the next push.
   */
  async function interruptThroughProxy(s: Scratch, ws: string, dest: string): Promise<string> {
    proxy.clearFaults();
    proxy.failPermanently({ method: 'PUT', path: /[?&]partNumber=(?:[5-9]|[1-9]\d+)(?:&|$)/, status: 403, code: 'AccessDenied' });
    try {
      const failed = await push(s, ws, dest, [], {}, proxy.url);
      expect(failed.code, failed.stderr).toBe(1);
    } finally {
      proxy.clearFaults();
    }
    const open = await uploadsUnder(dest);
    expect(open).toHaveLength(1);
    expect((await partsOf(open[0]!.key, open[0]!.uploadId)).map((p) => p.partNumber)).toEqual([1, 2, 3, 4]);
    return open[0]!.uploadId;
  }

  it('the resume point is kept when parts fail, and a plain rerun sends only the parts that are missing', async () => {
    const s = scratch();
    const ws = s.dir('ws');
    const file = join(ws, 'mid.bin');
    fillRandom(file, MID_BYTES, 2);
    const dest = freshDest();
    await interruptThroughProxy(s, ws, dest);
    const rerun = await push(s, ws, dest);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(bytesSent(rerun)).toBe(MID_BYTES - 4 * PART);
    await expectObjectIs(`${dest}mid.bin`, file);
    expect(await uploadsUnder(dest)).toEqual([]);
    expect(recordFiles(ws)).toEqual([]);
  });

  it.each([
    ['the file changed between the runs', 'changed'],
    ['-f discards the resume point', 'force'],
    ['the resume record is older than SWM_RESUME_MAX_AGE_MS', 'expired'],
  ])('%s: the whole file is sent and the old upload aborted', async (_title, variant) => {
    const s = scratch();
    const ws = s.dir('ws');
    const file = join(ws, 'mid.bin');
    fillRandom(file, MID_BYTES, 3);
    const dest = freshDest();
    const oldUpload = await interruptThroughProxy(s, ws, dest);
    if (variant === 'changed') fillRandom(file, MID_BYTES, 4);
    const rerun = await push(s, ws, dest, variant === 'force' ? ['-f'] : [], variant === 'expired' ? { SWM_RESUME_MAX_AGE_MS: '0' } : {});
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(bytesSent(rerun)).toBe(MID_BYTES);
    await expectObjectIs(`${dest}mid.bin`, file);
    const left = await uploadsUnder(dest);
    expect(left.map((u) => u.uploadId)).not.toContain(oldUpload);
    expect(left).toEqual([]);
    expect(recordFiles(ws)).toEqual([]);
  });

  it('an upload whose file is gone by the next push is aborted with its record', async () => {
    const s = scratch();
    const ws = s.dir('ws');
    const file = join(ws, 'mid.bin');
    fillRandom(file, MID_BYTES, 5);
    writeFileSync(join(ws, 'keep.txt'), 'keep');
    const dest = freshDest();
    await interruptThroughProxy(s, ws, dest);
    unlinkSync(file);
    const rerun = await push(s, ws, dest);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await uploadsUnder(dest)).toEqual([]);
    expect(recordFiles(ws)).toEqual([]);
  });

  it('stale uploads under the dest are aborted at the next push once older than SWM_STALE_UPLOAD_MS; younger ones and other prefixes stay', async () => {
    const s = scratch();
    const ws = s.dir('ws');
    writeFileSync(join(ws, 'a.txt'), 'a');
    const dest = freshDest();
    const elsewhere = freshDest();
    const start = async (key: string) => {
      const { UploadId } = await direct.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: key }));
      await direct.send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId, PartNumber: 1, Body: Buffer.alloc(MiB, 7) }));
      return UploadId!;
    };
    const orphan = await start(`${dest}orphan.bin`);
    const foreign = await start(`${elsewhere}other.bin`);
    try {
      await new Promise((r) => setTimeout(r, 1_500)); // servers record upload start times in whole seconds
      const young = await push(s, ws, dest, [], { SWM_STALE_UPLOAD_MS: '3600000' });
      expect(young.code, young.stderr).toBe(0);
      expect((await uploadsUnder(dest)).map((u) => u.uploadId)).toEqual([orphan]);

      const old = await push(s, ws, dest, [], { SWM_STALE_UPLOAD_MS: '1000' });
      expect(old.code, old.stderr).toBe(0);
      expect(await uploadsUnder(dest)).toEqual([]);
      expect((await uploadsUnder(elsewhere)).map((u) => u.uploadId)).toEqual([foreign]);
    } finally {
      await direct.send(new AbortMultipartUploadCommand({ Bucket: s3.bucket, Key: `${elsewhere}other.bin`, UploadId: foreign }));
      await direct.send(new AbortMultipartUploadCommand({ Bucket: s3.bucket, Key: `${dest}orphan.bin`, UploadId: orphan })).catch(() => {});
    }
  });
});

describe('the multipart API of the S3 backend and the resumable upload engine', () => {
  const scratch = useScratch();
  const s3 = inject('s3');
  let storage: Storage;
  beforeAll(() => {
    storage = createS3Storage(
      { kind: 's3', provider: 's3', bucket: s3.bucket, text: `s3:${s3.bucket}`, s3: { endpoint: s3.endpoint, region: s3.region } },
      { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
    );
  });
  afterAll(async () => storage?.close());
  const prefix = () => `resume-api/${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}/`;

  it('create, uploadPart, listParts, complete and abort; a finished upload lists as gone and aborts quietly', async () => {
    expect(storage.features.resumableMultipart).toBe(true);
    const api = storage.multipart!;
    const key = `${prefix()}obj.bin`;
    const first = Buffer.alloc(5 * MiB, 1);
    const last = Buffer.from('tail');
    const id = await api.create(key, { hash: '00112233445566ff', mtimeMs: 1_700_000_000_123, mode: 0o640, type: 'file' });
    const e2 = await api.uploadPart(key, id, 2, last);
    const e1 = await api.uploadPart(key, id, 1, first);
    expect(await api.listParts(key, id)).toEqual([
      { partNumber: 1, etag: e1, size: first.length },
      { partNumber: 2, etag: e2, size: last.length },
    ]);
    const { etag } = await api.complete(key, id, [{ partNumber: 1, etag: e1 }, { partNumber: 2, etag: e2 }]);
    const head = await storage.head(key);
    expect(head).toMatchObject({ size: first.length + last.length, etag, meta: { hash: '00112233445566ff', mtimeMs: 1_700_000_000_123, mode: 0o640 } });
    expect(await api.listParts(key, id)).toBeUndefined();
    await api.abort(key, id);
    await expect(api.complete(key, id, [{ partNumber: 1, etag: e1 }])).rejects.toMatchObject({ code: NO_SUCH_UPLOAD });

    const other = await api.create(`${key}.2`, {});
    await api.uploadPart(`${key}.2`, other, 1, last);
    await api.abort(`${key}.2`, other);
    expect(await api.listParts(`${key}.2`, other)).toBeUndefined();
    expect(await storage.head(`${key}.2`)).toBeUndefined();
    await storage.delete([key]);
  });

  it('a file whose bytes no longer hash as the hash pass said is not completed: upload aborted, record gone, nothing stored', async () => {
    const ws = scratch().dir('ws');
    const dest = prefix();
    const abs = join(ws, 'f.bin');
    fillRandom(abs, 10 * MiB, 9);
    const st = statSync(abs);
    const uploads = ResumableUploads.forTarget(ws, storage, dest)!;
    const wrong = '0000000000000000';
    const out = await uploads.upload({
      key: `${dest}f.bin`, abs, size: st.size, mtimeMs: Math.floor(st.mtimeMs), mode: st.mode & 0o7777, hash: wrong, meta: { hash: wrong },
    });
    expect(out).toEqual({ kind: 'changed' });
    expect(await storage.head(`${dest}f.bin`)).toBeUndefined();
    expect(existsSync(join(ws, '.swm', 'uploads')) ? readdirSync(join(ws, '.swm', 'uploads')) : []).toEqual([]);
    const client = new S3Client({
      endpoint: s3.endpoint, region: s3.region, forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    try {
      const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }));
      expect((listed.Uploads ?? []).filter((u) => u.Key?.startsWith(dest))).toEqual([]);
    } finally {
      client.destroy();
    }
  });
});

describe('resume records in .swm/uploads', () => {
  const scratch = useScratch();
  const record = (key: string, uploadId: string): UploadRecord => ({
    bucket: 's3:b', key, uploadId, size: 100 * MiB, mtimeMs: 1_700_000_000_123, mode: 0o644, hash: '0123456789abcdef', partSize: 8 * MiB, startedAt: 1,
  });

  it('round-trip a record and its part log; torn lines and lines of an earlier upload of the key do not count', async () => {
    const ws = scratch().dir('ws');
    const first = record('d/x.bin', 'upload-1');
    await writeUploadRecord(ws, first);
    appendUploadPart(ws, first, { partNumber: 1, etag: 'e1', hash: 'aaaaaaaaaaaaaaaa' });
    const second = record('d/x.bin', 'upload-2');
    await writeUploadRecord(ws, second);
    appendUploadPart(ws, first, { partNumber: 2, etag: 'stale', hash: 'bbbbbbbbbbbbbbbb' }); // a late line of the old upload
    appendUploadPart(ws, second, { partNumber: 3, etag: 'e3', hash: 'cccccccccccccccc' });
    const [log] = readdirSync(join(ws, '.swm', 'uploads')).filter((n) => n.endsWith('.parts'));
    writeFileSync(join(ws, '.swm', 'uploads', log!), readFileSync(join(ws, '.swm', 'uploads', log!), 'utf8') + 'deadbeefdeadbeef 4 e4 cccc'); // torn

    const read = readUploadRecord(ws, 's3:b', 'd/x.bin');
    expect(read?.record).toEqual(second);
    expect([...read!.parts.values()]).toEqual([{ partNumber: 3, etag: 'e3', hash: 'cccccccccccccccc' }]);
    expect(readUploadRecord(ws, 's3:other', 'd/x.bin')).toBeUndefined();
    for (const name of readdirSync(join(ws, '.swm', 'uploads'))) expect(statSync(join(ws, '.swm', 'uploads', name)).mode & 0o777).toBe(0o600);

    expect(listUploadRecords(ws)).toEqual([second]);
    removeUploadRecord(ws, 's3:b', 'd/x.bin');
    expect(readUploadRecord(ws, 's3:b', 'd/x.bin')).toBeUndefined();
    expect(readdirSync(join(ws, '.swm', 'uploads'))).toEqual([]);
  });

  it('an unreadable record reads as none and is swept, with orphaned part logs', async () => {
    const ws = scratch().dir('ws');
    const r = record('d/y.bin', 'upload-9');
    await writeUploadRecord(ws, r);
    appendUploadPart(ws, r, { partNumber: 1, etag: 'e1', hash: 'aaaaaaaaaaaaaaaa' });
    const dir = join(ws, '.swm', 'uploads');
    const header = readdirSync(dir).find((n) => n.endsWith('.json'))!;
    writeFileSync(join(dir, header), '{"version":1,"bucket":"s3:b"');
    expect(readUploadRecord(ws, 's3:b', 'd/y.bin')).toBeUndefined();
    expect(listUploadRecords(ws)).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });
});
