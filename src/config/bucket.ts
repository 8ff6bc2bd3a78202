// Parsing `provider:bucket` specs (file:, s3:, r2:, gcs:, b2:, minio:, custom config providers) into a BucketSpec with a resolved endpoint.
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { usageError } from '../errors.js';
import { expandHome, isHttpUrl, PROVIDER_NAME_PATTERN } from './file.js';
import type { BucketSpec, ProviderConfig } from './types.js';

/** BUILTIN_PROVIDERS are the provider names swm knows without a config file (plus `file`). */
export const BUILTIN_PROVIDERS = ['s3', 'r2', 'gcs', 'b2', 'minio'] as const;

/** Built-in defaults per provider: an endpoint (gcs only), whether one is required, the signing region. */
const BUILTIN_DEFAULTS: Record<string, { endpoint?: string; needsEndpoint: boolean; region?: string; pathStyle?: boolean }> = {
  s3: { needsEndpoint: false },
  r2: { needsEndpoint: true, region: 'auto' },
  gcs: { endpoint: 'https://storage.googleapis.com', needsEndpoint: false, region: 'auto' },
  b2: { needsEndpoint: true },
  minio: { needsEndpoint: true, pathStyle: true },
};

/** BucketSpecContext is what parsing needs besides the text: env (AWS_ENDPOINT_URL…), cwd for relative file: paths, the config path for messages. */
export interface BucketSpecContext {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** config file path named in "add providers.x.endpoint to …" hints. */
  configPath?: string;
}

/** S3_BUCKET_NAME accepts S3, GCS, R2, B2 and MinIO names: 3–222 of letters, digits, dot, dash, underscore, starting and ending alphanumeric. */
const S3_BUCKET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{1,220}[A-Za-z0-9]$/;

/**
 * parseBucketSpec turns "provider:bucket" into a BucketSpec. `file:` paths are made absolute (relative to cwd, "~" expanded);
 * S3-compatible providers get their endpoint from the config entry, then the provider's built-in default (gcs), then
 * AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. Every malformed spec is a usage error (exit 2).
 */
export function parseBucketSpec(text: string, providers: Record<string, ProviderConfig>, context: BucketSpecContext = {}): BucketSpec {
  const env = context.env ?? process.env;
  const cwd = context.cwd ?? process.cwd();
  const colon = text.indexOf(':');
  if (colon < 0) {
    throw usageError(`bucket "${text}" is not provider:bucket: use e.g. s3:${text || 'my-bucket'} or file:/path/to/folder`);
  }
  const provider = text.slice(0, colon);
  const rest = text.slice(colon + 1);

  if (provider === 'file') {
    if (rest.length === 0) throw usageError(`bucket "${text}" has no folder: use file:/path/to/folder`);
    if (rest.includes('\0')) throw usageError(`bucket "${text}" contains a NUL byte: use a plain folder path`);
    const path = resolve(cwd, expandHome(rest, env));
    return { kind: 'file', provider: 'file', path, text: `file:${path}` };
  }

  const known = knownProviders(providers);
  if (!PROVIDER_NAME_PATTERN.test(provider) || !known.includes(provider)) {
    const where = context.configPath ? ` to ${context.configPath}` : ' to the config file';
    throw usageError(
      `unknown provider "${provider}" in bucket "${text}": known providers are ${known.join(', ')}`,
      `add providers.${PROVIDER_NAME_PATTERN.test(provider) ? provider : '<name>'} with an endpoint${where} for another S3-compatible service`,
    );
  }
  if (rest.length === 0) throw usageError(`bucket "${text}" has no bucket name: use ${provider}:<bucket-name>`);
  if (rest.includes('/')) {
    throw usageError(`bucket "${text}" names a path, not just a bucket: use ${provider}:${rest.split('/')[0]} and put the key prefix in -d/--dest`);
  }
  if (!S3_BUCKET_NAME.test(rest) || rest.includes('..')) {
    throw usageError(
      `bucket name "${rest}" (in "${text}") is not a valid bucket name: use 3–222 letters, digits, dots, dashes or underscores, starting and ending with a letter or digit`,
    );
  }
  return { kind: 's3', provider, bucket: rest, text: `${provider}:${rest}`, s3: providerSettings(provider, providers[provider] ?? {}, env, context.configPath) };
}

/** knownProviders lists every provider a bucket spec may name: file, the built-ins, then custom config providers. */
export function knownProviders(providers: Record<string, ProviderConfig>): string[] {
  const custom = Object.keys(providers).filter((p) => !(BUILTIN_PROVIDERS as readonly string[]).includes(p) && p !== 'file').sort();
  return ['file', ...BUILTIN_PROVIDERS, ...custom];
}

/** providerSettings merges a config provider entry with built-in defaults and AWS_ENDPOINT_URL(_S3), and picks path-style addressing. */
function providerSettings(provider: string, configured: ProviderConfig, env: NodeJS.ProcessEnv, configPath?: string): ProviderConfig {
  const builtin = BUILTIN_DEFAULTS[provider];
  const envEndpoint = endpointFromEnv(env);
  const endpoint = configured.endpoint ?? builtin?.endpoint ?? envEndpoint;
  if (!endpoint && builtin?.needsEndpoint) {
    throw usageError(
      `provider ${provider} needs an endpoint: add providers.${provider}.endpoint to ${configPath ?? 'the config file'} or set AWS_ENDPOINT_URL`,
    );
  }
  const settings: ProviderConfig = {};
  if (endpoint) settings.endpoint = endpoint;
  const region = configured.region ?? builtin?.region;
  if (region) settings.region = region;
  settings.pathStyle = configured.pathStyle ?? builtin?.pathStyle ?? (endpoint ? isLocalEndpoint(endpoint) : false);
  if (configured.profile) settings.profile = configured.profile;
  return settings;
}

/** endpointFromEnv reads AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, rejecting values that are not http(s) URLs. */
function endpointFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  for (const name of ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'] as const) {
    const value = env[name];
    if (!value) continue;
    if (!isHttpUrl(value)) throw usageError(`${name}="${value}" is not an http(s) URL: set it like http://127.0.0.1:9000 or unset it`);
    return value;
  }
  return undefined;
}

/** isLocalEndpoint is true when the endpoint's host is an IP address or localhost, where virtual-hosted bucket names cannot resolve. */
export function isLocalEndpoint(endpoint: string): boolean {
  let host: string;
  try {
    host = new URL(endpoint).hostname;
  } catch {
    return false;
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return isIP(host) !== 0 || host === 'localhost' || host.endsWith('.localhost');
}
