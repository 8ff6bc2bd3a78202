// The swm config file: where it lives (SWM_CONFIG, XDG_CONFIG_HOME, ~/.config), reading it, and strict validation of its shape.
//
// Schema (JSON; every key optional, unknown keys are an error so that typos do not pass silently):
//
//   {
//     "$schema":       string                      ignored (lets editors attach a schema)
//     "defaultBucket": "provider:bucket"           bucket for ids with no bucket of their own
//     "workspaces": {
//       "<id>": {                                  id as on the command line, [A-Za-z0-9._:-]+
//         "path":     string                       workspace folder; "~" expanded, relative to the config file's folder
//         "bucket":   "provider:bucket"
//         "dest":     string                       key prefix inside the bucket (default: the id with ":" → "/")
//         "exclude":  [string, ...]                gitignore-style globs, added before -x flags
//         "interval": positive integer             auto-sync period in seconds (default 60)
//       }
//     },
//     "providers": {
//       "<name>": {                                [a-z][a-z0-9-]*, not "file"; built-ins s3, r2, gcs, b2, minio may be configured too
//         "endpoint":  "http(s)://host[:port]"     S3-compatible endpoint
//         "region":    string                      signing region
//         "pathStyle": boolean                     path-style addressing (default: true for IP/localhost endpoints and minio)
//         "profile":   string                      AWS shared-config profile to take credentials from
//       }
//     }
//   }
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { errnoCode, usageError } from '../errors.js';
import type { ProviderConfig } from './types.js';

/** WorkspaceConfig is one entry of `workspaces` in the config file (paths already made absolute). */
export interface WorkspaceConfig {
  path?: string;
  bucket?: string;
  dest?: string;
  exclude?: string[];
  interval?: number;
}

/** SwmConfig is the validated content of a config file. */
export interface SwmConfig {
  defaultBucket?: string;
  workspaces: Record<string, WorkspaceConfig>;
  providers: Record<string, ProviderConfig>;
}

/** LoadedConfig is a config plus where it came from; `path` is set even when no file exists there (for messages). */
export interface LoadedConfig {
  /** the file that was read, or the default location that would be read. */
  path: string;
  /** true when the file existed and was read. */
  found: boolean;
  config: SwmConfig;
}

/** ID_PATTERN is the syntax of a workspace id (SPEC §2). */
export const ID_PATTERN = /^[A-Za-z0-9._:-]+$/;
/** PROVIDER_NAME_PATTERN is the syntax of a provider name in a bucket spec or the config file. */
export const PROVIDER_NAME_PATTERN = /^[a-z][a-z0-9-]*$/;

/** homeDir is $HOME from the given environment, else the OS's idea of it. */
export function homeDir(env: NodeJS.ProcessEnv): string {
  return env.HOME && isAbsolute(env.HOME) ? env.HOME : homedir();
}

/** expandHome turns "~" and "~/x" into paths under the home folder; other paths are returned unchanged. */
export function expandHome(path: string, env: NodeJS.ProcessEnv): string {
  if (path === '~') return homeDir(env);
  if (path.startsWith('~/')) return join(homeDir(env), path.slice(2));
  return path;
}

/** xdgDir reads an XDG base-directory variable; relative values are ignored, as the XDG spec requires. */
function xdgDir(env: NodeJS.ProcessEnv, name: 'XDG_CONFIG_HOME' | 'XDG_DATA_HOME', fallback: string): string {
  const value = env[name];
  return value && isAbsolute(value) ? value : join(homeDir(env), fallback);
}

/** dataHome is $XDG_DATA_HOME, else ~/.local/share. */
export function dataHome(env: NodeJS.ProcessEnv): string {
  return xdgDir(env, 'XDG_DATA_HOME', '.local/share');
}

/** configFilePath says which config file applies: $SWM_CONFIG (explicit), else $XDG_CONFIG_HOME/swm/config.json, else ~/.config/swm/config.json. */
export function configFilePath(env: NodeJS.ProcessEnv, cwd: string): { path: string; explicit: boolean } {
  if (env.SWM_CONFIG) return { path: resolve(cwd, expandHome(env.SWM_CONFIG, env)), explicit: true };
  return { path: join(xdgDir(env, 'XDG_CONFIG_HOME', '.config'), 'swm', 'config.json'), explicit: false };
}

/** loadConfig reads and validates the config file; a missing default file is an empty config, a missing $SWM_CONFIG is an error (exit 2). */
export async function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Promise<LoadedConfig> {
  const { path, explicit } = configFilePath(env, cwd);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT' && !explicit) return { path, found: false, config: { workspaces: {}, providers: {} } };
    if (code === 'ENOENT') throw usageError(`config file ${path} (from SWM_CONFIG) does not exist: create it or unset SWM_CONFIG`);
    if (code === 'EISDIR') throw usageError(`config file ${path} is a folder: point ${explicit ? 'SWM_CONFIG' : 'it'} at a JSON file`);
    throw usageError(`cannot read config file ${path} (${code ?? String(e)}): fix its permissions or set SWM_CONFIG to another file`);
  }
  return { path, found: true, config: parseConfig(text, path, env) };
}

