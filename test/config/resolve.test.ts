// resolveTarget: precedence flags > env > config file > defaults, id and dest validation, workspace path resolution.
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveTarget } from '../../src/config/resolve.js';
import { SwmError } from '../../src/errors.js';

let home: string;
let cwd: string;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'swm-resolve-home-'));
  cwd = join(home, 'cwd');
  await mkdir(cwd);
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

/** baseEnv isolates a test from the real HOME and AWS settings. */
function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { HOME: home, ...extra };
}

async function writeConfig(config: unknown, path = join(home, '.config', 'swm', 'config.json')): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, JSON.stringify(config));
  return path;
}

async function usageFailure(p: Promise<unknown>): Promise<SwmError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SwmError);
  expect((e as SwmError).exitCode).toBe(2);
  return e as SwmError;
}

describe('defaults', () => {
  it('uses cwd, the embedded file bucket under ~/.local/share and the id as dest', async () => {
    const t = await resolveTarget({ id: 'runpod:abc123', excludes: [] }, baseEnv(), cwd);
    expect(t.workspace).toBe(cwd);
    expect(t.bucket).toEqual({
      kind: 'file',
      provider: 'file',
      path: join(home, '.local/share/swm/buckets/default'),
      text: `file:${join(home, '.local/share/swm/buckets/default')}`,
    });
    expect(t.dest).toBe('runpod/abc123/');
    expect(t.excludes).toEqual([]);
    expect(t.interval).toBe(60);
  });

  it('puts the default bucket under an absolute XDG_DATA_HOME and ignores a relative one', async () => {
    const t = await resolveTarget({ id: 'demo', excludes: [] }, baseEnv({ XDG_DATA_HOME: '/data/xdg' }), cwd);
    expect(t.bucket).toMatchObject({ kind: 'file', path: '/data/xdg/swm/buckets/default' });
    const r = await resolveTarget({ id: 'demo', excludes: [] }, baseEnv({ XDG_DATA_HOME: 'rel/xdg' }), cwd);
    expect(r.bucket).toMatchObject({ kind: 'file', path: join(home, '.local/share/swm/buckets/default') });
  });

  it('resolves the path argument against cwd and expands ~', async () => {
    expect((await resolveTarget({ id: 'demo', path: 'ws', excludes: [] }, baseEnv(), cwd)).workspace).toBe(join(cwd, 'ws'));
    expect((await resolveTarget({ id: 'demo', path: '~/ws', excludes: [] }, baseEnv(), cwd)).workspace).toBe(join(home, 'ws'));
    expect((await resolveTarget({ id: 'demo', path: '/abs/ws/', excludes: [] }, baseEnv(), cwd)).workspace).toBe('/abs/ws');
  });
});

