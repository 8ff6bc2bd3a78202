// Crash safety: kill -9 push, pull, push --tar, pull --tar and the auto daemon at seeded random moments, rerun, and check that trees match byte for byte, no torn or temp file is left, and `.swm/` is valid.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mulberry32 } from '../support/fault-proxy.js';
import { ensureBuilt, readTree, Scratch, SWM_MAIN, writeTree, type TreeEntry, type TreeSpec } from '../support/e2e.js';
import { readState, stateFileFor, validateState } from '../../src/state/store.js';
import { readStamp } from '../../src/state/stamp.js';
import { compareKeys } from '../../src/keys.js';
import { TEMP_INFIX } from '../../src/state/paths.js';
import { partSizeFor, SINGLE_PUT_LIMIT } from '../../src/storage/s3.js';

/** CRASH_POINTS per case: SWM_CRASH_POINTS, else 6 in CI (CI=true) and 20 locally. */
const CRASH_POINTS = Number(process.env.SWM_CRASH_POINTS) || (process.env.CI ? 6 : 20);
/** CRASH_SEED makes the kill moments reproducible (SWM_CRASH_SEED to explore others). */
const CRASH_SEED = Number(process.env.SWM_CRASH_SEED) || 0xc0ffee;
const SMALL_FILES = 1_000;
const BIG_FILE_BYTES = 40 * 1024 * 1024;
/** a whole case (calibration + every point) must end within this. */
const CASE_TIMEOUT_MS = 30 * 60_000;

/** Finished is how a swm child ended. */
interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** startSwm runs the CLI as a child whose pid the test can kill -9; `done` resolves when it has exited. */
function startSwm(args: string[], env: Record<string, string>): { pid: number; done: Promise<Finished> } {
  const started = Date.now();
  const child = spawn(process.execPath, [SWM_MAIN, ...args], { env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-20_000)));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-20_000)));
  const done = new Promise<Finished>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
  return { pid: child.pid!, done };
}

async function runToEnd(args: string[], env: Record<string, string>): Promise<Finished> {
  return startSwm(args, env).done;
}

/** killAt starts the CLI and SIGKILLs it after `delayMs` (if it is still running then). */
async function killAt(args: string[], env: Record<string, string>, delayMs: number): Promise<Finished & { killed: boolean }> {
  const run = startSwm(args, env);
  let killed = false;
  const timer = setTimeout(() => {
    try {
      process.kill(run.pid, 'SIGKILL');
      killed = true;
    } catch {
      // already gone
    }
  }, delayMs);
  const finished = await run.done;
  clearTimeout(timer);
  return { ...finished, killed: killed && finished.signal === 'SIGKILL' };
}

/** s3Etag is the ETag S3 gives these bytes as swm uploads them: MD5 below SINGLE_PUT_LIMIT, else the multipart form. */
function s3Etag(bytes: Buffer): string {
  const md5 = (b: Buffer) => createHash('md5').update(b).digest();
  if (bytes.length < SINGLE_PUT_LIMIT) return md5(bytes).toString('hex');
  const part = partSizeFor(bytes.length);
  const digests: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += part) digests.push(md5(bytes.subarray(at, at + part)));
  return `${md5(Buffer.concat(digests)).toString('hex')}-${digests.length}`;
}

/** tempFiles lists every swm temp file under root (`.swm/` included), workspace-relative. */
function tempFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(root, rel));
    } catch {
      return;
    }
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      if (name.includes(TEMP_INFIX)) out.push(path);
      if (lstatSync(join(root, path)).isDirectory()) walk(path);
    }
  };
  walk('');
  return out.sort(compareKeys);
}

/** expectNoTornFiles: every file outside `.swm/` that is not a temp file is byte-identical to the same path in `expected`. */
function expectNoTornFiles(root: string, expected: Record<string, TreeEntry>): void {
  const tree = readTree(root);
  for (const [path, entry] of Object.entries(tree)) {
    if (path.includes(TEMP_INFIX) || entry.type !== 'file') continue;
    const want = expected[path];
    if (!want) expect.fail(`${path} appeared in ${root} but is not in the source tree`);
    if (want.sha256 !== entry.sha256) expect.fail(`${path} is torn: ${entry.size} bytes, expected ${want.size} bytes with other content`);
  }
}

