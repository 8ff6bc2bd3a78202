// Bad-input matrix (issue 6, item 5): every row runs the real CLI on one bad input and asserts the exit code, exactly one
// `swm: ` line naming the problem (no stack trace), and that nothing in the workspace or the bucket was lost.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProgress } from '../../src/engine/progress.js';
import { buildExcludeRules } from '../../src/engine/exclude.js';
import { scanWorkspace, type LocalEntry } from '../../src/engine/scan.js';
import { uploadEntry } from '../../src/engine/transfer.js';
import { createFileStorage } from '../../src/storage/file.js';
import {
  canMount,
  ensureBuilt,
  expectOneLine,
  filesUnder,
  folderTree,
  NOBODY,
  S3Reader,
  s3Env,
  sharedS3,
  uniqueDest,
  withSandbox,
  workspaceTree,
  writeHook,
  writeTree,
  type CliRun,
  type Sandbox,
  type TreeSpec,
} from './support.js';

/** SEED is what every row's workspace holds (and, when seeded, what its bucket holds) before the bad input. */
const SEED: TreeSpec = {
  'a.txt': 'alpha\n',
  'dir/b.txt': 'beta\n',
  'dir/sub/c.bin': Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 7) % 256)),
};

type Backend = 'file' | 's3';

/** Case is one row's world: a seeded workspace, its bucket and the flags that name them. */
interface Case {
  sb: Sandbox;
  ws: string;
  bucket: string;
  dest: string;
  /** -b BUCKET -d DEST */
  target: string[];
  backend: Backend;
  /** extra variables for the row's own run (undefined unsets one). */
  env: Record<string, string | undefined>;
  /** run the row as this uid (the sandbox is handed to it first). */
  as?: number;
  /** pushTree uploads a tree into this case's bucket and dest from a scratch workspace. */
  pushTree(spec: TreeSpec): Promise<void>;
}

/** What a row is allowed to change besides `.swm/`. */
type Effect =
  /** nothing at all. */
  | 'nothing'
  /** push moved the good files: the workspace is untouched, the bucket keeps every object it had and may gain some. */
  | 'bucket-adds'
  /** pull wrote the good files: the bucket is untouched, the workspace keeps every entry it had and may gain some. */
  | 'workspace-adds'
  /** the row's check says it all (the workspace changes behind swm's back). */
  | 'custom';

interface Row {
  name: string;
  backend?: Backend;
  /** push SEED before the row, so the bucket holds something to lose (default true). */
  seeded?: boolean;
  setup?(c: Case): void | Promise<void>;
  args(c: Case): string[];
  code: number;
  /** the one stderr line; null: stderr stays empty. */
  line: RegExp | null;
  effect?: Effect;
  check?(c: Case, run: CliRun): void | Promise<void>;
}

const push = (c: Case, ...more: string[]) => ['sync', 'push', 'demo', c.ws, ...c.target, ...more];
const pull = (c: Case, ...more: string[]) => ['sync', 'pull', 'demo', c.ws, ...c.target, ...more];
const writeConfig = (c: Case, text: string) => {
  mkdirSync(join(c.sb.home, 'config', 'swm'), { recursive: true });
  writeFileSync(join(c.sb.home, 'config', 'swm', 'config.json'), text);
};
/** longPath is a workspace path whose key under any dest of ours is more than S3's 1024 bytes. */
const longPath = `${Array.from({ length: 5 }, () => 'k'.repeat(200)).join('/')}/too-long.txt`;

let mountable = false;
let s3: S3Reader | undefined;
let hookPath = '';

/** VANISH_HOOK deletes $SWM_REL_VANISH right after the scan lists it (readdir) or stats it (lstat): a file gone mid-scan. */
const VANISH_HOOK = `
import fs from 'node:fs';
import { dirname } from 'node:path';
import { syncBuiltinESMExports } from 'node:module';
const target = process.env.SWM_REL_VANISH;
const gone = () => { try { fs.unlinkSync(target); } catch {} };
if (target && process.env.SWM_REL_VANISH_AFTER === 'readdir') {
  const readdirSync = fs.readdirSync;
  fs.readdirSync = function (p, ...rest) {
    const names = readdirSync.call(this, p, ...rest);
    if (String(p).replace(/\\/$/, '') === dirname(target)) gone();
    return names;
  };
} else if (target) {
  const lstatSync = fs.lstatSync;
  fs.lstatSync = function (p, ...rest) {
    const st = lstatSync.call(this, p, ...rest);
    if (String(p) === target) gone();
    return st;
  };
}
syncBuiltinESMExports();
`;

