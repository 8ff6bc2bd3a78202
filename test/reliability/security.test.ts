// Security (issue 6, item 6): secrets never reach output, logs, `.swm/` or process arguments; `.swm/` is 0700 with 0600
// files; TLS certificates are verified for https endpoints; object keys and tar entries never land outside the workspace.
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pack as tarPack, type Header } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSwmError } from '../../src/errors.js';
import { createFileStorage } from '../../src/storage/file.js';
import { createS3Storage } from '../../src/storage/s3.js';
import {
  ensureBuilt,
  expectOneLine,
  filesUnder,
  folderTree,
  makeSelfSignedCert,
  S3Reader,
  s3Env,
  sharedS3,
  startHttpsAnything,
  startPrivateMinio,
  uniqueDest,
  withSandbox,
  workspaceTree,
  writeTree,
  type CliRun,
  type PrivateMinio,
  type Sandbox,
} from './support.js';
import { REPO_ROOT } from '../support/e2e.js';

beforeAll(() => ensureBuilt());

/** leaksIn lists the files under root whose bytes contain the canary. */
function leaksIn(root: string, canary: string): string[] {
  if (!existsSync(root)) return [];
  return filesUnder(root).filter((p) => {
    const abs = join(root, p);
    const st = lstatSync(abs);
    return st.isFile() && readFileSync(abs).includes(canary);
  });
}

function expectNoCanary(runs: Array<[string, CliRun]>, canary: string): void {
  for (const [label, run] of runs) {
    expect(run.stdout.includes(canary), `${label}: stdout holds the secret:\n${run.stdout}`).toBe(false);
    expect(run.stderr.includes(canary), `${label}: stderr holds the secret:\n${run.stderr}`).toBe(false);
  }
}