/**
 * expectSwmDirValid: each state file validates, the stamp (if any) parses; no temp file is left in the workspace, nor a
 * temp of a lock-protected `.swm/` file (state, stamp, tar record, upload records). The watcher's and the daemon's own
 * temps in `.swm/` may belong to those live processes: swm sweeps them once they are a minute old.
 */
async function expectSwmDirValid(root: string): Promise<void> {
  const dir = join(root, '.swm');
  for (const name of readdirSync(dir)) {
    if (/^(tar-)?state-.*\.tsv$/.test(name)) expect(await validateState(join(dir, name)), `${name} is corrupt`).toBeUndefined();
    if (name === 'stamp.json') expect(() => JSON.parse(readFileSync(join(dir, name), 'utf8'))).not.toThrow();
  }
  const temps = tempFiles(root).filter(
    (p) => !p.startsWith('.swm/') || /^\.swm\/(uploads\/|\.((tar-)?state-.*\.tsv|stamp\.json|tar\.json)\.swm-tmp-)/.test(p) || Date.now() - lstatSync(join(root, p)).mtimeMs > 60_000,
  );
  expect(temps).toEqual([]);
}

function workspaceSpec(): TreeSpec {
  const spec: TreeSpec = {};
  for (let i = 0; i < SMALL_FILES; i++) spec[`src/d${String(i % 25).padStart(2, '0')}/f${i}.txt`] = randomBytes(200 + ((i * 131) % 4000));
  spec['ckpt/model.bin'] = randomBytes(BIG_FILE_BYTES);
  spec['ckpt/empty-dir'] = { dir: true };
  spec['link'] = { symlink: 'ckpt/model.bin' };
  return spec;
}

