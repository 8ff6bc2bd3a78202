// The real `swm` binary as a child process: help, version, and every kind of bad usage is exit 2 with one line and no stack.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'dist/cli/main.js');

/** newestMtime is the latest modification time among the .ts files under a folder. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

let home: string;

beforeAll(() => {
  // `npm test` builds first; when this file runs alone against stale or missing output, build here.
  const stale = !existsSync(MAIN) || statSync(MAIN).mtimeMs < Math.max(newestMtime(join(ROOT, 'src/cli')), newestMtime(join(ROOT, 'src/config')));
  if (stale) spawnSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'ignore' });
  expect(existsSync(MAIN)).toBe(true);
  home = mkdtempSync(join(tmpdir(), 'swm-cli-home-'));
});
afterAll(() => {
  rmSync(home, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** swm runs the built CLI with an environment cut off from the real HOME, config and AWS endpoint settings. */
function swm(args: string[], env: Record<string, string> = {}): Run {
  const clean: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, ...env };
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: home, env: clean, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** expectUsageError checks exit 2, exactly one stderr line starting "swm: ", and no stack trace. */
function expectUsageError(r: Run, contains: string): void {
  expect(r.code).toBe(2);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^swm: /);
  expect(lines[0]).toContain(contains);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('help and version', () => {
  it('--help exits 0 and lists every sync command', () => {
    const r = swm(['--help']);
    expect(r.code).toBe(0);
    for (const verb of ['push', 'pull', 'watch', 'auto', 'status']) expect(r.stdout).toContain(`swm sync ${verb}`);
  });

  it('sync --help lists the commands', () => {
    const r = swm(['sync', '--help']);
    expect(r.code).toBe(0);
    for (const verb of ['push', 'pull', 'watch', 'auto', 'status']) expect(r.stdout).toMatch(new RegExp(`^\\s+${verb}\\s`, 'm'));
  });

  it('sync push --help shows kebab-case flags and no colour codes in a pipe', () => {
    const r = swm(['sync', 'push', '--help']);
    expect(r.code).toBe(0);
    for (const f of ['--dry-run', '--skip-pull', '--max-delete', '-x, --exclude', '-b, --bucket', '--delete', '--tar', '--raw']) {
      expect(r.stdout).toContain(f);
    }
    expect(r.stdout).not.toContain('dryRun');
    expect(r.stdout).not.toContain('\x1b[');
  });

  it('help of each command shows its own flags', () => {
    expect(swm(['sync', 'auto', '--help']).stdout).toMatch(/-i, --interval[\s\S]*--status[\s\S]*--stop/);
    expect(swm(['sync', 'status', 'demo', '-h']).stdout).toContain('--remote');
    expect(swm(['sync', 'watch', '--help']).stdout).toContain('--stop');
  });

  it('--version prints the package version', () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const r = swm(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it('no command prints the help on stderr and exits 2', () => {
    const r = swm([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('swm sync push');
    expect(swm(['sync']).code).toBe(2);
  });
});

describe('bad usage is exit 2, one line, no stack', () => {
  it('unknown flag', () => {
    expectUsageError(swm(['sync', 'push', 'demo', '--typo']), 'unknown option --typo for `swm sync push` (see swm sync push --help)');
    expectUsageError(swm(['sync', 'push', 'demo', '--dryRun']), 'unknown option --dryRun');
    expectUsageError(swm(['sync', 'status', 'demo', '--force']), 'unknown option --force');
    expectUsageError(swm(['sync', 'pull', 'demo', '--delete']), 'unknown option --delete');
  });

  it('flag misuse', () => {
    expectUsageError(swm(['sync', 'push', 'demo', '--json=yes']), 'takes no value');
    expectUsageError(swm(['sync', 'push', 'demo', '-b']), '-b/--bucket needs a value');
    const both = swm(['sync', 'push', 'demo', '-q', '-v']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^swm: -q\/--quiet and -v\/--verbose contradict/);
  });

  it('missing id', () => {
    expectUsageError(swm(['sync', 'push']), 'missing workspace id');
    expectUsageError(swm(['sync', 'status', '--json']), 'missing workspace id');
  });

  it('too many positionals', () => {
    expectUsageError(swm(['sync', 'pull', 'demo', 'ws', 'extra']), 'unexpected argument "extra"');
  });

  it('invalid id', () => {
    expectUsageError(swm(['sync', 'push', 'bad/id']), 'invalid workspace id "bad/id"');
  });

  it('bad --interval and --max-delete', () => {
    for (const value of ['0', '-3', 'abc', '1.5', '']) {
      expect(swm(['sync', 'auto', 'demo', '-i', value]).code, `-i ${value}`).toBe(2);
    }
    expectUsageError(swm(['sync', 'auto', 'demo', '--interval', 'abc']), '-i/--interval "abc" is not a positive whole number');
    expectUsageError(swm(['sync', 'push', 'demo', '--delete', '--max-delete', '0']), '--max-delete "0"');
    expectUsageError(swm(['sync', 'push', 'demo', '--max-delete', '3']), 'add --delete');
  });

  it('bad bucket spec', () => {
    expectUsageError(swm(['sync', 'push', 'demo', '-b', 'no-colon']), 'is not provider:bucket');
    expectUsageError(swm(['sync', 'push', 'demo', '-b', 's3:']), 'has no bucket name');
    expectUsageError(swm(['sync', 'push', 'demo', '-b', 's3:Bad Name!']), 'is not a valid bucket name');
    expectUsageError(swm(['sync', 'push', 'demo'], { SWM_BUCKET: 's3:x/y' }), '(from SWM_BUCKET)');
  });

  it('unknown provider names the known ones', () => {
    expectUsageError(swm(['sync', 'push', 'demo', '-b', 'azure:box']), 'known providers are file, s3, r2, gcs, b2, minio');
  });

  it('a provider without an endpoint says how to add one', () => {
    expectUsageError(swm(['sync', 'pull', 'demo', '-b', 'r2:ckpts']), 'provider r2 needs an endpoint: add providers.r2.endpoint to');
  });

  it('a broken config file names the file and the key', () => {
    const config = join(home, 'broken.json');
    writeFileSync(config, JSON.stringify({ workspaces: { demo: { exclude: 'not-a-list' } } }));
    expectUsageError(swm(['sync', 'status', 'demo'], { SWM_CONFIG: config }), `config file ${config}: workspaces.demo.exclude must be an array`);
    writeFileSync(config, '{ not json');
    expectUsageError(swm(['sync', 'status', 'demo'], { SWM_CONFIG: config }), 'is not valid JSON');
  });

  it('unknown commands', () => {
    expectUsageError(swm(['sync', 'pusj', 'demo']), 'unknown command "pusj"');
    expectUsageError(swm(['push', 'demo']), 'did you mean `swm sync push`');
    expectUsageError(swm(['--typo']), 'unknown option --typo for `swm`');
  });

  it('--json adds one JSON error object on stdout', () => {
    const r = swm(['sync', 'push', 'demo', '--json', '--typo']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ type: 'error', exitCode: 2, message: expect.stringContaining('--typo') });
  });

  it('-v adds the stack trace', () => {
    const r = swm(['sync', 'push', 'demo', '-v', '-b', 'nocolon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^swm: bucket "nocolon"/);
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});