const ROWS: Row[] = [
  // ---- command line
  { name: 'CLI: unknown flag', args: (c) => push(c, '--bogus'), code: 2, line: /unknown option --bogus for `swm sync push`/ },
  { name: 'CLI: missing id', args: () => ['sync', 'push'], code: 2, line: /missing workspace id/ },
  { name: 'CLI: interval of zero', args: (c) => ['sync', 'auto', 'demo', c.ws, ...c.target, '-i', '0'], code: 2, line: /-i\/--interval "0" is not a positive whole number/ },
  { name: 'CLI: interval with a unit', args: (c) => ['sync', 'auto', 'demo', c.ws, ...c.target, '--interval', '5m'], code: 2, line: /--interval "5m" is not a positive whole number/ },
  { name: 'CLI: unknown verb', args: () => ['sync', 'pusj', 'demo'], code: 2, line: /unknown command "pusj"/ },
  { name: 'CLI: invalid id', args: (c) => ['sync', 'push', 'bad id!', c.ws, ...c.target], code: 2, line: /invalid workspace id "bad id!"/ },
  { name: 'CLI: flag without its value', args: (c) => ['sync', 'push', 'demo', c.ws, '-b'], code: 2, line: /-b\/--bucket needs a value/ },
  { name: 'CLI: extra argument', args: (c) => ['sync', 'pull', 'demo', c.ws, 'extra', ...c.target], code: 2, line: /unexpected argument "extra"/ },
  { name: 'CLI: empty path argument', args: (c) => ['sync', 'pull', 'demo', '', ...c.target], code: 2, line: /workspace path argument is empty/ },
  { name: 'CLI: --max-delete without --delete', args: (c) => push(c, '--max-delete', '3'), code: 2, line: /--max-delete only limits --delete/ },
  { name: 'CLI: dest climbing out', args: (c) => ['sync', 'push', 'demo', c.ws, '-b', c.bucket, '-d', 'a/../../etc'], code: 2, line: /dest "a\/\.\.\/\.\.\/etc".*contains "\."/ },
  { name: 'CLI: --delete without a watcher is refused', args: (c) => push(c, '--delete'), code: 4, line: /--delete refused: no watcher is running/ },

  // ---- config file
  { name: 'config: malformed JSON', setup: (c) => writeConfig(c, '{"workspaces": {'), args: (c) => push(c), code: 2, line: /config file .*config\.json is not valid JSON/ },
  { name: 'config: unknown key', setup: (c) => writeConfig(c, '{"defaultBuckett": "file:/tmp/x"}'), args: (c) => push(c), code: 2, line: /config file .*: defaultBuckett is not a known key/ },
  { name: 'config: unknown key in a workspace', setup: (c) => writeConfig(c, '{"workspaces": {"demo": {"pth": "/x"}}}'), args: (c) => push(c), code: 2, line: /workspaces\.demo\.pth is not a known key/ },
  { name: 'config: interval of the wrong type', setup: (c) => writeConfig(c, '{"workspaces": {"demo": {"interval": "60"}}}'), args: (c) => push(c), code: 2, line: /workspaces\.demo\.interval must be a positive whole number/ },
  { name: 'config: exclude of the wrong type', setup: (c) => writeConfig(c, '{"workspaces": {"demo": {"exclude": "*.log"}}}'), args: (c) => push(c), code: 2, line: /workspaces\.demo\.exclude must be an array/ },
  { name: 'config: provider endpoint not a URL', setup: (c) => writeConfig(c, '{"providers": {"acme": {"endpoint": "not a url"}}}'), args: (c) => push(c), code: 2, line: /providers\.acme\.endpoint "not a url" is not an http\(s\) URL/ },
  { name: 'config: SWM_CONFIG names a missing file', setup: (c) => void (c.env.SWM_CONFIG = c.sb.path('nope.json')), args: (c) => push(c), code: 2, line: /config file .*nope\.json \(from SWM_CONFIG\) does not exist/ },
  {
    name: 'config: unreadable file (as nobody)',
    setup: (c) => {
      writeConfig(c, '{}');
      chmodSync(join(c.sb.home, 'config', 'swm', 'config.json'), 0o000);
      c.as = NOBODY;
    },
    args: (c) => push(c),
    code: 2,
    line: /cannot read config file .*config\.json \(EACCES\)/,
  },

  // ---- bucket specs
  { name: 'bucket: no provider', args: (c) => ['sync', 'push', 'demo', c.ws, '-b', 'justaname'], code: 2, line: /bucket "justaname" is not provider:bucket/ },
  { name: 'bucket: unknown provider', args: (c) => ['sync', 'push', 'demo', c.ws, '-b', 'foo:bar'], code: 2, line: /unknown provider "foo" in bucket "foo:bar"/ },
  { name: 'bucket: invalid name', args: (c) => ['sync', 'push', 'demo', c.ws, '-b', 's3:A_'], code: 2, line: /bucket name "A_" .* is not a valid bucket name/ },
  { name: 'bucket: a path instead of a name', args: (c) => ['sync', 'push', 'demo', c.ws, '-b', 's3:bkt/sub'], code: 2, line: /bucket "s3:bkt\/sub" names a path/ },
  { name: 'bucket: provider without an endpoint', args: (c) => ['sync', 'push', 'demo', c.ws, '-b', 'r2:bkt'], code: 2, line: /provider r2 needs an endpoint/ },
  {
    name: 'bucket: file: bucket is a file',
    setup: (c) => writeFileSync(c.sb.path('plain-file'), 'x'),
    args: (c) => ['sync', 'push', 'demo', c.ws, '-b', `file:${c.sb.path('plain-file')}`],
    code: 1,
    line: /bucket file:.*plain-file is not a folder/,
  },
  { name: 'bucket: pull from a missing file: bucket', args: (c) => ['sync', 'pull', 'demo', c.ws, '-b', `file:${c.sb.path('no-bucket')}`], code: 1, line: /bucket file:.*no-bucket does not exist/ },
  { name: 'bucket: missing S3 bucket', backend: 's3', args: (c) => ['sync', 'pull', 'demo', c.ws, '-b', 's3:no-such-bucket-rel', '-d', c.dest], code: 1, line: /bucket s3:no-such-bucket-rel does not exist at http:\/\/127\.0\.0\.1/ },

  // ---- endpoints
  { name: 'endpoint: not an http(s) URL', backend: 's3', setup: (c) => void (c.env.AWS_ENDPOINT_URL = 'ftp://127.0.0.1/x'), args: (c) => push(c), code: 2, line: /AWS_ENDPOINT_URL="ftp:\/\/127\.0\.0\.1\/x" is not an http\(s\) URL/ },
  { name: 'endpoint: nothing listening', backend: 's3', setup: (c) => void (c.env.AWS_ENDPOINT_URL = 'http://127.0.0.1:9'), args: (c) => push(c), code: 1, line: /cannot reach endpoint http:\/\/127\.0\.0\.1:9 .*ECONNREFUSED/ },

  // ---- credentials
  {
    name: 'credentials: none at all',
    backend: 's3',
    setup: (c) => void Object.assign(c.env, { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined }),
    args: (c) => push(c),
    code: 1,
    line: /no AWS credentials found for s3:/,
  },
  { name: 'credentials: wrong secret', backend: 's3', setup: (c) => void (c.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret-0000'), args: (c) => push(c), code: 1, line: /access denied to s3:.* during check bucket/ },
  { name: 'credentials: unknown access key', backend: 's3', setup: (c) => void (c.env.AWS_ACCESS_KEY_ID = 'nobody-here'), args: (c) => pull(c), code: 1, line: /access denied to s3:/ },
  {
    name: 'credentials: profile that does not exist',
    backend: 's3',
    setup: (c) => void Object.assign(c.env, { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_PROFILE: 'no-such-profile' }),
    args: (c) => push(c),
    code: 1,
    line: /no AWS credentials found/,
  },

  // ---- workspace paths
  { name: 'path: workspace missing (push)', args: (c) => ['sync', 'push', 'demo', c.sb.path('missing'), ...c.target], code: 2, line: /workspace .*missing does not exist/ },
  {
    name: 'path: workspace is a file (push)',
    setup: (c) => writeFileSync(c.sb.path('a-file'), 'x'),
    args: (c) => ['sync', 'push', 'demo', c.sb.path('a-file'), ...c.target],
    code: 2,
    line: /workspace .*a-file is not a folder/,
  },
  {
    name: 'path: workspace is a file (pull)',
    setup: (c) => writeFileSync(c.sb.path('a-file'), 'x'),
    args: (c) => ['sync', 'pull', 'demo', c.sb.path('a-file'), ...c.target],
    code: 2,
    line: /workspace .*a-file is not a folder/,
    check: (c) => expect(workspaceTree(c.sb.root)['a-file']).toMatchObject({ type: 'file', size: 1 }),
  },
  {
    name: 'path: workspace below a file (pull)',
    setup: (c) => writeFileSync(c.sb.path('a-file'), 'x'),
    args: (c) => ['sync', 'pull', 'demo', c.sb.path('a-file/sub'), ...c.target],
    code: 2,
    line: /workspace .*a-file\/sub is not a folder \(a part of its path is a file\)/,
  },
  {
    name: 'path: workspace is a symlink loop',
    setup: (c) => symlinkSync(c.sb.path('loop'), c.sb.path('loop')),
    args: (c) => ['sync', 'pull', 'demo', c.sb.path('loop'), ...c.target],
    code: 2,
    line: /workspace .*loop is a symlink loop/,
  },
  {
    name: 'path: symlink loop inside the workspace is kept as links',
    setup: (c) => {
      symlinkSync('loop-b', join(c.ws, 'loop-a'));
      symlinkSync('loop-a', join(c.ws, 'loop-b'));
    },
    args: (c) => push(c),
    code: 0,
    line: null,
    effect: 'bucket-adds',
    check: async (c) => expect(await remoteKeys(c)).toEqual(expect.arrayContaining([`${c.dest}loop-a`, `${c.dest}loop-b`])),
  },
  {
    name: 'path: unreadable folder in the workspace (as nobody)',
    setup: (c) => {
      writeTree(c.ws, { 'locked/inside.txt': 'hidden', 'new.txt': 'fresh' });
      chmodSync(join(c.ws, 'locked'), 0o000);
      c.as = NOBODY;
    },
    args: (c) => push(c),
    code: 1,
    line: /warning: locked\/: cannot read folder: EACCES/,
    effect: 'bucket-adds',
    check: async (c) => {
      const keys = await remoteKeys(c);
      expect(keys).toContain(`${c.dest}new.txt`);
      expect(keys.filter((k) => k.includes('locked'))).toEqual([]);
    },
  },
  {
    name: 'path: unreadable file in the workspace (as nobody)',
    setup: (c) => {
      writeTree(c.ws, { 'private.key': { content: 'k', mode: 0o000 }, 'new.txt': 'fresh' });
      c.as = NOBODY;
    },
    args: (c) => push(c),
    code: 1,
    line: /warning: private\.key: EACCES: permission denied/,
    effect: 'bucket-adds',
    check: async (c) => {
      const keys = await remoteKeys(c);
      expect(keys).toContain(`${c.dest}new.txt`);
      expect(keys).not.toContain(`${c.dest}private.key`);
    },
  },
  {
    name: 'path: workspace folder not writable on pull (as nobody)',
    seeded: false,
    setup: async (c) => {
      await c.pushTree({ 'remote.txt': 'from the bucket' });
      chmodSync(c.ws, 0o555);
      c.as = NOBODY;
    },
    args: (c) => pull(c),
    code: 1,
    line: /cannot write in workspace .* \(permission denied\)/,
  },

  // ---- special files
  {
    name: 'special: FIFO is skipped with a warning',
    setup: (c) => {
      execFileSync('mkfifo', [join(c.ws, 'pipe')]);
      writeTree(c.ws, { 'new.txt': 'fresh' });
    },
    args: (c) => push(c),
    code: 0,
    line: /warning: pipe: skipped FIFO/,
    effect: 'bucket-adds',
    check: async (c) => {
      const keys = await remoteKeys(c);
      expect(keys).toContain(`${c.dest}new.txt`);
      expect(keys).not.toContain(`${c.dest}pipe`);
    },
  },
  {
    name: 'special: socket is skipped with a warning',
    setup: (c) => {
      // a listening socket left behind by a process that exited without closing it
      const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(join(c.ws, 'sock'))}, () => process.exit(0))`]);
      expect(r.status).toBe(0);
      writeTree(c.ws, { 'new.txt': 'fresh' });
    },
    args: (c) => push(c),
    code: 0,
    line: /warning: sock: skipped socket/,
    effect: 'bucket-adds',
    check: async (c) => {
      const keys = await remoteKeys(c);
      expect(keys).toContain(`${c.dest}new.txt`);
      expect(keys).not.toContain(`${c.dest}sock`);
    },
  },

  // ---- files vanishing mid-scan (a preload hook deletes the file at a precise point of the scan)
  {
    name: 'vanishing: file deleted between readdir and lstat is passed over',
    setup: (c) => {
      writeTree(c.ws, { 'dir/gone.txt': 'soon gone', 'new.txt': 'fresh' });
      Object.assign(c.env, { NODE_OPTIONS: `--import=${hookPath}`, SWM_REL_VANISH: join(c.ws, 'dir/gone.txt'), SWM_REL_VANISH_AFTER: 'readdir' });
    },
    args: (c) => push(c),
    code: 0,
    line: null,
    effect: 'custom',
    check: vanishedCheck,
  },
  {
    name: 'vanishing: file deleted between scan and read is not uploaded',
    setup: (c) => {
      writeTree(c.ws, { 'dir/gone.txt': 'soon gone', 'new.txt': 'fresh' });
      Object.assign(c.env, { NODE_OPTIONS: `--import=${hookPath}`, SWM_REL_VANISH: join(c.ws, 'dir/gone.txt'), SWM_REL_VANISH_AFTER: 'lstat' });
    },
    args: (c) => push(c),
    code: 0,
    line: /^swm: warning: dir\/gone\.txt changed while being read; it will go in the next sync$/,
    effect: 'custom',
    check: vanishedCheck,
  },

  // ---- keys too long for S3
  ...(['file', 's3'] as const).map(
    (backend): Row => ({
      name: `key: longer than 1024 bytes (${backend})`,
      backend,
      setup: (c) => {
        expect(Buffer.byteLength(c.dest + longPath)).toBeGreaterThan(1024);
        writeTree(c.ws, { [longPath]: 'deep', 'new.txt': 'fresh' });
      },
      args: (c) => push(c),
      code: 1,
      line: /warning: k{200}\/.*\/too-long\.txt: object key is \d{4} bytes, over S3's limit of 1024: not uploaded/,
      effect: 'bucket-adds',
      check: async (c) => {
        const keys = await remoteKeys(c);
        expect(keys).toContain(`${c.dest}new.txt`);
        expect(keys.filter((k) => k.includes('too-long'))).toEqual([]);
      },
    }),
  ),

  // ---- disk full and read-only workspaces (real tmpfs mounts)
  {
    name: 'disk: full on pull (2 MiB tmpfs, 3 MB object)',
    seeded: false,
    setup: async (c) => {
      await c.pushTree({ 'big.bin': Buffer.alloc(3_000_000, 7), 'small.txt': 'small' });
      c.ws = c.sb.mountTmpfs('full', 2048);
      writeTree(c.ws, { 'keep.txt': 'mine' });
    },
    args: (c) => pull(c),
    code: 1,
    line: /disk full while writing big\.bin: free space and pull again \(nothing partial was left\)/,
    effect: 'workspace-adds',
    check: (c) => {
      expect(existsSync(join(c.ws, 'big.bin'))).toBe(false);
      expect(filesUnder(c.ws).filter((p) => p.includes('.swm-tmp-'))).toEqual([]);
    },
  },
  {
    name: 'disk: read-only workspace on pull',
    seeded: false,
    setup: async (c) => {
      await c.pushTree({ 'remote.txt': 'from the bucket' });
      c.ws = c.sb.mountTmpfs('ro', 256);
      writeTree(c.ws, { 'keep.txt': 'mine' });
      c.sb.remountReadOnly(c.ws);
    },
    args: (c) => pull(c),
    code: 1,
    line: /cannot write in workspace .*ro \(read-only file system\)/,
  },
  {
    name: 'disk: read-only workspace on push',
    seeded: false,
    setup: (c) => {
      c.ws = c.sb.mountTmpfs('ro', 256);
      writeTree(c.ws, { 'keep.txt': 'mine' });
      c.sb.remountReadOnly(c.ws);
    },
    args: (c) => push(c),
    code: 1,
    line: /cannot write in workspace .*ro \(read-only file system\)/,
  },

  // ---- damaged state
  {
    name: 'state: corrupt .swm state is rebuilt with a warning',
    setup: (c) => {
      const swm = join(c.ws, '.swm');
      const stateFile = readdirSync(swm).find((n) => n.startsWith('state-'));
      expect(stateFile).toBeDefined();
      writeFileSync(join(swm, stateFile!), 'garbage\x00\x01 not a state file\n');
    },
    args: (c) => push(c),
    code: 0,
    line: /warning: the sync state in \.swm\/ was corrupt .*rebuilding it from a full compare/,
  },
];

/** remoteKeys lists the keys of bucketSnapshot (file: sidecars appear under their on-disk names, which still contain the key). */
async function remoteKeys(c: Case): Promise<string[]> {
  return Object.keys(await bucketSnapshot(c));
}

/** bucketSnapshot is the whole file: bucket folder, or the S3 keys (with ETags) under the case's dest. */
async function bucketSnapshot(c: Case): Promise<Record<string, string>> {
  if (c.backend === 's3') return s3!.snapshot(c.dest);
  // key-like names for the objects (sidecars and temps listed too, under their on-disk names)
  const tree = folderTree(c.sb.path('bucket'));
  const out: Record<string, string> = {};
  for (const [path, value] of Object.entries(tree)) {
    if (path.endsWith('/')) continue;
    out[path.replace(/^objects\//, '').replace(/%\//g, '/')] = value;
  }
  return out;
}

function vanishedCheck(c: Case, run: CliRun): Promise<void> | void {
  expect(existsSync(join(c.ws, 'dir/gone.txt')), 'the hook deleted the file').toBe(false);
  expect(run.stdout).toMatch(/uploaded new\.txt/);
  return remoteKeys(c).then((keys) => {
    expect(keys).toContain(`${c.dest}new.txt`);
    expect(keys.filter((k) => k.includes('gone.txt'))).toEqual([]);
    // the seed is intact
    for (const path of Object.keys(SEED)) expect(keys).toContain(`${c.dest}${path}`);
  });
}

async function runRow(row: Row): Promise<void> {
  await withSandbox(async (sb) => {
    const backend = row.backend ?? 'file';
    const dest = uniqueDest('bad');
    const bucket = backend === 'file' ? `file:${sb.path('bucket')}` : `s3:${sharedS3().bucket}`;
    if (backend === 's3') sb.setEnv(s3Env(sharedS3()));
    const c: Case = {
      sb,
      ws: sb.dir('ws'),
      bucket,
      dest,
      target: ['-b', bucket, '-d', dest],
      backend,
      env: {},
      async pushTree(spec) {
        const from = sb.dir(`from-${Math.random().toString(36).slice(2)}`);
        writeTree(from, spec);
        const r = await sb.swm(['sync', 'push', 'other', from, '-b', bucket, '-d', dest, '-q']);
        expect(r, r.stderr).toMatchObject({ code: 0 });
      },
    };
    writeTree(c.ws, SEED);
    if (row.seeded ?? true) {
      const r = await sb.swm(['sync', 'push', 'demo', c.ws, ...c.target, '-q']);
      expect(r, r.stderr).toMatchObject({ code: 0, stderr: '' });
    }
    await row.setup?.(c);
    if (c.as !== undefined) sb.giveTo(c.as);

    const before = { ws: existsSync(c.ws) ? workspaceTree(c.ws) : {}, bucket: await bucketSnapshot(c) };
    const run = await sb.swm(row.args(c), { env: c.env, ...(c.as !== undefined ? { as: c.as } : {}) });

    if (row.line === null) {
      expect({ code: run.code, stderr: run.stderr }, run.stdout).toEqual({ code: row.code, stderr: '' });
    } else {
      expectOneLine(run, row.code, row.line);
    }
    const after = { ws: existsSync(c.ws) ? workspaceTree(c.ws) : {}, bucket: await bucketSnapshot(c) };
    const effect = row.effect ?? 'nothing';
    if (effect === 'nothing' || effect === 'bucket-adds') expect(after.ws, 'workspace changed').toEqual(before.ws);
    if (effect === 'nothing' || effect === 'workspace-adds') expect(after.bucket, 'bucket changed').toEqual(before.bucket);
    if (effect === 'bucket-adds') expect(after.bucket, 'bucket lost an object').toMatchObject(before.bucket);
    if (effect === 'workspace-adds') expect(after.ws, 'workspace lost an entry').toMatchObject(before.ws);
    await row.check?.(c, run);
  });
}

beforeAll(() => {
  ensureBuilt();
  mountable = canMount();
  s3 = new S3Reader(sharedS3());
  const dir = join(process.env.TMPDIR ?? '/tmp', `swm-rel-hook-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  hookPath = writeHook(dir, 'vanish-hook.mjs', VANISH_HOOK);
  chmodSync(hookPath, 0o644);
});

afterAll(() => {
  s3?.close();
  if (hookPath) rmSync(join(hookPath, '..'), { recursive: true, force: true });
});

describe('bad-input matrix: exit code, one line naming the problem, nothing lost', () => {
  it('has at least 30 rows', () => {
    expect(ROWS.length).toBeGreaterThanOrEqual(30);
    expect(new Set(ROWS.map((r) => r.name)).size).toBe(ROWS.length);
  });

  describe.concurrent('rows', () => {
    it.each(ROWS.map((row) => [row.name, row] as const))('%s', async (_name, row) => {
      if (row.name.startsWith('disk:')) expect(mountable, 'this test needs to mount a tmpfs (root)').toBe(true);
      await runRow(row);
    });
  });
});

describe('files vanishing between scan and upload (engine level)', () => {
  it('a file removed after the scan listed it is reported unstable and never stored', async () => {
    await withSandbox(async (sb) => {
      const ws = sb.dir('ws');
      writeTree(ws, { 'keep.txt': 'kept', 'gone.txt': 'gone soon', 'dir/also-gone.bin': Buffer.alloc(2 * 1024 * 1024, 1) });
      const storage = createFileStorage(sb.path('bucket'), { create: true });
      try {
        const entries: LocalEntry[] = [];
        for await (const e of scanWorkspace(ws, buildExcludeRules(ws, []), () => {})) entries.push(e);
        expect(entries.map((e) => e.path)).toEqual(['dir/also-gone.bin', 'gone.txt', 'keep.txt']);
        rmSync(join(ws, 'gone.txt'));
        rmSync(join(ws, 'dir/also-gone.bin'));
        const ctx = { root: ws, storage, dest: 'd/', progress: createProgress() };
        const outcomes = [];
        for (const e of entries) outcomes.push(await uploadEntry(e, undefined, ctx));
        expect(outcomes.map((o) => o.kind)).toEqual(['unstable', 'unstable', 'uploaded']);
        const keys: string[] = [];
        for await (const o of storage.list('d/')) keys.push(o.key);
        expect(keys).toEqual(['d/keep.txt']);
      } finally {
        await storage.close();
      }
    });
  });

  it('a file replaced by another of a different size after the scan is not uploaded torn', async () => {
    await withSandbox(async (sb) => {
      const ws = sb.dir('ws');
      writeTree(ws, { 'swapped.txt': 'original content' });
      const storage = createFileStorage(sb.path('bucket'), { create: true });
      try {
        const entries: LocalEntry[] = [];
        for await (const e of scanWorkspace(ws, buildExcludeRules(ws, []), () => {})) entries.push(e);
        writeFileSync(join(ws, 'swapped.txt'), 'another, longer content entirely');
        const out = await uploadEntry(entries[0]!, undefined, { root: ws, storage, dest: 'd/', progress: createProgress() });
        expect(out.kind).toBe('unstable');
        expect(await storage.head('d/swapped.txt')).toBeUndefined();
      } finally {
        await storage.close();
      }
    });
  });
});
