// Config file validation: malformed JSON, unknown keys and wrong types are exit 2 naming the file and the key.
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFilePath, loadConfig, parseConfig } from '../../src/config/file.js';
import { SwmError } from '../../src/errors.js';

const PATH = '/etc/swm/config.json';
const env = { HOME: '/home/u' };

function rejected(text: string): SwmError {
  try {
    parseConfig(text, PATH, env);
  } catch (e) {
    expect(e).toBeInstanceOf(SwmError);
    expect((e as SwmError).exitCode).toBe(2);
    expect((e as SwmError).message).toContain(PATH);
    expect((e as SwmError).message).not.toContain('\n');
    return e as SwmError;
  }
  throw new Error(`config was accepted: ${text}`);
}

describe('parseConfig', () => {
  it('accepts a full config and makes workspace paths absolute', () => {
    const config = parseConfig(
      JSON.stringify({
        $schema: 'https://example.invalid/swm.json',
        defaultBucket: 's3:team',
        workspaces: {
          'runpod:abc': { path: '~/ws', bucket: 'r2:ckpts', dest: 'x/y', exclude: ['*.tmp', 'cache/'], interval: 120 },
          rel: { path: 'relative/ws' },
        },
        providers: { r2: { endpoint: 'https://acct.r2.cloudflarestorage.com', region: 'auto', pathStyle: false, profile: 'r2' } },
      }),
      PATH,
      env,
    );
    expect(config.defaultBucket).toBe('s3:team');
    expect(config.workspaces['runpod:abc']).toEqual({ path: '/home/u/ws', bucket: 'r2:ckpts', dest: 'x/y', exclude: ['*.tmp', 'cache/'], interval: 120 });
    expect(config.workspaces.rel!.path).toBe('/etc/swm/relative/ws');
    expect(config.providers.r2).toEqual({ endpoint: 'https://acct.r2.cloudflarestorage.com', region: 'auto', pathStyle: false, profile: 'r2' });
  });

  it('accepts an empty object', () => {
    expect(parseConfig('{}', PATH, env)).toEqual({ workspaces: {}, providers: {} });
  });

  it('rejects malformed JSON', () => {
    expect(rejected('{"defaultBucket": ').message).toContain('not valid JSON');
  });

  it('rejects a top level that is not an object', () => {
    expect(rejected('[]').message).toContain('must be an object');
  });

  it('names unknown keys at every level', () => {
    expect(rejected('{"defaultbucket": "s3:x"}').message).toContain('defaultbucket is not a known key');
    expect(rejected('{"workspaces": {"demo": {"paht": "/x"}}}').message).toContain('workspaces.demo.paht is not a known key');
    expect(rejected('{"providers": {"r2": {"endpoint": "https://e.x", "pathstyle": true}}}').message).toContain('providers.r2.pathstyle');
  });

  it('names keys with wrong types', () => {
    expect(rejected('{"defaultBucket": 3}').message).toContain('defaultBucket must be a string');
    expect(rejected('{"workspaces": {"demo": {"exclude": "*.log"}}}').message).toContain('workspaces.demo.exclude must be an array');
    expect(rejected('{"workspaces": {"demo": {"exclude": ["ok", 7]}}}').message).toContain('workspaces.demo.exclude[1] must be a string');
    expect(rejected('{"workspaces": {"demo": {"interval": 1.5}}}').message).toContain('workspaces.demo.interval');
    expect(rejected('{"workspaces": {"demo": {"interval": "60"}}}').message).toContain('workspaces.demo.interval');
    expect(rejected('{"workspaces": {"demo": {"interval": 0}}}').message).toContain('workspaces.demo.interval');
    expect(rejected('{"providers": {"r2": {"pathStyle": "yes"}}}').message).toContain('providers.r2.pathStyle must be true or false');
    expect(rejected('{"workspaces": {"demo": null}}').message).toContain('workspaces.demo must be an object, not null');
  });

  it('checks ids, provider names, endpoints and bucket outlines', () => {
    expect(rejected('{"workspaces": {"bad id": {}}}').message).toContain('workspaces.bad id is not a valid id');
    expect(rejected('{"providers": {"file": {}}}').message).toContain('providers.file cannot be configured');
    expect(rejected('{"providers": {"My_Prov": {}}}').message).toContain('providers.My_Prov is not a valid provider name');
    expect(rejected('{"providers": {"lab": {"endpoint": "s3.lab.example"}}}').message).toContain('providers.lab.endpoint');
    expect(rejected('{"defaultBucket": "bucket-without-provider"}').message).toContain('defaultBucket "bucket-without-provider" is not provider:bucket');
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'swm-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds the default path from XDG_CONFIG_HOME or HOME', () => {
    expect(configFilePath({ HOME: '/h' }, '/cwd')).toEqual({ path: '/h/.config/swm/config.json', explicit: false });
    expect(configFilePath({ HOME: '/h', XDG_CONFIG_HOME: '/x' }, '/cwd')).toEqual({ path: '/x/swm/config.json', explicit: false });
    expect(configFilePath({ HOME: '/h', SWM_CONFIG: 'c.json' }, '/cwd')).toEqual({ path: '/cwd/c.json', explicit: true });
  });

  it('reads and validates the file, reporting its path', async () => {
    const path = join(dir, 'bad.json');
    await writeFile(path, '{"workspaces": {"demo": {"bucket": 5}}}');
    await expect(loadConfig({ HOME: dir, SWM_CONFIG: path }, dir)).rejects.toThrow(`config file ${path}: workspaces.demo.bucket must be a string`);
  });

  it('returns an empty config when no default file exists', async () => {
    const loaded = await loadConfig({ HOME: join(dir, 'nohome') }, dir);
    expect(loaded).toEqual({ path: join(dir, 'nohome', '.config/swm/config.json'), found: false, config: { workspaces: {}, providers: {} } });
  });

  it('rejects a config path that is a folder', async () => {
    await mkdir(join(dir, 'folder.json'));
    await expect(loadConfig({ HOME: dir, SWM_CONFIG: join(dir, 'folder.json') }, dir)).rejects.toMatchObject({ exitCode: 2 });
  });
});