async function waitFor(what: string, test: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe.concurrent('a canary secret never leaks', () => {
  let minio: PrivateMinio | undefined;
  const CANARY = `SWMCANARY${randomBytes(8).toString('hex')}`;
  beforeAll(async () => {
    minio = await startPrivateMinio(CANARY); // MinIO's own root secret is the canary: every command really works with it
  }, 60_000);
  afterAll(async () => {
    await minio?.stop();
  });

  it('through push, pull, status, tar, watch and auto (with -v and --json), their logs, .swm/ and process arguments', async () => {
    await withSandbox(async (sb) => {
      sb.setEnv(s3Env(minio!));
      const target = ['-b', `s3:${minio!.bucket}`, '-d', 'canary/ws/'];
      const ws = sb.dir('ws');
      const ws2 = sb.path('ws2');
      writeTree(ws, { 'a.txt': 'alpha\n', 'dir/b.bin': Buffer.alloc(3000, 1) });
      const runs: Array<[string, CliRun]> = [];
      const swm = async (label: string, args: string[], code = 0) => {
        const run = await sb.swm(args);
        runs.push([label, run]);
        expect(run.code, `${label}:\n${run.stdout}\n${run.stderr}`).toBe(code);
        return run;
      };
      await swm('push -v', ['sync', 'push', 'demo', ws, ...target, '-v']);
      writeFileSync(join(ws, 'a.txt'), 'alpha 2\n');
      await swm('push --json', ['sync', 'push', 'demo', ws, ...target, '--json']);
      await swm('pull -v', ['sync', 'pull', 'demo', ws2, ...target, '-v']);
      await swm('pull --json', ['sync', 'pull', 'demo', ws2, ...target, '--json']);
      await swm('status -v', ['sync', 'status', 'demo', ws, ...target, '--remote', '-v']);
      await swm('status --json', ['sync', 'status', 'demo', ws, ...target, '--remote', '--json']);
      await swm('push --tar -v', ['sync', 'push', 'demo', ws, ...target, '--tar', '-v']);
      await swm('pull --tar --json', ['sync', 'pull', 'demo', sb.path('ws3'), ...target, '--tar', '--json']);
      await swm('missing bucket -v', ['sync', 'push', 'demo', ws, '-b', 's3:no-such-bucket', '-d', 'x/', '-v'], 1);
      await swm('watch -v', ['sync', 'watch', 'demo', ws, ...target, '-v']);
      try {
        await swm('auto -v', ['sync', 'auto', 'demo', ws, ...target, '-i', '1', '-v']);
        const daemonLog = join(ws, '.swm', 'daemon.log');
        writeFileSync(join(ws, 'c.txt'), 'made while the daemon runs\n');
        await waitFor('a daemon cycle that pushes c.txt', () => existsSync(daemonLog) && /cycle ok: [1-9]/.test(readFileSync(daemonLog, 'utf8')));
        // the daemon and the watcher get no secret on their command lines (anyone may read /proc/<pid>/cmdline)
        for (const record of ['daemon.json', 'watcher.json']) {
          const { pid } = JSON.parse(readFileSync(join(ws, '.swm', record), 'utf8')) as { pid: number };
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          expect(cmdline.length).toBeGreaterThan(0);
          expect(cmdline.includes(CANARY), `${record}: the process arguments hold the secret`).toBe(false);
        }
        await swm('auto --status -v', ['sync', 'auto', 'demo', ws, ...target, '--status', '-v']);
        await swm('auto --status --json', ['sync', 'auto', 'demo', ws, ...target, '--status', '--json']);
      } finally {
        await swm('auto --stop', ['sync', 'auto', 'demo', ws, ...target, '--stop']);
        await swm('watch --stop', ['sync', 'watch', 'demo', ws, ...target, '--stop']);
      }
      expect(runs.length).toBeGreaterThanOrEqual(14);
      expectNoCanary(runs, CANARY);
      expect(existsSync(join(ws, '.swm', 'daemon.log'))).toBe(true);
      for (const root of [join(ws, '.swm'), join(ws2, '.swm'), join(sb.path('ws3'), '.swm'), sb.home]) {
        expect(leaksIn(root, CANARY), `files under ${root} hold the secret`).toEqual([]);
      }
    });
  }, 90_000);

  it('in the errors of wrong credentials, a bad session token and a password in the endpoint URL (also with -v)', async () => {
    await withSandbox(async (sb) => {
      const s3 = sharedS3();
      sb.setEnv(s3Env(s3));
      const ws = sb.dir('ws');
      writeTree(ws, { 'a.txt': 'alpha\n' });
      const target = ['-b', `s3:${s3.bucket}`, '-d', uniqueDest('canary')];
      const variants: Array<[string, Record<string, string>]> = [
        ['wrong secret', { AWS_SECRET_ACCESS_KEY: CANARY }],
        ['bad session token', { AWS_SESSION_TOKEN: CANARY }],
        ['password in an unreachable endpoint', { AWS_ENDPOINT_URL: `http://swm:${CANARY}@127.0.0.1:9` }],
      ];
      const runs: Array<[string, CliRun]> = [];
      for (const [label, env] of variants) {
        for (const [verb, extra] of [['push', ['-v']], ['pull', ['--json']], ['status', ['--remote', '-v']]] as const) {
          const run = await sb.swm(['sync', verb, 'demo', ws, ...target, ...extra], { env });
          runs.push([`${label}: ${verb}`, run]);
          expect(run.code, `${label}: ${verb}\n${run.stderr}`).not.toBe(0);
        }
      }
      // the one-line form names the problem without the secret
      const [, unreachable] = runs.find(([label]) => label === 'password in an unreachable endpoint: push')!;
      expect(unreachable.stderr.split('\n')[0]).toMatch(/^swm: cannot reach endpoint http:\/\/swm:\*\*\*@127\.0\.0\.1:9\/? for s3:.*ECONNREFUSED/);
      expectNoCanary(runs, CANARY);
      expect(leaksIn(join(ws, '.swm'), CANARY)).toEqual([]);
    });
  });
});

describe.concurrent('.swm/ is private', () => {
  it('is created 0700 with 0600 files by push, pull, watch and auto, even under umask 000', async () => {
    await withSandbox(async (sb) => {
      const target = ['-b', `file:${sb.path('bucket')}`, '-d', 'modes/'];
      const ws = sb.dir('ws');
      const ws2 = sb.path('ws2');
      writeTree(ws, { 'a.txt': 'alpha\n', 'd/b.txt': 'beta\n' });
      const swm = async (args: string[]) => {
        const run = await sb.swm(args, { umask: 0 });
        expect(run, run.stderr).toMatchObject({ code: 0 });
      };
      await swm(['sync', 'push', 'demo', ws, ...target, '-q']);
      await swm(['sync', 'pull', 'demo', ws2, ...target, '-q']);
      await swm(['sync', 'push', 'demo', ws2, ...target, '--tar', '-q']);
      await swm(['sync', 'watch', 'demo', ws, ...target, '-q']);
      try {
        await swm(['sync', 'auto', 'demo', ws, ...target, '-i', '1', '-q']);
        writeFileSync(join(ws, 'c.txt'), 'new\n');
        const log = join(ws, '.swm', 'daemon.log');
        await waitFor('a daemon cycle', () => existsSync(log) && /cycle ok: [1-9]/.test(readFileSync(log, 'utf8')));
      } finally {
        await swm(['sync', 'auto', 'demo', ws, ...target, '--stop', '-q']);
        await swm(['sync', 'watch', 'demo', ws, ...target, '--stop', '-q']);
      }
      for (const root of [ws, ws2]) {
        const swmDir = join(root, '.swm');
        const modes: Record<string, string> = { '.': (lstatSync(swmDir).mode & 0o777).toString(8) };
        for (const p of filesUnder(swmDir)) modes[p] = (lstatSync(join(swmDir, p)).mode & 0o777).toString(8);
        const expected = Object.fromEntries(Object.keys(modes).map((p) => [p, p === '.' || lstatSync(join(swmDir, p)).isDirectory() ? '700' : '600']));
        expect(modes).toEqual(expected);
        expect(Object.keys(modes).length).toBeGreaterThan(2);
      }
      // the workspace and its files keep their ordinary modes: only .swm/ is private
      expect(lstatSync(join(ws2, 'a.txt')).mode & 0o777).toBe(0o644);
    });
  }, 60_000);
});

describe.concurrent('TLS certificates are verified for https endpoints', () => {
  it('no source file turns certificate verification off', () => {
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const abs = join(dir, name);
        if (lstatSync(abs).isDirectory()) walk(abs);
        else if (/rejectUnauthorized\s*:\s*false|NODE_TLS_REJECT_UNAUTHORIZED|checkServerIdentity/.test(readFileSync(abs, 'utf8'))) offenders.push(abs);
      }
    };
    walk(join(REPO_ROOT, 'src'));
    expect(offenders).toEqual([]);
  });

  it('the S3 client refuses a self-signed certificate before any request, and accepts it once trusted via AWS_CA_BUNDLE', async () => {
    await withSandbox(async (sb) => {
      const cert = makeSelfSignedCert(sb.root);
      const server = await startHttpsAnything(cert);
      const spec = { kind: 's3' as const, provider: 's3', bucket: 'tls-bucket', text: 's3:tls-bucket', s3: { endpoint: server.url, region: 'us-east-1', pathStyle: true } };
      const credentials = { accessKeyId: 'tls-test', secretAccessKey: 'tls-test-secret' };
      const saved = process.env.AWS_CA_BUNDLE;
      try {
        delete process.env.AWS_CA_BUNDLE;
        const untrusted = createS3Storage(spec, { credentials, maxAttempts: 1 });
        const err = await untrusted.check().then(() => undefined, (e: unknown) => e);
        await untrusted.close();
        expect(isSwmError(err), String(err)).toBe(true);
        expect((err as Error).message).toMatch(/TLS certificate of endpoint https:\/\/127\.0\.0\.1:\d+ is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
        expect(server.requests(), 'no HTTP request may cross an unverified connection').toBe(0);

        process.env.AWS_CA_BUNDLE = cert.certPath;
        const trusted = createS3Storage(spec, { credentials, maxAttempts: 1 });
        await trusted.check().catch(() => undefined); // the server is no S3; only the handshake matters here
        await trusted.close();
        expect(server.requests(), 'with the CA trusted the request goes through').toBeGreaterThan(0);
      } finally {
        if (saved === undefined) delete process.env.AWS_CA_BUNDLE;
        else process.env.AWS_CA_BUNDLE = saved;
        await server.close();
      }
    });
  });

  it('the CLI fails in one line (exit 1) against a self-signed https endpoint, touching nothing', async () => {
    await withSandbox(async (sb) => {
      const cert = makeSelfSignedCert(sb.root);
      const server = await startHttpsAnything(cert);
      try {
        const ws = sb.dir('ws');
        writeTree(ws, { 'a.txt': 'alpha\n' });
        const before = workspaceTree(ws);
        sb.setEnv({ AWS_ENDPOINT_URL: server.url, AWS_ACCESS_KEY_ID: 'tls-test', AWS_SECRET_ACCESS_KEY: 'tls-test-secret', AWS_REGION: 'us-east-1' });
        for (const verb of ['push', 'pull']) {
          const run = await sb.swm(['sync', verb, 'demo', ws, '-b', 's3:tls-bucket', '-d', 'x/']);
          expectOneLine(run, 1, /^swm: the TLS certificate of endpoint https:\/\/127\.0\.0\.1:\d+ is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\).*AWS_CA_BUNDLE/);
        }
        expect(server.requests()).toBe(0);
        expect(workspaceTree(ws)).toEqual(before);
      } finally {
        await server.close();
      }
    });
  });
});

