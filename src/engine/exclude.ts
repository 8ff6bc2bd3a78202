// Exclude rules: this version's defaults + user globs (-x, config) + `<workspace>/.swmignore`, in gitignore syntax; and their fingerprint.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type Ignore from 'ignore';
import { errnoCode, usageError } from '../errors.js';
import { SWM_DIR, TEMP_INFIX } from '../state/paths.js';

// `ignore` is CommonJS: required rather than imported, because Node's ESM import of a CommonJS package first sets up
// its CommonJS export lexer, ~15 ms of CPU on every command that builds exclude rules (status loads no other CommonJS).
const ignore = createRequire(import.meta.url)('ignore') as typeof Ignore;

/** DEFAULT_EXCLUDES are applied by this swm version to every workspace; a change here drifts every watcher's fingerprint. */
export const DEFAULT_EXCLUDES: readonly string[] = [`/${SWM_DIR}/`, `*${TEMP_INFIX}*`];

export const SWMIGNORE = '.swmignore';

/** ExcludeRules decides whether a workspace-relative path is excluded. `isDir` matters for patterns ending in '/'. */
export interface ExcludeRules {
  /** every pattern applied, in order: defaults, user, .swmignore lines. */
  readonly patterns: readonly string[];
  /** sha256 of the patterns (16 hex digits): what the watcher records and `auto` compares. */
  readonly fingerprint: string;
  excludes(relPath: string, isDir: boolean): boolean;
}

/** readSwmignore returns the non-empty, non-comment lines of `<workspace>/.swmignore`, or [] when it does not exist. */
export function readSwmignore(workspace: string): string[] {
  let text: string;
  try {
    text = readFileSync(join(workspace, SWMIGNORE), 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return [];
    throw e;
  }
  return text.split(/\r?\n/).filter((l) => l.trim().length > 0 && !l.startsWith('#'));
}

/** buildExcludeRules compiles defaults + user excludes + .swmignore of the workspace. */
export function buildExcludeRules(workspace: string, userExcludes: readonly string[]): ExcludeRules {
  return compileExcludeRules([...DEFAULT_EXCLUDES, ...userExcludes, ...readSwmignore(workspace)]);
}

/** compileExcludeRules compiles a list of gitignore-style patterns. Throws a usage error for an invalid pattern. */
export function compileExcludeRules(patterns: readonly string[]): ExcludeRules {
  const compile = () => {
    const matcher = ignore({ allowRelativePaths: false });
    for (const p of patterns) {
      try {
        matcher.add(p);
      } catch (e) {
        throw usageError(`invalid exclude pattern ${JSON.stringify(p)}: ${(e as Error).message}`);
      }
    }
    return matcher;
  };
  let matcher = compile();
  let asked = 0;
  const fingerprint = createHash('sha256').update(patterns.join('\n')).digest('hex').slice(0, 16);
  return {
    patterns,
    fingerprint,
    excludes(relPath: string, isDir: boolean): boolean {
      // `ignore` caches the answer for every path it is asked about (~140 bytes each, for the life of the matcher): a
      // fresh matcher now and then keeps a scan of a big tree from holding one per file
      if (++asked > MATCHER_CACHE_PATHS) {
        matcher = compile();
        asked = 0;
      }
      return matcher.ignores(isDir ? `${relPath}/` : relPath);
    },
  };
}

/** MATCHER_CACHE_PATHS bounds how many answers one `ignore` matcher accumulates before it is replaced by a fresh one. */
const MATCHER_CACHE_PATHS = 4096;
