// Option tables of the sync commands and their strict parsing (node:util parseArgs): unknown flags, missing values and bad numbers are exit 2.
import { parseArgs } from 'node:util';
import type { ArgsDef } from 'citty';
import { usageError } from '../errors.js';

/** OptionSpec describes one flag once; it feeds both the strict parser and citty's help renderer. */
export interface OptionSpec {
  /** long name in kebab-case, as typed: "dry-run". */
  name: string;
  short?: string;
  type: 'boolean' | 'string';
  /** the flag may be given several times (values kept in order). */
  multiple?: boolean;
  /** placeholder shown in help: --bucket=<provider:bucket>. */
  valueHint?: string;
  description: string;
}

/** HELP_OPTION is listed in every command's help; main handles it before parsing. */
export const HELP_OPTION: OptionSpec = { name: 'help', short: 'h', type: 'boolean', description: 'Show this help' };

/** TARGET_OPTIONS say where the workspace syncs to (every sync command). */
export const TARGET_OPTIONS: OptionSpec[] = [
  { name: 'bucket', short: 'b', type: 'string', valueHint: 'provider:bucket', description: 'Bucket: s3:NAME, r2:NAME, gcs:NAME, b2:NAME, minio:NAME, file:/folder, or a config provider' },
  { name: 'dest', short: 'd', type: 'string', valueHint: 'prefix', description: 'Key prefix in the bucket (default: the id with ":" as "/")' },
  { name: 'exclude', short: 'x', type: 'string', multiple: true, valueHint: 'glob', description: 'Exclude a gitignore-style glob (repeatable; .swmignore is read too)' },
];

/** OUTPUT_OPTIONS choose how results are printed (every sync command). */
export const OUTPUT_OPTIONS: OptionSpec[] = [
  { name: 'json', type: 'boolean', description: 'Machine output: one JSON object per line' },
  { name: 'quiet', short: 'q', type: 'boolean', description: 'Print only errors and conflicts' },
  { name: 'verbose', short: 'v', type: 'boolean', description: 'Print every file, and stack traces on errors' },
  HELP_OPTION,
];

/** FORCE_OPTION is -f for push and pull (take over the running transfer). */
export const FORCE_OPTION: OptionSpec = { name: 'force', short: 'f', type: 'boolean', description: 'Kill the running transfer of this workspace and start fresh' };
/** DRY_RUN_OPTION is --dry-run for push and pull. */
export const DRY_RUN_OPTION: OptionSpec = { name: 'dry-run', type: 'boolean', description: 'Print the plan, change nothing' };

/** ParsedOptions is the strict parse of one command line: values by long name, positionals in order. */
export interface ParsedOptions {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** flagLabel renders "-b/--bucket" or "--dry-run". */
export function flagLabel(spec: OptionSpec): string {
  return spec.short ? `-${spec.short}/--${spec.name}` : `--${spec.name}`;
}

/**
 * parseCommandOptions parses rawArgs strictly against `specs`. `command` is the full command ("swm sync push"), used in messages.
 * Unknown options, values on boolean flags, missing values and repeated single-value flags are usage errors (exit 2).
 */
export function parseCommandOptions(command: string, rawArgs: string[], specs: OptionSpec[]): ParsedOptions {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const options = Object.fromEntries(
    specs.map((s) => [s.name, { type: s.type, ...(s.short ? { short: s.short } : {}), ...(s.multiple ? { multiple: true } : {}) }]),
  );
  const seeHelp = `(see ${command} --help)`;
  // A lenient pass with tokens first, so every problem gets a message naming the flag as typed.
  const { tokens } = parseArgs({ args: rawArgs, options, allowPositionals: true, strict: false, tokens: true });
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const spec = byName.get(token.name);
    if (!spec) throw usageError(`unknown option ${token.rawName} for \`${command}\` ${seeHelp}`);
    if (spec.type === 'boolean' && token.value !== undefined) {
      throw usageError(`option ${flagLabel(spec)} takes no value (got "${token.rawName}=${token.value}") ${seeHelp}`);
    }
    if (spec.type === 'string') {
      if (token.value === undefined || (!token.inlineValue && token.value.startsWith('-'))) {
        throw usageError(`option ${flagLabel(spec)} needs a value${spec.valueHint ? ` (${spec.valueHint})` : ''}; for a value starting with "-" write --${spec.name}=VALUE`);
      }
      if (!spec.multiple && seen.has(spec.name)) throw usageError(`option ${flagLabel(spec)} is given more than once: give it once`);
    }
    seen.add(spec.name);
  }
  try {
    const { values, positionals } = parseArgs({ args: rawArgs, options, allowPositionals: true, strict: true });
    return { values: values as ParsedOptions['values'], positionals };
  } catch (e) {
    throw usageError(`${(e as Error).message.split('\n')[0]} ${seeHelp}`);
  }
}

/** positiveInteger parses a flag value that must be a whole number ≥ 1 (exit 2 otherwise). */
export function positiveInteger(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw usageError(`${flag} "${value}" is not a positive whole number: give e.g. ${flag.split('/').pop()} 60`);
  }
  return n;
}

/** SyncPositionals are the `<id> [path]` arguments every sync command takes. */
export interface SyncPositionals {
  id: string;
  path?: string;
}

/** syncPositionals takes `<id> [path]`: a missing id or a third argument is exit 2. */
export function syncPositionals(command: string, positionals: string[]): SyncPositionals {
  const usage = `${command} <id> [path]`;
  if (positionals.length === 0) throw usageError(`missing workspace id: usage is \`${usage}\` (e.g. ${command} runpod:abc123)`);
  if (positionals.length > 2) {
    throw usageError(`unexpected argument "${positionals[2]}" for \`${command}\`: usage is \`${usage}\` (quote paths with spaces)`);
  }
  const [id, path] = positionals as [string, string | undefined];
  return path === undefined ? { id } : { id, path };
}

/** cittyArgs turns option specs into citty's ArgsDef (kebab-case names, so help shows --dry-run), with `<id> [path]` first. */
export function cittyArgs(specs: OptionSpec[]): ArgsDef {
  const args: ArgsDef = {
    id: { type: 'positional', description: 'Workspace id, e.g. runpod:abc123 or demo', required: true },
    path: {
      type: 'positional',
      description: 'Workspace folder (default: the config path for the id, else the current folder)',
      required: false,
    },
  };
  for (const spec of specs) {
    const description = spec.description;
    args[spec.name] =
      spec.type === 'boolean'
        ? { type: 'boolean', description, ...(spec.short ? { alias: [spec.short] } : {}) }
        : { type: 'string', description, ...(spec.short ? { alias: [spec.short] } : {}), ...(spec.valueHint ? { valueHint: spec.valueHint } : {}) };
  }
  return args;
}