/** escapeWatch snapshots everything in the sandbox outside the workspace and the bucket, to prove nothing landed there. */
function outsideSnapshot(sb: Sandbox): Record<string, string> {
  return Object.fromEntries(Object.entries(folderTree(sb.root)).filter(([p]) => !p.startsWith('ws/') && !p.startsWith('bucket/')));
}

describe.concurrent('object keys that would leave the workspace are refused on pull', () => {
  const ABS = `/tmp/swm-rel-abs-${randomBytes(4).toString('hex')}.txt`;
  it.each([
    ['a ".." segment', '../escape.txt', /contains a "\.\." segment/],
    ['".." after a folder', 'sub/../../escape.txt', /contains a "\.\." segment/],
    ['an absolute path', ABS, /absolute path/],
    ['a "." segment', './dot.txt', /contains a "\." segment/],
  ])('%s (file: bucket)', async (_title, rel, reason) => {
    await withSandbox(async (sb) => {
      sb.dir('outside');
      const storage = createFileStorage(sb.path('bucket'), { create: true });
      try {
        await storage.put(`team/ws/${rel}`, Buffer.from('evil'), { meta: { type: 'file' } });
        await storage.put('team/ws/good.txt', Buffer.from('good'), { meta: { type: 'file' } });
      } finally {
        await storage.close();
      }
      const before = outsideSnapshot(sb);
      const ws = sb.path('ws');
      const run = await sb.swm(['sync', 'pull', 'demo', ws, '-b', `file:${sb.path('bucket')}`, '-d', 'team/ws/']);
      expectOneLine(run, 2, new RegExp(`refusing object key "team/ws/${rel.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}": ${reason.source}`));
      expect(Object.keys(workspaceTree(ws))).toEqual(['good.txt']);
      expect(outsideSnapshot(sb)).toEqual(before);
      expect(existsSync(ABS)).toBe(false);
    });
  });

  it('a backslash key on S3 is refused, the rest is pulled', async () => {
    await withSandbox(async (sb) => {
      const s3 = sharedS3();
      sb.setEnv(s3Env(s3));
      const dest = uniqueDest('traversal');
      const origin = sb.dir('origin');
      writeTree(origin, { 'good.txt': 'good' });
      expect((await sb.swm(['sync', 'push', 'demo', origin, '-b', `s3:${s3.bucket}`, '-d', dest, '-q'])).code).toBe(0);
      const reader = new S3Reader(s3);
      try {
        await reader.plant(`${dest}back\\slash.txt`, 'evil'); // Windows would read it as a folder separator
      } finally {
        reader.close();
      }
      const ws = sb.path('ws');
      const run = await sb.swm(['sync', 'pull', 'demo', ws, '-b', `s3:${s3.bucket}`, '-d', dest]);
      expectOneLine(run, 2, /refusing object key ".*\/back\\\\slash\.txt": contains a backslash/);
      expect(Object.keys(workspaceTree(ws))).toEqual(['good.txt']);
    });
  });

  it('a key below a local symlink that points outside is not written through it', async () => {
    await withSandbox(async (sb) => {
      const outside = sb.dir('outside');
      const ws = sb.dir('ws');
      symlinkSync(outside, join(ws, 'out'));
      const storage = createFileStorage(sb.path('bucket'), { create: true });
      try {
        await storage.put('team/ws/out/evil.txt', Buffer.from('evil'), { meta: { type: 'file' } });
        await storage.put('team/ws/good.txt', Buffer.from('good'), { meta: { type: 'file' } });
      } finally {
        await storage.close();
      }
      const run = await sb.swm(['sync', 'pull', 'demo', ws, '-b', `file:${sb.path('bucket')}`, '-d', 'team/ws/']);
      expectOneLine(run, 2, /out\/evil\.txt.*refusing to write out\/evil\.txt: its folder resolves outside the workspace/);
      expect(readdirSync(outside)).toEqual([]);
      expect(readFileSync(join(ws, 'good.txt'), 'utf8')).toBe('good');
    });
  });

  it('a symlink object and a key below it, pulled together, put nothing outside', async () => {
    await withSandbox(async (sb) => {
      const outside = sb.dir('outside');
      const storage = createFileStorage(sb.path('bucket'), { create: true });
      try {
        await storage.put('team/ws/link', Buffer.from(outside), { meta: { type: 'symlink', mode: 0o777 } });
        await storage.put('team/ws/link/evil.txt', Buffer.from('evil'), { meta: { type: 'file' } });
      } finally {
        await storage.close();
      }
      const ws = sb.path('ws');
      const run = await sb.swm(['sync', 'pull', 'demo', ws, '-b', `file:${sb.path('bucket')}`, '-d', 'team/ws/']);
      expect(run.code, run.stderr).not.toBe(0);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(readdirSync(outside)).toEqual([]);
    });
  });
});