describe('crash safety (kill -9 at seeded random moments)', () => {
  const s3 = inject('s3');
  let scratch: Scratch;
  let env: Record<string, string>;
  let ws: string;
  /** the workspace as written, read once: what every pulled copy must equal. */
  let wsTree: Record<string, TreeEntry>;
  let direct: S3Client;
  /** each case draws from its own PRNG (seed + case number), so running one case alone (-t) kills at the same moments. */
  let random = mulberry32(CRASH_SEED);
  const seedCase = (n: number) => (random = mulberry32(CRASH_SEED + n));
  /** a kill moment in the expected runtime window of a run that took `ms` uncrashed. */
  const killDelay = (ms: number) => Math.round(30 + random() * ms * 0.95);
  const bucket = `s3:${s3.bucket}`;
  const report: string[] = [];

  beforeAll(() => {
    ensureBuilt();
    scratch = new Scratch();
    env = {
      ...scratch.env,
      AWS_ENDPOINT_URL: s3.endpoint,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_REGION: s3.region,
    };
    ws = scratch.dir('workspace');
    writeTree(ws, workspaceSpec());
    wsTree = readTree(ws);
    direct = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
  });
  afterAll(() => {
    direct?.destroy();
    scratch?.cleanup();
    if (report.length > 0) console.log(`crash points (seed ${CRASH_SEED}, ${CRASH_POINTS} per case):\n${report.join('\n')}`);
  });

  const sync = (verb: string, path: string, dest: string, ...flags: string[]) => ['sync', verb, 'demo', path, '-b', bucket, '-d', dest, '-q', ...flags];

  /** remoteEtags lists the objects under dest straight from the server: path → ETag. */
  async function remoteEtags(dest: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    let token: string | undefined;
    do {
      const page = await direct.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: dest, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key) out.set(o.Key.slice(dest.length), (o.ETag ?? '').replace(/"/g, ''));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /**
   * bucketDifference compares the objects under dest with root: one per file, symlink and empty folder, and each ETag
   * equal to the S3 ETag of the local bytes (MD5 for a single PUT, MD5 of the part MD5s for swm's multipart part size).
   */
  async function bucketDifference(dest: string, root: string): Promise<string | undefined> {
    const remote = await remoteEtags(dest);
    const tree = readTree(root);
    const missing = Object.keys(tree).filter((k) => !remote.has(k));
    const extra = [...remote.keys()].filter((k) => !(k in tree));
    if (missing.length > 0 || extra.length > 0) {
      return `missing in the bucket: ${missing.slice(0, 5).join(', ')} (${missing.length}); extra: ${extra.slice(0, 5).join(', ')} (${extra.length})`;
    }
    for (const [path, entry] of Object.entries(tree)) {
      const bytes = entry.type === 'file' ? readFileSync(join(root, path)) : Buffer.from(entry.type === 'symlink' ? entry.target! : '');
      if (remote.get(path) !== s3Etag(bytes)) return `${dest}${path} differs from the workspace (ETag ${remote.get(path)} ≠ ${s3Etag(bytes)})`;
    }
    return undefined;
  }

  async function expectBucketHoldsWorkspace(dest: string, root: string): Promise<void> {
    expect(await bucketDifference(dest, root)).toBeUndefined();
  }

  /** expectStateMatchesBucket: the state of (bucket, dest) in root lists exactly the remote objects, with their ETags. */
  async function expectStateMatchesBucket(root: string, dest: string): Promise<void> {
    const recorded = new Map<string, string>();
    for await (const e of readState(stateFileFor(root, bucket, dest, 'files'))) recorded.set(e.path, e.etag);
    expect(recorded).toEqual(await remoteEtags(dest));
  }

  it(
    `push: ${CRASH_POINTS} kills, each rerun lands the whole workspace and a state that matches the bucket`,
    async () => {
      seedCase(1);
      const calibration = await runToEnd(sync('push', ws, `crash/base-${randomBytes(4).toString('hex')}/`), env);
      expect(calibration.code, calibration.stderr).toBe(0);
      let last = '';
      for (let i = 0; i < CRASH_POINTS; i++) {
        const dest = `crash/push-${i}-${randomBytes(4).toString('hex')}/`;
        const delay = killDelay(calibration.ms);
        const crashed = await killAt(sync('push', ws, dest), env, delay);
        const rerun = await runToEnd(sync('push', ws, dest), env);
        report.push(`push #${i}: killed at ${delay} ms of ~${calibration.ms} (${crashed.killed ? 'killed' : `had exited ${crashed.code}`}), rerun exit ${rerun.code} in ${rerun.ms} ms`);
        expect(rerun.code, `point ${i} (kill at ${delay} ms): ${rerun.stderr}`).toBe(0);
        await expectBucketHoldsWorkspace(dest, ws);
        await expectStateMatchesBucket(ws, dest);
        await expectSwmDirValid(ws);
        last = dest;
      }
      // and once through swm itself: the last crashed-then-rerun push pulls back identical, modes and mtimes included
      const copy = scratch.path('push-check');
      const back = await runToEnd(sync('pull', copy, last), env);
      expect(back.code, back.stderr).toBe(0);
      expect(readTree(copy)).toEqual(wsTree);
      rmSync(copy, { recursive: true, force: true });
    },
    CASE_TIMEOUT_MS,
  );

  it(
    `pull: ${CRASH_POINTS} kills leave no torn file; each rerun completes the tree and removes the temp files`,
    async () => {
      seedCase(2);
      const dest = `crash/pull-src-${randomBytes(4).toString('hex')}/`;
      const seeded = await runToEnd(sync('push', ws, dest), env);
      expect(seeded.code, seeded.stderr).toBe(0);
      const calibrationDir = scratch.path('pull-calibration');
      const calibration = await runToEnd(sync('pull', calibrationDir, dest), env);
      expect(calibration.code, calibration.stderr).toBe(0);
      expect(readTree(calibrationDir)).toEqual(wsTree);
      rmSync(calibrationDir, { recursive: true, force: true });
      for (let i = 0; i < CRASH_POINTS; i++) {
        const copy = scratch.path(`pull-${i}`);
        const delay = killDelay(calibration.ms);
        const crashed = await killAt(sync('pull', copy, dest), env, delay);
        if (existsSync(copy)) expectNoTornFiles(copy, wsTree);
        const rerun = await runToEnd(sync('pull', copy, dest), env);
        report.push(`pull #${i}: killed at ${delay} ms of ~${calibration.ms} (${crashed.killed ? 'killed' : `had exited ${crashed.code}`}), rerun exit ${rerun.code} in ${rerun.ms} ms`);
        expect(rerun.code, `point ${i} (kill at ${delay} ms): ${rerun.stderr}`).toBe(0);
        expect(readTree(copy)).toEqual(wsTree);
        await expectStateMatchesBucket(copy, dest);
        await expectSwmDirValid(copy);
        rmSync(copy, { recursive: true, force: true });
      }
    },
    CASE_TIMEOUT_MS,
  );

  it(
    `push --tar: ${CRASH_POINTS} kills, each rerun leaves a snapshot that pulls back identical`,
    async () => {
      seedCase(3);
      const calibration = await runToEnd(sync('push', ws, `crash/tar-base-${randomBytes(4).toString('hex')}/`, '--tar'), env);
      expect(calibration.code, calibration.stderr).toBe(0);
      for (let i = 0; i < CRASH_POINTS; i++) {
        const dest = `crash/tar-push-${i}-${randomBytes(4).toString('hex')}/`;
        const delay = killDelay(calibration.ms);
        const crashed = await killAt(sync('push', ws, dest, '--tar'), env, delay);
        const rerun = await runToEnd(sync('push', ws, dest, '--tar'), env);
        report.push(`push --tar #${i}: killed at ${delay} ms of ~${calibration.ms} (${crashed.killed ? 'killed' : `had exited ${crashed.code}`}), rerun exit ${rerun.code} in ${rerun.ms} ms`);
        expect(rerun.code, `point ${i} (kill at ${delay} ms): ${rerun.stderr}`).toBe(0);
        await expectSwmDirValid(ws);
        const copy = scratch.path(`tar-check-${i}`);
        const back = await runToEnd(sync('pull', copy, dest, '--tar'), env);
        expect(back.code, back.stderr).toBe(0);
        expect(readTree(copy)).toEqual(wsTree);
        rmSync(copy, { recursive: true, force: true });
      }
    },
    CASE_TIMEOUT_MS,
  );

  it(
    `pull --tar: ${CRASH_POINTS} kills leave no torn file; each rerun completes the tree and removes the temp files`,
    async () => {
      seedCase(4);
      const dest = `crash/tar-pull-src-${randomBytes(4).toString('hex')}/`;
      const seeded = await runToEnd(sync('push', ws, dest, '--tar'), env);
      expect(seeded.code, seeded.stderr).toBe(0);
      const calibrationDir = scratch.path('tar-pull-calibration');
      const calibration = await runToEnd(sync('pull', calibrationDir, dest, '--tar'), env);
      expect(calibration.code, calibration.stderr).toBe(0);
      rmSync(calibrationDir, { recursive: true, force: true });
      for (let i = 0; i < CRASH_POINTS; i++) {
        const copy = scratch.path(`tar-pull-${i}`);
        const delay = killDelay(calibration.ms);
        const crashed = await killAt(sync('pull', copy, dest, '--tar'), env, delay);
        if (existsSync(copy)) expectNoTornFiles(copy, wsTree);
        const rerun = await runToEnd(sync('pull', copy, dest, '--tar'), env);
        report.push(`pull --tar #${i}: killed at ${delay} ms of ~${calibration.ms} (${crashed.killed ? 'killed' : `had exited ${crashed.code}`}), rerun exit ${rerun.code} in ${rerun.ms} ms`);
        expect(rerun.code, `point ${i} (kill at ${delay} ms): ${rerun.stderr}`).toBe(0);
        expect(readTree(copy)).toEqual(wsTree);
        await expectSwmDirValid(copy);
        rmSync(copy, { recursive: true, force: true });
      }
    },
    CASE_TIMEOUT_MS,
  );

  it(
    `auto daemon (-i 1) with a writer: ${CRASH_POINTS} kills, each restart catches up until the bucket equals the workspace`,
    async () => {
      seedCase(5);
      const auto = scratch.dir('auto');
      const spec: TreeSpec = {};
      for (let i = 0; i < 200; i++) spec[`notes/n${i}.txt`] = `note ${i}\n`;
      writeTree(auto, spec);
      const dest = `crash/auto-${randomBytes(4).toString('hex')}/`;
      const first = await runToEnd(sync('push', auto, dest), env);
      expect(first.code, first.stderr).toBe(0);
      const daemonPid = () => {
        try {
          return (JSON.parse(readFileSync(join(auto, '.swm', 'daemon.json'), 'utf8')) as { pid: number }).pid;
        } catch {
          return undefined;
        }
      };
      let serial = 0;
      /** writer: creates, rewrites and deletes files every few ms until stopped. */
      const write = async (until: () => boolean) => {
        while (!until()) {
          const n = serial++;
          const pick = random();
          const victim = join(auto, 'notes', `n${Math.floor(random() * 200)}.txt`);
          if (pick < 0.5) writeFileSync(join(auto, 'notes', `new-${n}.txt`), randomBytes(100 + (n % 5000)));
          else if (pick < 0.8) writeFileSync(victim, `rewritten ${n}\n`);
          else if (existsSync(victim)) unlinkSync(victim);
          else {
            mkdirSync(join(auto, 'more', `m${n % 7}`), { recursive: true });
            writeFileSync(join(auto, 'more', `m${n % 7}`, `x${n}.bin`), randomBytes(2000));
          }
          await sleep(15);
        }
      };
      /** idleSince: the daemon's last cycle started after `ms` and had nothing to push. */
      const idleSince = (ms: number) => {
        try {
          const record = JSON.parse(readFileSync(join(auto, '.swm', 'daemon.json'), 'utf8')) as { lastCycle?: { at: string; result: string; files: number } };
          const c = record.lastCycle;
          return c !== undefined && Date.parse(c.at) > ms && c.result === 'ok' && c.files === 0;
        } catch {
          return false;
        }
      };
      const daemonLog = () => {
        const file = join(auto, '.swm', 'daemon.log');
        return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => !l.includes('(nothing changed)')).slice(-40).join('\n') : '(no daemon.log)';
      };
      // a baseline first: the daemon's first cycle is a full push that records the journal position; from then on the
      // watcher's journal (it keeps running through every kill) covers every change, deletions included
      const started = await runToEnd(sync('auto', auto, dest, '-i', '1'), env);
      expect(started.code, started.stderr).toBe(0);
      const baseline = Date.now() + 60_000;
      while (readStamp(auto)?.journalCursor === undefined && Date.now() < baseline) await sleep(200);
      expect(readStamp(auto)?.journalCursor, daemonLog()).toBeDefined();
      try {
        for (let i = 0; i < CRASH_POINTS; i++) {
          const pid = daemonPid();
          expect(pid, daemonLog()).toBeGreaterThan(0);
          // write for a while, kill the daemon somewhere in there (mid-cycle or between cycles)
          const delay = Math.round(300 + random() * 2500);
          let stop = false;
          const writing = write(() => stop);
          await sleep(delay);
          try {
            process.kill(pid!, 'SIGKILL');
          } catch {
            // it died on its own: the checks below will say why
          }
          const midCycle = existsSync(join(auto, '.swm', 'lock'));
          await sleep(200 + random() * 500);
          stop = true;
          await writing;
          // rerun the same command: a new daemon must take over and catch up (the watcher kept journaling meanwhile)
          const restarted = await runToEnd(sync('auto', auto, dest, '-i', '1'), env);
          expect(restarted.code, restarted.stderr).toBe(0);
          const deadline = Date.now() + 60_000;
          let difference: string | undefined = 'not compared yet';
          while (difference !== undefined && Date.now() < deadline) {
            await sleep(400);
            difference = await bucketDifference(dest, auto);
          }
          report.push(`auto #${i}: daemon killed ${midCycle ? 'mid-push' : 'between cycles'} after ${delay} ms of writing; ${difference === undefined ? 'caught up' : 'did NOT catch up'}`);
          expect(difference, `point ${i}: daemon.log:\n${daemonLog()}`).toBeUndefined();
          // .swm/ is checked once the daemon is idle (a cycle that started after convergence found nothing to do)
          const converged = Date.now();
          const idleBy = Date.now() + 30_000;
          while (!idleSince(converged) && Date.now() < idleBy) await sleep(200);
          expect(idleSince(converged), daemonLog()).toBe(true);
          await expectSwmDirValid(auto);
        }
      } finally {
        await runToEnd(['sync', 'auto', 'demo', auto, '-b', bucket, '-d', dest, '--stop'], env);
        await runToEnd(['sync', 'watch', 'demo', auto, '-b', bucket, '-d', dest, '--stop'], env);
      }
    },
    CASE_TIMEOUT_MS,
  );
});
