// End-to-end safety through the built CLI on both backends: the transfer lock (exit 4, -f takes over) and object keys that would escape the workspace.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, inject, it, vi } from 'vitest';
import { BACKENDS, expectOneLineError, pathsOf, startListingInjector, startSleeper, summaryOf, useBackend, waitForExit, writeTree, expectCode } from '../support/e2e.js';

// each CLI run is bounded by runSwm's own timeout (60 s); a test runs several, on a machine that may be busy
vi.setConfig({ testTimeout: 240_000 });

describe.each(BACKENDS)('safety on $name', (factory) => {
  const setup = useBackend(factory);

  it('a live lock holder refuses push and pull (exit 4); -f stops it and proceeds; a dead holder is taken over', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'x.txt': 'x\n' });
    const holder = startSleeper();
    mkdirSync(join(a, '.swm'), { recursive: true });
    const lockFile = join(a, '.swm', 'lock');
    writeFileSync(lockFile, JSON.stringify({ pid: holder.pid, verb: 'push', startedAt: Date.now() }));

    const push = await t.sync('push', a);
    expectOneLineError(push, 4, new RegExp(`another swm push \\(pid ${holder.pid}\\) is running.*-f`));
    const pull = await t.sync('pull', a);
    expectOneLineError(pull, 4, /another swm push/);
    expect(await t.remote()).toEqual([]);
    expect(JSON.parse(readFileSync(lockFile, 'utf8')).pid).toBe(holder.pid); // the holder's lock is left alone

    const forced = await t.sync('push', a, '-f', '--json');
    expectCode(forced, 0);
    expect(await waitForExit(holder, 5000)).toBe(true);
    expect(holder.signalCode).toBe('SIGTERM');
    expect(await t.remote()).toEqual(['x.txt']);
    expect(existsSync(lockFile)).toBe(false); // released at the end

    // a lock left by a process that is gone is stale: taken over without -f
    const dead = startSleeper();
    dead.kill('SIGKILL');
    await waitForExit(dead, 5000);
    writeFileSync(lockFile, JSON.stringify({ pid: dead.pid, verb: 'pull', startedAt: Date.now() }));
    writeFileSync(join(a, 'y.txt'), 'y\n');
    const after = await t.sync('push', a, '--json');
    expectCode(after, 0);
    expect(pathsOf(after, 'done', 'upload')).toEqual(['y.txt']);
  });

  it('a remote file under a local symlink that leads out of the workspace is refused; nothing is written outside', async () => {
    const t = await setup();
    const outside = t.ws('outside');
    // on a: real folders; on b: symlinks of the same names, one leading out of the workspace and one staying inside
    const a = t.ws('a');
    writeTree(a, { 'ok.txt': 'ok\n', 'out/pwned.txt': 'pwned\n', 'inside-link/through.txt': 'fine\n' });
    expectCode(await t.sync('push', a), 0);
    const b = t.ws('b');
    writeTree(b, { 'out': { symlink: outside }, 'inside-link': { symlink: 'real' }, 'real/keep.txt': 'keep\n' });

    const pull = await t.sync('pull', b, '--json');
    expect(pull.code).toBe(2);
    expect(summaryOf(pull).errors.map((e) => e.path)).toEqual(['out/pwned.txt']);
    expect(summaryOf(pull).errors.map((e) => (e as unknown as { message: string }).message).join()).toMatch(/outside the workspace/);
    expect(readdirSync(outside)).toEqual([]);
    expect(readFileSync(join(b, 'ok.txt'), 'utf8')).toBe('ok\n');
    // a link that stays inside the workspace is followed
    expect(readFileSync(join(b, 'real', 'through.txt'), 'utf8')).toBe('fine\n');
  });

  it('object keys that would land outside the workspace are refused on pull; the rest is pulled', async () => {
    const t = await setup();
    const a = t.ws('a');
    writeTree(a, { 'ok.txt': 'fine\n', 'sub/inner.txt': 'inner\n' });
    expectCode(await t.sync('push', a), 0);
    const dest = t.backend.dest;
    const evil = [`${dest}../evil`, `${dest}a/../../x`, `${dest}/abs`];
    // an object another tool wrote (no swm metadata) is an ordinary file to pull
    await t.backend.plant(`${dest}sub/foreign.txt`, 'foreign\n');

    let injector: Awaited<ReturnType<typeof startListingInjector>> | undefined;
    if (t.backend.name === 'file') {
      for (const key of evil) await t.backend.plant(key, 'evil\n', { 'swm-type': 'file' });
      expect(await t.backend.listKeys(dest)).toEqual(expect.arrayContaining(evil));
    } else {
      // MinIO refuses such keys outright; a real S3 (or another server) might not: show them to swm through a proxy
      const s3 = inject('s3');
      const client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
      await expect(client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: evil[0], Body: 'evil\n' }))).rejects.toThrow();
      client.destroy();
      injector = await startListingInjector(s3.endpoint, [...evil].sort());
      t.scratch.setEnv({ AWS_ENDPOINT_URL: injector.endpoint });
    }
    try {
      const b = t.scratch.path('b');
      const pull = await t.sync('pull', b, '--json');
      expectCode(pull, 2); // bad input from the bucket
      const summary = summaryOf(pull);
      expect(summary.errors.map((e) => e.path).sort()).toEqual([...evil].sort());
      expect(summary.errors.map((e) => (e as unknown as { message: string }).message).join('\n')).toMatch(/refusing object key/);
      expect(summary.downloaded).toBe(3);
      expect(readFileSync(join(b, 'ok.txt'), 'utf8')).toBe('fine\n');
      expect(readFileSync(join(b, 'sub/foreign.txt'), 'utf8')).toBe('foreign\n');
      // nothing was written outside the workspace, nor inside under a strange name
      expect(existsSync(join(b, '..', 'evil'))).toBe(false);
      expect(existsSync(join(b, '..', 'x'))).toBe(false);
      expect(existsSync('/abs')).toBe(false);
      expect(readdirSync(t.scratch.root).sort()).toEqual(['b', 'a', ...(t.backend.name === 'file' ? ['bucket'] : []), 'home'].sort());
      expect(readdirSync(b).sort()).toEqual(['.swm', 'ok.txt', 'sub']);

      // text mode: one line per refused key, naming it
      const text = await t.sync('pull', b);
      expect(text.code).toBe(2);
      for (const key of evil) expect(text.stderr).toContain(JSON.stringify(key));
      expect(text.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await injector?.close();
    }
  });
});