/** craftTar builds an archive entry by entry with tar-stream, so it can hold anything. */
async function craftTar(entries: Array<{ header: Partial<Header> & { name: string }; data?: string }>): Promise<Buffer> {
  const p = tarPack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of Readable.from(p as unknown as AsyncIterable<Buffer>)) chunks.push(c);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      if (e.data !== undefined) p.entry({ mode: 0o644, ...e.header }, e.data, (err) => (err ? reject(err) : resolve()));
      else p.entry({ mode: 0o644, ...e.header }, (err) => (err ? reject(err) : resolve()));
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

describe.concurrent('tar entries that would leave the workspace are refused by pull --tar', () => {
  const ABS = `/tmp/swm-rel-tar-abs-${randomBytes(4).toString('hex')}.txt`;
  it.each([
    ['a ".." name', '../escape.txt', [{ header: { name: '../escape.txt' }, data: 'evil' }]],
    ['an absolute name', ABS, [{ header: { name: ABS }, data: 'evil' }]],
    ['a symlink pointing out', 'lnk', [{ header: { name: 'lnk', type: 'symlink' as const, linkname: '../../outside' } }]],
    ['a file through an archived symlink', 'lnk/evil.txt', [{ header: { name: 'lnk', type: 'symlink' as const, linkname: 'sub' } }, { header: { name: 'lnk/evil.txt' }, data: 'evil' }]],
    ['a file through a local symlink to a folder outside', 'out/evil.txt', [{ header: { name: 'out/evil.txt' }, data: 'evil' }]],
  ])('%s', async (_title, badName, entries) => {
    await withSandbox(async (sb) => {
      const outside = sb.dir('outside');
      symlinkSync(outside, join(sb.dir('ws'), 'out'));
      const archive = await craftTar([{ header: { name: 'good.txt' }, data: 'good' }, ...entries]);
      const storage = createFileStorage(sb.path('bucket'), { create: true });
      try {
        await storage.put('team/ws.tar', archive, { size: archive.length, meta: { type: 'file' } });
      } finally {
        await storage.close();
      }
      const before = outsideSnapshot(sb);
      const ws = sb.path('ws');
      const run = await sb.swm(['sync', 'pull', 'demo', ws, '-b', `file:${sb.path('bucket')}`, '-d', 'team/ws/', '--tar']);
      expectOneLine(run, 2, new RegExp(`refusing tar entry ${JSON.stringify(badName).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
      expect(outsideSnapshot(sb)).toEqual(before);
      expect(existsSync(ABS)).toBe(false);
      expect(filesUnder(ws).filter((p) => p.includes('evil') || p.includes('escape'))).toEqual([]);
      expect(existsSync(join(ws, '.swm', 'stamp.json'))).toBe(false);
    });
  });
});