describe('precedence', () => {
  const config = {
    defaultBucket: 's3:config-default',
    workspaces: {
      demo: { path: '~/from-config', bucket: 's3:config-ws', dest: 'cfg/dest', exclude: ['*.log'], interval: 30 },
    },
  };

  it('config workspace entry beats defaults', async () => {
    await writeConfig(config);
    const t = await resolveTarget({ id: 'demo', excludes: [] }, baseEnv(), cwd);
    expect(t.workspace).toBe(join(home, 'from-config'));
    expect(t.bucket).toMatchObject({ kind: 's3', provider: 's3', bucket: 'config-ws' });
    expect(t.dest).toBe('cfg/dest/');
    expect(t.excludes).toEqual(['*.log']);
    expect(t.interval).toBe(30);
  });

  it('config defaultBucket applies to ids without their own bucket', async () => {
    await writeConfig(config);
    const t = await resolveTarget({ id: 'other', excludes: [] }, baseEnv(), cwd);
    expect(t.bucket).toMatchObject({ bucket: 'config-default' });
    expect(t.dest).toBe('other/');
    expect(t.workspace).toBe(cwd);
  });

  it('env beats the config file', async () => {
    await writeConfig(config);
    const t = await resolveTarget({ id: 'demo', excludes: [] }, baseEnv({ SWM_BUCKET: 's3:from-env', SWM_DEST: 'env/dest' }), cwd);
    expect(t.bucket).toMatchObject({ bucket: 'from-env' });
    expect(t.dest).toBe('env/dest/');
  });

  it('flags beat env and config; flag excludes come after config excludes', async () => {
    await writeConfig(config);
    const t = await resolveTarget(
      { id: 'demo', path: 'flagpath', bucket: 's3:from-flag', dest: '/flag//dest/', excludes: ['tmp/'], interval: 5 },
      baseEnv({ SWM_BUCKET: 's3:from-env', SWM_DEST: 'env/dest' }),
      cwd,
    );
    expect(t.workspace).toBe(join(cwd, 'flagpath'));
    expect(t.bucket).toMatchObject({ bucket: 'from-flag' });
    expect(t.dest).toBe('flag/dest/');
    expect(t.excludes).toEqual(['*.log', 'tmp/']);
    expect(t.interval).toBe(5);
  });

  it('SWM_CONFIG beats XDG_CONFIG_HOME, which beats ~/.config', async () => {
    await writeConfig({ defaultBucket: 's3:home-config' });
    const xdg = join(home, 'xdg');
    await writeConfig({ defaultBucket: 's3:xdg-config' }, join(xdg, 'swm', 'config.json'));
    const explicit = await writeConfig({ defaultBucket: 's3:explicit-config' }, join(home, 'elsewhere.json'));
    const id = { id: 'demo', excludes: [] };
    expect((await resolveTarget(id, baseEnv(), cwd)).bucket).toMatchObject({ bucket: 'home-config' });
    expect((await resolveTarget(id, baseEnv({ XDG_CONFIG_HOME: xdg }), cwd)).bucket).toMatchObject({ bucket: 'xdg-config' });
    expect((await resolveTarget(id, baseEnv({ XDG_CONFIG_HOME: xdg, SWM_CONFIG: explicit }), cwd)).bucket).toMatchObject({
      bucket: 'explicit-config',
    });
  });

  it('a relative workspace path in the config is relative to the config file', async () => {
    const path = await writeConfig({ workspaces: { demo: { path: 'ws' } } }, join(home, 'conf', 'swm.json'));
    const t = await resolveTarget({ id: 'demo', excludes: [] }, baseEnv({ SWM_CONFIG: path }), cwd);
    expect(t.workspace).toBe(join(home, 'conf', 'ws'));
  });

  it('a custom provider from the config maps to its endpoint', async () => {
    await writeConfig({ providers: { lab: { endpoint: 'https://s3.lab.example', region: 'eu-1', profile: 'lab' } } });
    const t = await resolveTarget({ id: 'demo', bucket: 'lab:ckpts', excludes: [] }, baseEnv(), cwd);
    expect(t.bucket).toEqual({
      kind: 's3',
      provider: 'lab',
      bucket: 'ckpts',
      text: 'lab:ckpts',
      s3: { endpoint: 'https://s3.lab.example', region: 'eu-1', pathStyle: false, profile: 'lab' },
    });
  });
});

describe('bad input is exit 2', () => {
  it('rejects ids outside [A-Za-z0-9._:-]+', async () => {
    for (const id of ['', 'a b', 'a/b', 'ü', 'x;rm']) {
      const e = await usageFailure(resolveTarget({ id, excludes: [] }, baseEnv(), cwd));
      expect(e.message).toContain('invalid workspace id');
    }
  });

  it('rejects ids and dests that would climb out of the prefix', async () => {
    expect((await usageFailure(resolveTarget({ id: '..', excludes: [] }, baseEnv(), cwd))).message).toContain('-d/--dest');
    expect((await usageFailure(resolveTarget({ id: 'demo', dest: 'a/../b', excludes: [] }, baseEnv(), cwd))).message).toContain(
      'dest "a/../b"',
    );
    // an explicit dest makes an id like ".." usable
    expect((await resolveTarget({ id: '..', dest: 'ok', excludes: [] }, baseEnv(), cwd)).dest).toBe('ok/');
  });

  it('names where a bad bucket came from', async () => {
    const path = await writeConfig({ workspaces: { demo: { bucket: 'nope:x' } } });
    const e = await usageFailure(resolveTarget({ id: 'demo', excludes: [] }, baseEnv(), cwd));
    expect(e.message).toContain('unknown provider "nope"');
    expect(e.message).toContain(`workspaces.demo.bucket in ${path}`);
    const fromEnv = await usageFailure(resolveTarget({ id: 'demo', excludes: [] }, baseEnv({ SWM_BUCKET: 'nocolon' }), cwd));
    expect(fromEnv.message).toContain('(from SWM_BUCKET)');
  });

  it('a missing SWM_CONFIG file is an error, a missing default config is not', async () => {
    const e = await usageFailure(resolveTarget({ id: 'demo', excludes: [] }, baseEnv({ SWM_CONFIG: join(home, 'missing.json') }), cwd));
    expect(e.message).toContain(join(home, 'missing.json'));
    await expect(resolveTarget({ id: 'demo', excludes: [] }, baseEnv(), cwd)).resolves.toMatchObject({ id: 'demo' });
  });

  it('rejects a non-positive interval', async () => {
    await usageFailure(resolveTarget({ id: 'demo', excludes: [], interval: 0 }, baseEnv(), cwd));
  });
});