/** parseConfig validates config JSON text strictly; every problem is exit 2 naming the file and the key. */
export function parseConfig(text: string, path: string, env: NodeJS.ProcessEnv = process.env): SwmConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw usageError(`config file ${path} is not valid JSON (${(e as Error).message}): fix the syntax`);
  }
  const bad = (key: string, problem: string) => usageError(`config file ${path}: ${key} ${problem}`);
  const top = asObject(raw, '(top level)', bad);
  checkKeys(top, ['$schema', 'defaultBucket', 'workspaces', 'providers'], '', bad);

  const config: SwmConfig = { workspaces: {}, providers: {} };
  if (top.$schema !== undefined) asString(top.$schema, '$schema', bad);
  if (top.defaultBucket !== undefined) config.defaultBucket = asBucketText(top.defaultBucket, 'defaultBucket', bad);

  if (top.workspaces !== undefined) {
    const workspaces = asObject(top.workspaces, 'workspaces', bad);
    for (const [id, value] of Object.entries(workspaces)) {
      const key = `workspaces.${id}`;
      if (!ID_PATTERN.test(id)) throw bad(key, 'is not a valid id: use letters, digits and . _ : -');
      const entry = asObject(value, key, bad);
      checkKeys(entry, ['path', 'bucket', 'dest', 'exclude', 'interval'], key + '.', bad);
      const ws: WorkspaceConfig = {};
      if (entry.path !== undefined) {
        const p = asString(entry.path, `${key}.path`, bad);
        if (p.length === 0) throw bad(`${key}.path`, 'is empty: give the workspace folder');
        ws.path = resolve(dirname(path), expandHome(p, env));
      }
      if (entry.bucket !== undefined) ws.bucket = asBucketText(entry.bucket, `${key}.bucket`, bad);
      if (entry.dest !== undefined) ws.dest = asString(entry.dest, `${key}.dest`, bad);
      if (entry.exclude !== undefined) {
        if (!Array.isArray(entry.exclude)) throw bad(`${key}.exclude`, 'must be an array of glob strings');
        ws.exclude = entry.exclude.map((g, i) => asString(g, `${key}.exclude[${i}]`, bad));
      }
      if (entry.interval !== undefined) {
        if (typeof entry.interval !== 'number' || !Number.isSafeInteger(entry.interval) || entry.interval < 1) {
          throw bad(`${key}.interval`, 'must be a positive whole number of seconds');
        }
        ws.interval = entry.interval;
      }
      config.workspaces[id] = ws;
    }
  }

  if (top.providers !== undefined) {
    const providers = asObject(top.providers, 'providers', bad);
    for (const [name, value] of Object.entries(providers)) {
      const key = `providers.${name}`;
      if (name === 'file') throw bad(key, 'cannot be configured: file: is the embedded folder bucket');
      if (!PROVIDER_NAME_PATTERN.test(name)) throw bad(key, 'is not a valid provider name: use lowercase letters, digits and -, starting with a letter');
      const entry = asObject(value, key, bad);
      checkKeys(entry, ['endpoint', 'region', 'pathStyle', 'profile'], key + '.', bad);
      const provider: ProviderConfig = {};
      if (entry.endpoint !== undefined) {
        const endpoint = asString(entry.endpoint, `${key}.endpoint`, bad);
        if (!isHttpUrl(endpoint)) throw bad(`${key}.endpoint`, `"${endpoint}" is not an http(s) URL: use e.g. "https://<account>.r2.cloudflarestorage.com"`);
        provider.endpoint = endpoint;
      }
      if (entry.region !== undefined) provider.region = asNonEmptyString(entry.region, `${key}.region`, bad);
      if (entry.pathStyle !== undefined) {
        if (typeof entry.pathStyle !== 'boolean') throw bad(`${key}.pathStyle`, 'must be true or false');
        provider.pathStyle = entry.pathStyle;
      }
      if (entry.profile !== undefined) provider.profile = asNonEmptyString(entry.profile, `${key}.profile`, bad);
      config.providers[name] = provider;
    }
  }
  return config;
}

/** isHttpUrl is true for a parseable http:// or https:// URL. */
export function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname.length > 0;
  } catch {
    return false;
  }
}

type Bad = (key: string, problem: string) => Error;

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function asObject(value: unknown, key: string, bad: Bad): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(key, `must be an object, not ${typeName(value)}`);
  return value as Record<string, unknown>;
}

function asString(value: unknown, key: string, bad: Bad): string {
  if (typeof value !== 'string') throw bad(key, `must be a string, not ${typeName(value)}`);
  return value;
}

function asNonEmptyString(value: unknown, key: string, bad: Bad): string {
  const s = asString(value, key, bad);
  if (s.length === 0) throw bad(key, 'is empty');
  return s;
}

/** asBucketText checks only the outline "provider:bucket"; providers and endpoints are checked when the bucket is used. */
function asBucketText(value: unknown, key: string, bad: Bad): string {
  const s = asString(value, key, bad);
  const colon = s.indexOf(':');
  if (colon <= 0 || colon === s.length - 1) throw bad(key, `"${s}" is not provider:bucket: use e.g. "s3:my-bucket" or "file:/path/to/folder"`);
  return s;
}

function checkKeys(obj: Record<string, unknown>, known: string[], prefix: string, bad: Bad): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) throw bad(`${prefix}${k}`, `is not a known key (known here: ${known.filter((n) => n !== '$schema').join(', ')})`);
  }
}
