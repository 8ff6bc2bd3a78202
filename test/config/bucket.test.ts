// parseBucketSpec: file:, s3:, built-in and custom providers, endpoints from config or env, path-style defaults, and malformed specs (exit 2).
import { describe, expect, it } from 'vitest';
import { isLocalEndpoint, parseBucketSpec } from '../../src/config/bucket.js';
import { SwmError } from '../../src/errors.js';
import type { ProviderConfig } from '../../src/config/types.js';

const ctx = { env: { HOME: '/home/u' }, cwd: '/work/here', configPath: '/home/u/.config/swm/config.json' };

function rejected(text: string, providers: Record<string, ProviderConfig> = {}, env: NodeJS.ProcessEnv = ctx.env): SwmError {
  try {
    parseBucketSpec(text, providers, { ...ctx, env });
  } catch (e) {
    expect(e).toBeInstanceOf(SwmError);
    expect((e as SwmError).exitCode).toBe(2);
    return e as SwmError;
  }
  throw new Error(`bucket spec was accepted: ${text}`);
}

describe('file: buckets', () => {
  it('keeps absolute paths, resolves relative ones against cwd and expands ~', () => {
    expect(parseBucketSpec('file:/mnt/b/x/', {}, ctx)).toEqual({ kind: 'file', provider: 'file', path: '/mnt/b/x', text: 'file:/mnt/b/x' });
    expect(parseBucketSpec('file:rel/b', {}, ctx)).toMatchObject({ path: '/work/here/rel/b', text: 'file:/work/here/rel/b' });
    expect(parseBucketSpec('file:~/b', {}, ctx)).toMatchObject({ path: '/home/u/b' });
  });

  it('rejects an empty path', () => {
    expect(rejected('file:').message).toContain('has no folder');
  });
});

describe('S3-compatible buckets', () => {
  it('s3: with no endpoint goes to AWS with virtual-hosted addressing', () => {
    expect(parseBucketSpec('s3:my-bucket', {}, ctx)).toEqual({
      kind: 's3',
      provider: 's3',
      bucket: 'my-bucket',
      text: 's3:my-bucket',
      s3: { pathStyle: false },
    });
  });

  it('takes AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL, and path-style for IPs and localhost', () => {
    const both = { HOME: '/h', AWS_ENDPOINT_URL: 'https://generic.example', AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000' };
    expect(parseBucketSpec('s3:b01', {}, { ...ctx, env: both }).s3 ?? {}).toEqual({ endpoint: 'http://127.0.0.1:9000', pathStyle: true });
    const generic = parseBucketSpec('s3:b01', {}, { ...ctx, env: { AWS_ENDPOINT_URL: 'https://generic.example' } });
    expect(generic).toMatchObject({ s3: { endpoint: 'https://generic.example', pathStyle: false } });
    expect(parseBucketSpec('s3:b01', {}, { ...ctx, env: { AWS_ENDPOINT_URL: 'http://localhost:9000' } })).toMatchObject({ s3: { pathStyle: true } });
  });

  it('r2 takes its endpoint from the config entry, or from AWS_ENDPOINT_URL', () => {
    const providers = { r2: { endpoint: 'https://acct.r2.cloudflarestorage.com' } };
    expect(parseBucketSpec('r2:ckpts', providers, ctx)).toMatchObject({
      provider: 'r2',
      bucket: 'ckpts',
      s3: { endpoint: 'https://acct.r2.cloudflarestorage.com', region: 'auto', pathStyle: false },
    });
    expect(parseBucketSpec('r2:ckpts', {}, { ...ctx, env: { AWS_ENDPOINT_URL: 'https://env.example' } })).toMatchObject({
      s3: { endpoint: 'https://env.example' },
    });
  });

  it('r2, b2 and minio without an endpoint say where to put one', () => {
    for (const p of ['r2', 'b2', 'minio']) {
      const e = rejected(`${p}:bucket`);
      expect(e.message).toBe(`provider ${p} needs an endpoint: add providers.${p}.endpoint to ${ctx.configPath} or set AWS_ENDPOINT_URL`);
    }
  });

  it('gcs has a default endpoint; minio defaults to path-style', () => {
    expect(parseBucketSpec('gcs:team', {}, ctx)).toMatchObject({ s3: { endpoint: 'https://storage.googleapis.com', pathStyle: false } });
    expect(parseBucketSpec('minio:x01', { minio: { endpoint: 'https://minio.lab.example' } }, ctx)).toMatchObject({ s3: { pathStyle: true } });
  });

  it('an explicit pathStyle in the config wins', () => {
    expect(parseBucketSpec('s3:b01', { s3: { endpoint: 'http://10.0.0.5:9000', pathStyle: false } }, ctx)).toMatchObject({
      s3: { endpoint: 'http://10.0.0.5:9000', pathStyle: false },
    });
  });

  it('accepts custom providers from the config', () => {
    expect(parseBucketSpec('lab:data', { lab: { endpoint: 'http://[::1]:9000' } }, ctx)).toMatchObject({
      kind: 's3',
      provider: 'lab',
      bucket: 'data',
      s3: { endpoint: 'http://[::1]:9000', pathStyle: true },
    });
  });
});

describe('malformed specs are exit 2', () => {
  it('no colon', () => {
    expect(rejected('my-bucket').message).toContain('is not provider:bucket');
  });

  it('empty bucket name', () => {
    expect(rejected('s3:').message).toContain('has no bucket name');
  });

  it('invalid bucket name characters or length', () => {
    for (const spec of ['s3:has space', 's3:a!b', 's3:ab', 's3:-lead', 's3:trail-', 's3:a..b']) {
      expect(rejected(spec).message).toContain('is not a valid bucket name');
    }
  });

  it('a key path after the bucket points at --dest', () => {
    expect(rejected('s3:bucket/prefix').message).toContain('-d/--dest');
  });

  it('unknown provider names the known ones, custom ones included', () => {
    const e = rejected('azure:x01', { lab: { endpoint: 'https://lab.example' } });
    expect(e.message).toContain('unknown provider "azure"');
    expect(e.message).toContain('file, s3, r2, gcs, b2, minio, lab');
    expect(e.hint).toContain('providers.azure');
  });

  it('AWS_ENDPOINT_URL that is not a URL', () => {
    expect(rejected('s3:b01', {}, { AWS_ENDPOINT_URL: 'localhost:9000' }).message).toContain('AWS_ENDPOINT_URL');
  });
});

describe('isLocalEndpoint', () => {
  it('is true for IPv4, IPv6 and localhost, false for names', () => {
    expect(isLocalEndpoint('http://127.0.0.1:9000')).toBe(true);
    expect(isLocalEndpoint('http://[::1]:9000')).toBe(true);
    expect(isLocalEndpoint('http://localhost')).toBe(true);
    expect(isLocalEndpoint('https://s3.amazonaws.com')).toBe(false);
  });
});
