// End-to-end bad input through the built CLI (SPEC §8): each mistake gives one clear `swm:` line, the right exit code and no stack trace.
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it, vi } from 'vitest';
import { BACKENDS, expectOneLineError, NOBODY, pathsOf, summaryOf, useBackend, useScratch, writeTree, expectCode } from '../support/e2e.js';
import { freeLoopbackPort } from '../support/ports.js';

// each CLI run is bounded by runSwm's own timeout (60 s); a test runs several, on a machine that may be busy
vi.setConfig({ testTimeout: 240_000 });

describe('bad input', () => {
  const scratch = useScratch();

  const s3Env = () => {
    const s3 = inject('s3');
    return { AWS_ENDPOINT_URL: s3.endpoint, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_REGION: s3.region };
  };

  it('a malformed bucket spec is exit 2', async () => {
    const s = scratch();
    const ws = s.dir('ws');
    expectOneLineError(await s.swm(['sync', 'push', 'demo', ws, '-b', 'just-a-name']), 2, /bucket "just-a-name" is not provider:bucket/);
    expectOneLineError(await s.swm(['sync', 'push', 'demo', ws, '-b', 's3:']), 2, /has no bucket name/);
    expectOneLineError(await s.swm(['sync', 'push', 'demo', ws, '-b', 's3:bucket/path']), 2, /names a path/);
  });

  it('an unknown provider is exit 2 and lists the known ones', async () => {
    const s = scratch();
    const ws = s.dir('ws');
    expectOneLineError(await s.swm(['sync', 'pull', 'demo', ws, '-b', 'dropbox:stuff']), 2, /unknown provider "dropbox".*known providers are file, s3/);
  });

  it('a missing workspace path (push) and a path that is a file (push, pull, status) are exit 2', async () => {
    const s = scratch();
    const bucket = `file:${s.path('bucket')}`;
    const missing = s.path('no such folder');
    expectOneLineError(await s.swm(['sync', 'push', 'demo', missing, '-b', bucket]), 2, /workspace .*no such folder does not exist/);
    expect(existsSync(missing)).toBe(false);
    const file = join(s.dir('ws'), 'a-file.txt');
    writeFileSync(file, 'not a folder\n');
    for (const verb of ['push', 'pull', 'status']) {
      expectOneLineError(await s.swm(['sync', verb, 'demo', file, '-b', bucket]), 2, /workspace .*a-file\.txt is not a folder/);
    }
    expect(readFileSync(file, 'utf8')).toBe('not a folder\n');
  });

  it('a missing file: bucket is exit 1 on pull (push creates it)', async () => {
    const s = scratch();
    const ws = s.dir('ws');
    const bucket = s.path('no bucket here');
    expectOneLineError(await s.swm(['sync', 'pull', 'demo', ws, '-b', `file:${bucket}`]), 1, /bucket file:.*no bucket here does not exist/);
    expect(existsSync(bucket)).toBe(false);
  });

  it('an unreachable endpoint is exit 1, quickly', async () => {
    const s = scratch();
    const ws = s.dir('ws');
    writeTree(ws, { 'x.txt': 'x\n' });
    const port = await freeLoopbackPort();
    const started = Date.now();
    const run = await s.swm(['sync', 'push', 'demo', ws, '-b', `s3:${inject('s3').bucket}`], { env: { ...s3Env(), AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` } });
    expectOneLineError(run, 1, new RegExp(`cannot reach endpoint http://127\\.0\\.0\\.1:${port}.*ECONNREFUSED`));
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('bad credentials are exit 1 and the secret is never printed', async () => {
    const s = scratch();
    const ws = s.dir('ws');
    writeTree(ws, { 'x.txt': 'x\n' });
    const secret = 'wrong-secret-key-1234567890';
    const run = await s.swm(['sync', 'push', 'demo', ws, '-b', `s3:${inject('s3').bucket}`, '-v'], { env: { ...s3Env(), AWS_SECRET_ACCESS_KEY: secret } });
    expect(run.code).toBe(1);
    expect(run.stderr.split('\n')[0]).toMatch(/^swm: access denied to s3:\S+ \(HTTP 403\) during check bucket.*check AWS_ACCESS_KEY_ID/);
    expect(run.stdout + run.stderr).not.toContain(secret);
    const quiet = await s.swm(['sync', 'push', 'demo', ws, '-b', `s3:${inject('s3').bucket}`], { env: { ...s3Env(), AWS_SECRET_ACCESS_KEY: secret } });
    expectOneLineError(quiet, 1, /access denied/);
  });

  it('no credentials at all is exit 1', async () => {
    const s = scratch();
    const ws = s.dir('ws');
    const env: Record<string, string> = s3Env();
    delete env.AWS_ACCESS_KEY_ID;
    delete env.AWS_SECRET_ACCESS_KEY;
    const run = await s.swm(['sync', 'push', 'demo', ws, '-b', `s3:${inject('s3').bucket}`], { env: { ...env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' } });
    expectOneLineError(run, 1, /no AWS credentials found/);
  });

  it('a missing S3 bucket is exit 1', async () => {
    const s = scratch();
    const ws = s.dir('ws');
    writeTree(ws, { 'x.txt': 'x\n' });
    for (const verb of ['push', 'pull']) {
      expectOneLineError(await s.swm(['sync', verb, 'demo', ws, '-b', 's3:swm-no-such-bucket'], { env: s3Env() }), 1, /bucket s3:swm-no-such-bucket does not exist/);
    }
  });
});

describe.each(BACKENDS)('unreadable files on $name', (factory) => {
  const setup = useBackend(factory);

  // Root reads files of any mode, so the run drops to nobody (setpriv) with the scratch handed over to it: a mode-000 file
  // and a mode-000 folder then really fail to open, which is the path an unreadable file takes for any user.
  it('are reported (one line each, exit 1) and the rest still transfers', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'ok.txt': 'ok\n', 'secret.txt': 'secret\n', 'locked/inner.txt': 'inner\n', 'z-last.txt': 'last\n' });
    t.scratch.giveTo(NOBODY);
    chmodSync(join(a, 'secret.txt'), 0o000);
    chmodSync(join(a, 'locked'), 0o000);

    const run = await t.scratch.swm(['sync', 'push', 'demo', a, ...t.target], { as: NOBODY });
    expectCode(run, 1);
    const lines = run.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(lines.find((l) => l.includes('secret.txt'))).toMatch(/^swm: warning: secret\.txt: .*permission denied/);
    expect(lines.find((l) => l.includes('locked'))).toMatch(/^swm: warning: locked\/?: .*permission denied/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect((await t.remote()).sort()).toEqual(['ok.txt', 'z-last.txt']);

    const json = await t.scratch.swm(['sync', 'push', 'demo', a, ...t.target, '--json'], { as: NOBODY });
    expect(json.code).toBe(1);
    expect(summaryOf(json).errors.map((e) => e.path).sort()).toEqual(['locked/', 'secret.txt']);
    expect(pathsOf(json, 'done', 'upload')).toEqual([]);

    // once readable again, the next push sends them
    chmodSync(join(a, 'secret.txt'), 0o644);
    chmodSync(join(a, 'locked'), 0o755);
    const fixed = await t.scratch.swm(['sync', 'push', 'demo', a, ...t.target, '--json'], { as: NOBODY });
    expectCode(fixed, 0);
    expect(pathsOf(fixed, 'done', 'upload')).toEqual(['locked/inner.txt', 'secret.txt']);
  });
});
