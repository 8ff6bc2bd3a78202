// What every `swm sync <verb>` shares: the command shape, strict parsing of `<id> [path]` plus target and output flags.
import type { CommandDef } from 'citty';
import type { TargetInput } from '../config/resolve.js';
import { usageError } from '../errors.js';
import { parseCommandOptions, syncPositionals, type OptionSpec } from './options.js';
import { Output } from './output.js';

/** SyncCommand is one `swm sync <verb>`: a citty definition (meta and args, for help) and a runner returning the exit code. */
export interface SyncCommand {
  def: CommandDef;
  options: OptionSpec[];
  run(rawArgs: string[]): Promise<number>;
}

/** SyncArgs is a strictly parsed sync command line. */
export interface SyncArgs {
  /** flag values by long name. */
  values: Record<string, string | boolean | string[] | undefined>;
  /** input for resolveTarget (id, path, -b, -d, -x). */
  target: TargetInput;
  output: Output;
}

/** parseSyncArgs parses a sync command line; every problem is a usage error (exit 2) naming the command. */
export function parseSyncArgs(command: string, rawArgs: string[], specs: OptionSpec[]): SyncArgs {
  const { values, positionals } = parseCommandOptions(command, rawArgs, specs);
  const { id, path } = syncPositionals(command, positionals);
  if (values.quiet === true && values.verbose === true) throw usageError('-q/--quiet and -v/--verbose contradict each other: give one');
  const target: TargetInput = { id, excludes: (values.exclude as string[] | undefined) ?? [] };
  if (path !== undefined) target.path = path;
  if (typeof values.bucket === 'string') target.bucket = values.bucket;
  if (typeof values.dest === 'string') target.dest = values.dest;
  const output = new Output({ json: values.json === true, quiet: values.quiet === true, verbose: values.verbose === true });
  return { values, target, output };
}

/** flag reads a boolean flag from parsed values. */
export function flag(values: SyncArgs['values'], name: string): boolean {
  return values[name] === true;
}
