// Resolving an id to a SyncTarget (SPEC §3): command-line flags > environment (SWM_BUCKET, SWM_DEST, SWM_CONFIG) > config file > defaults.
import { join, resolve } from 'node:path';
import { isSwmError, SwmError, usageError } from '../errors.js';
import { defaultDest, normalizeDest } from '../keys.js';
import { parseBucketSpec } from './bucket.js';
import { dataHome, expandHome, ID_PATTERN, loadConfig, type LoadedConfig } from './file.js';
import type { SyncTarget } from './types.js';

/** DEFAULT_INTERVAL_SECONDS is the auto-sync period when neither -i nor the config sets one. */
export const DEFAULT_INTERVAL_SECONDS = 60;

/** TargetInput is what the command line supplies; every field but id and excludes is optional. */
export interface TargetInput {
  id: string;
  /** the [path] argument. */
  path?: string;
  /** -b/--bucket. */
  bucket?: string;
  /** -d/--dest. */
  dest?: string;
  /** -x/--exclude, in order. */
  excludes: string[];
  /** -i/--interval in seconds. */
  interval?: number;
}

/** defaultBucketText is the embedded default bucket: file:$XDG_DATA_HOME/swm/buckets/default. */
export function defaultBucketText(env: NodeJS.ProcessEnv): string {
  return `file:${join(dataHome(env), 'swm', 'buckets', 'default')}`;
}

/** validateId throws a usage error (exit 2) unless the id matches [A-Za-z0-9._:-]+. */
export function validateId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw usageError(`invalid workspace id "${id}": use letters, digits and . _ : - (e.g. runpod:abc123)`);
  }
}

/** resolveTarget combines flags, environment, config file and defaults into the SyncTarget a verb works on. */
export async function resolveTarget(
  input: TargetInput,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): Promise<SyncTarget> {
  validateId(input.id);
  const loaded = await loadConfig(env, cwd);
  return resolveWithConfig(input, loaded, env, cwd);
}

/** resolveWithConfig is resolveTarget with the config already loaded (tests and callers that resolve several ids). */
export function resolveWithConfig(input: TargetInput, loaded: LoadedConfig, env: NodeJS.ProcessEnv, cwd: string): SyncTarget {
  validateId(input.id);
  const { config } = loaded;
  const ws = config.workspaces[input.id] ?? {};
  const configKey = (field: string) => `workspaces.${input.id}.${field} in ${loaded.path}`;

  const workspace =
    input.path !== undefined ? resolvePathArgument(input.path, env, cwd) : ws.path !== undefined ? ws.path : resolve(cwd);

  const bucketSource: [string, string] | undefined =
    input.bucket !== undefined
      ? [input.bucket, '-b/--bucket']
      : env.SWM_BUCKET
        ? [env.SWM_BUCKET, 'SWM_BUCKET']
        : ws.bucket !== undefined
          ? [ws.bucket, configKey('bucket')]
          : config.defaultBucket !== undefined
            ? [config.defaultBucket, `defaultBucket in ${loaded.path}`]
            : undefined;
  const [bucketText, bucketFrom] = bucketSource ?? [defaultBucketText(env), 'the default bucket'];
  let bucket;
  try {
    bucket = parseBucketSpec(bucketText, config.providers, { env, cwd, configPath: loaded.path });
  } catch (e) {
    // name where a bad spec came from unless the user just typed it
    if (isSwmError(e) && bucketFrom !== '-b/--bucket') throw new SwmError(e.exitCode, `${e.message} (from ${bucketFrom})`, { hint: e.hint });
    throw e;
  }

  const destSource: [string, string] | undefined =
    input.dest !== undefined
      ? [input.dest, '-d/--dest']
      : env.SWM_DEST !== undefined && env.SWM_DEST !== ''
        ? [env.SWM_DEST, 'SWM_DEST']
        : ws.dest !== undefined
          ? [ws.dest, configKey('dest')]
          : undefined;
  const dest = destSource ? checkedDest(destSource[0], destSource[1]) : checkedDest(defaultDest(input.id), `id "${input.id}"`, true);

  const interval = input.interval ?? ws.interval ?? DEFAULT_INTERVAL_SECONDS;
  if (!Number.isSafeInteger(interval) || interval < 1) throw usageError(`interval ${interval} is not a positive whole number of seconds`);

  return {
    id: input.id,
    workspace,
    bucket,
    dest,
    excludes: [...(ws.exclude ?? []), ...input.excludes],
    interval,
  };
}

/** resolvePathArgument makes the [path] argument absolute ("~" expanded, relative to cwd). */
function resolvePathArgument(path: string, env: NodeJS.ProcessEnv, cwd: string): string {
  if (path.length === 0) throw usageError('the workspace path argument is empty: give a folder or leave it out to use the current folder');
  if (path.includes('\0')) throw usageError('the workspace path argument contains a NUL byte');
  return resolve(cwd, expandHome(path, env));
}

/** checkedDest normalizes a dest and refuses "." / ".." segments, which would escape the prefix (or a file: bucket's folder). */
function checkedDest(raw: string, from: string, fromId = false): string {
  const dest = normalizeDest(raw);
  const segments = dest.split('/').filter((s) => s.length > 0);
  if (raw.includes('\0') || raw.includes('\\') || segments.some((s) => s === '.' || s === '..')) {
    throw usageError(
      fromId
        ? `${from} cannot be used as a key prefix (it has "." or ".." segments): pass -d/--dest PREFIX`
        : `dest "${raw}" (from ${from}) contains ".", ".." or a backslash: use a plain key prefix like team/run1`,
    );
  }
  return dest;
}
