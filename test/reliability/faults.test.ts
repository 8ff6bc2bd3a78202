// Fault injection: push and pull through a proxy that fails 10% of requests (5xx, SlowDown, resets, truncations, stalls) still land byte for byte; a permanent fault exits 1 and does not advance the state.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ALL_FAULT_KINDS, startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { expectSameTree, readTree, summaryOf, useScratch, writeTree, type Scratch, type TreeSpec } from '../support/e2e.js';
import { readState, stateFileFor, validateState } from '../../src/state/store.js';
import { compareKeys } from '../../src/keys.js';

const SMALL_FILES = 2_000;
const BIG_FILE_BYTES = 64 * 1024 * 1024;
/** the client's idle timeout in these runs: a stalled answer must be given up on and retried well before the test ends. */
const IDLE_TIMEOUT_MS = 3_000;

describe('S3 fault injection', () => {
  const scratch = useScratch();
  const s3 = inject('s3');
  let proxy: FaultProxy;
  let direct: S3Client;

  beforeAll(async () => {
    proxy = await startFaultProxy(s3.endpoint);
    direct = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  });
  afterAll(async () => {
    direct?.destroy();
    await proxy?.close();
  });

  /** through runs swm with the proxy as its endpoint. */
  function through(s: Scratch, args: string[]) {
    return s.swm(args, {
      timeoutMs: 240_000,
      env: {
        AWS_ENDPOINT_URL: proxy.url,
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        AWS_REGION: s3.region,
        SWM_S3_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
      },
    });
  }

  /** remoteObjects reads every object under dest straight from the server (not through the proxy or swm). */
  async function remoteObjects(dest: string): Promise<Map<string, Buffer>> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await direct.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: dest, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const out = new Map<string, Buffer>();
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        const r = await direct.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
        out.set(key.slice(dest.length), Buffer.from(await r.Body!.transformToByteArray()));
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    return out;
  }

  /** expectBucketEqualsWorkspace: one object per workspace file, same bytes, nothing else. */
  async function expectBucketEqualsWorkspace(dest: string, ws: string): Promise<void> {
    const remote = await remoteObjects(dest);
    const tree = readTree(ws);
    const files = Object.keys(tree).filter((p) => tree[p]!.type === 'file').sort(compareKeys);
    expect([...remote.keys()].sort(compareKeys)).toEqual(files);
    for (const path of files) {
      const local = readFileSync(join(ws, path));
      const body = remote.get(path)!;
      if (!body.equals(local)) expect.fail(`${path}: the object (${body.length} bytes) differs from the workspace file (${local.length} bytes)`);
    }
  }

  /** expectOneLinePerFailure: stderr is one `swm:` line per failed path (named in the pattern's first group), no stack trace. */
  function expectOneLinePerFailure(stderr: string, count: number, pattern: RegExp): void {
    expect(stderr).not.toMatch(/\n\s+at |node:internal/);
    const lines = stderr.split('\n').filter((l) => l.trim().length > 0);
    const named = new Set<string>();
    for (const line of lines) {
      const m = pattern.exec(line);
      if (!m) expect.fail(`unexpected stderr line: ${line}`);
      named.add(m[1]!);
    }
    expect(named.size).toBe(count);
  }

  function bigTree(): TreeSpec {
    const spec: TreeSpec = {};
    for (let i = 0; i < SMALL_FILES; i++) {
      spec[`src/d${String(i % 40).padStart(2, '0')}/f${i}.txt`] = Buffer.concat([Buffer.from(`file ${i}\n`), randomBytes(64 + ((i * 37) % 3000))]);
    }
    spec['ckpt/model.bin'] = randomBytes(BIG_FILE_BYTES);
    return spec;
  }

  async function expectStateValid(ws: string, dest: string): Promise<Set<string>> {
    const file = stateFileFor(ws, `s3:${s3.bucket}`, dest, 'files');
    expect(existsSync(file)).toBe(true);
    expect(await validateState(file)).toBeUndefined();
    const paths = new Set<string>();
    for await (const e of readState(file)) paths.add(e.path);
    return paths;
  }

  it(
    `push and pull of ${SMALL_FILES} files and a 64 MiB file complete byte for byte at a 10% fault rate`,
    async () => {
      const s = scratch();
      const ws = s.dir('workspace');
      writeTree(ws, bigTree());
      const dest = `faults/${randomBytes(6).toString('hex')}/`;
      const target = ['-b', `s3:${s3.bucket}`, '-d', dest, '--json'];

      proxy.resetCounts();
      proxy.setScript({ seed: 0x5eed01, rate: 0.1, kinds: ALL_FAULT_KINDS });
      const push = await through(s, ['sync', 'push', 'demo', ws, ...target]);
      proxy.clearFaults();
      const pushFaults = { ...proxy.counts, byKind: { ...proxy.counts.byKind } };
      expect(push.code, `${push.stderr}\n${push.stdout.slice(-3000)}`).toBe(0);
      expect(summaryOf(push).uploaded).toBe(SMALL_FILES + 1);
      expect(pushFaults.injected).toBeGreaterThan(0);
      expect(pushFaults.byMethod.PUT ?? 0).toBeGreaterThan(0);
      await expectBucketEqualsWorkspace(dest, ws);
      expect((await expectStateValid(ws, dest)).size).toBe(SMALL_FILES + 1);

      const copy = s.path('pulled');
      proxy.resetCounts();
      proxy.setScript({ seed: 0x5eed02, rate: 0.1, kinds: ALL_FAULT_KINDS });
      const pull = await through(s, ['sync', 'pull', 'demo', copy, ...target]);
      proxy.clearFaults();
      const pullFaults = { ...proxy.counts, byKind: { ...proxy.counts.byKind } };
      expect(pull.code, `${pull.stderr}\n${pull.stdout.slice(-3000)}`).toBe(0);
      expect(summaryOf(pull).downloaded).toBe(SMALL_FILES + 1);
      expect(pullFaults.injected).toBeGreaterThan(0);
      // body-cutting faults hit downloads: these must have been caught (length or xxh64) and retried, never written
      expect(pullFaults.byKind.truncate + pullFaults.byKind['short-body'] + pullFaults.byKind['reset-response']).toBeGreaterThan(0);
      expectSameTree(copy, ws);
      expect((await expectStateValid(copy, dest)).size).toBe(SMALL_FILES + 1);
      console.log(`faults injected: push ${JSON.stringify(pushFaults)}, pull ${JSON.stringify(pullFaults)}`);
    },
    300_000,
  );

  it('multipart uploads (resumable and lib-storage sizes) survive failed, reset, stalled and replayed parts and a lost Complete answer; big downloads survive cut bodies', async () => {
    const s = scratch();
    const ws = s.dir('workspace');
    // 64 MiB goes through swm's resumable multipart driver, 24 MiB through lib-storage's Upload (3 parts of 8 MiB)
    const files = { 'ckpt/model.bin': BIG_FILE_BYTES, 'ckpt/optim.bin': 24 * 1024 * 1024 };
    writeTree(ws, { ...Object.fromEntries(Object.entries(files).map(([p, n]) => [p, randomBytes(n)])), 'ckpt/step.txt': 'step 1000\n' });
    const dest = `faults/${randomBytes(6).toString('hex')}/`;
    const target = ['-b', `s3:${s3.bucket}`, '-d', dest, '--json'];
    const objectOf = (path: string) => `/${s3.bucket}/${dest}${path.replace(/\./g, '\\.')}`;

    proxy.resetCounts();
    for (const path of Object.keys(files)) {
      const object = objectOf(path);
      const part = (n: number) => new RegExp(`^${object}\\?.*partNumber=${n}(&|$)`);
      proxy.injectNext({ method: 'POST', path: new RegExp(`^${object}\\?uploads`), kind: 'slowdown' });
      proxy.injectNext({ method: 'PUT', path: part(1), kind: 'status500' });
      proxy.injectNext({ method: 'PUT', path: part(2), kind: 'reset-request' });
      // the server stored the part, the answer is lost: the part is sent again
      proxy.injectNext({ method: 'PUT', path: part(2), kind: 'reset-response' });
      proxy.injectNext({ method: 'PUT', path: part(3), kind: 'stall' });
      // the server completes the upload, the answer is lost: the SDK's replay of Complete finds no upload and must not fail the file
      proxy.injectNext({ method: 'POST', path: new RegExp(`^${object}\\?.*uploadId=`), kind: 'reset-response' });
    }
    const push = await through(s, ['sync', 'push', 'demo', ws, ...target]);
    expect(push.code, `${push.stderr}\n${push.stdout.slice(-3000)}`).toBe(0);
    expect(proxy.targetedLeft()).toBe(0);
    expect(proxy.counts.injected).toBe(12);
    await expectBucketEqualsWorkspace(dest, ws);

    proxy.resetCounts();
    for (const path of Object.keys(files)) {
      const object = new RegExp(`^${objectOf(path)}(\\?|$)`);
      proxy.injectNext({ method: 'GET', path: object, kind: 'truncate' });
      proxy.injectNext({ method: 'GET', path: object, kind: 'short-body' });
      proxy.injectNext({ method: 'GET', path: object, kind: 'stall', stallBeforeHeaders: false });
    }
    const copy = s.path('pulled');
    const pull = await through(s, ['sync', 'pull', 'demo', copy, ...target]);
    expect(pull.code, `${pull.stderr}\n${pull.stdout.slice(-3000)}`).toBe(0);
    expect(proxy.targetedLeft()).toBe(0);
    expect(proxy.counts.injected).toBe(6);
    expectSameTree(copy, ws);
  }, 180_000);

  it('a permanent fault on one folder: exit 1 with a one-line message, the state does not record what did not land, a later push uploads it', async () => {
    const s = scratch();
    const ws = s.dir('workspace');
    const spec: TreeSpec = {};
    for (let i = 0; i < 40; i++) spec[`keep/k${i}.txt`] = `keep ${i}\n`;
    for (let i = 0; i < 12; i++) spec[`blocked/b${i}.txt`] = `blocked ${i}\n`;
    writeTree(ws, spec);
    const dest = `faults/${randomBytes(6).toString('hex')}/`;
    const target = ['-b', `s3:${s3.bucket}`, '-d', dest];

    proxy.resetCounts();
    proxy.failPermanently({ method: 'PUT', path: new RegExp(`^/${s3.bucket}/${dest}blocked/`), status: 503, code: 'ServiceUnavailable' });
    const failed = await through(s, ['sync', 'push', 'demo', ws, ...target]);
    proxy.clearFaults();
    expect(failed.code, failed.stderr).toBe(1);
    // every blocked file was tried, and retried, before giving up
    expect(proxy.counts.permanent).toBeGreaterThan(12);
    expectOneLinePerFailure(failed.stderr, 12, /^swm: .*(blocked\/b\d+\.txt): put .*ServiceUnavailable \(HTTP 503\)/);
    expect(failed.stdout).toMatch(/40 uploaded.*12 errors/);

    // what landed is recorded; what did not is not
    const recorded = await expectStateValid(ws, dest);
    expect([...recorded].filter((p) => p.startsWith('blocked/'))).toEqual([]);
    expect([...recorded].filter((p) => p.startsWith('keep/'))).toHaveLength(40);
    expect([...(await remoteObjects(dest)).keys()].filter((p) => p.startsWith('blocked/'))).toEqual([]);

    const healed = await through(s, ['sync', 'push', 'demo', ws, ...target, '--json']);
    expect(healed.code, healed.stderr).toBe(0);
    expect(summaryOf(healed).uploaded).toBe(12);
    await expectBucketEqualsWorkspace(dest, ws);
    expect((await expectStateValid(ws, dest)).size).toBe(52);

    // the same for pull: every GET under blocked/ fails
    const copy = s.path('pulled');
    proxy.failPermanently({ method: 'GET', path: new RegExp(`^/${s3.bucket}/${dest}blocked/`), status: 500, code: 'InternalError' });
    const cut = await through(s, ['sync', 'pull', 'demo', copy, ...target]);
    proxy.clearFaults();
    expect(cut.code, cut.stderr).toBe(1);
    expectOneLinePerFailure(cut.stderr, 12, /^swm: .*(blocked\/b\d+\.txt): get .*InternalError \(HTTP 500\)/);
    // nothing of blocked/ was written (its folder may have been made, empty)
    const files = Object.entries(readTree(copy)).filter(([, e]) => e.type !== 'dir').map(([p]) => p);
    expect(files.sort(compareKeys)).toEqual(Object.keys(spec).filter((p) => p.startsWith('keep/')).sort(compareKeys));
    const pulledState = await expectStateValid(copy, dest);
    expect([...pulledState].filter((p) => p.startsWith('blocked/'))).toEqual([]);
    const completed = await through(s, ['sync', 'pull', 'demo', copy, ...target, '--json']);
    expect(completed.code, completed.stderr).toBe(0);
    expect(summaryOf(completed).downloaded).toBe(12);
    expectSameTree(copy, ws);
  }, 120_000);
});
