// `swm sync push <id> [path]`: flags → PushOptions, resolve the target, run the push verb, render progress and the summary.
import { resolveTarget } from '../../config/resolve.js';
import { usageError } from '../../errors.js';
import type { PushOptions } from '../../verbs/types.js';
import { cittyArgs, DRY_RUN_OPTION, FORCE_OPTION, OUTPUT_OPTIONS, positiveInteger, TARGET_OPTIONS, type OptionSpec } from '../options.js';
import { runTransfer } from '../transfer-run.js';
import { flag, parseSyncArgs, type SyncCommand } from '../sync-args.js';

const COMMAND = 'swm sync push';

/** PUSH_OPTIONS are the flags `swm sync push` accepts. */
export const PUSH_OPTIONS: OptionSpec[] = [
  ...TARGET_OPTIONS,
  FORCE_OPTION,
  DRY_RUN_OPTION,
  { name: 'raw', type: 'boolean', description: 'One-off upload of every local file: no state read or written' },
  { name: 'skip-pull', type: 'boolean', description: "Don't look at the remote first" },
  { name: 'delete', type: 'boolean', description: 'Mirror local deletions recorded by the watcher (needs a running watcher)' },
  { name: 'max-delete', type: 'string', valueHint: 'n', description: 'With --delete: abort before deleting more than N objects' },
  { name: 'tar', type: 'boolean', description: 'Send the workspace as one tar object, <dest>.tar' },
  ...OUTPUT_OPTIONS,
];

/** pushCommand is `swm sync push`. */
export const pushCommand: SyncCommand = {
  def: { meta: { name: 'push', description: 'Push workspace to storage' }, args: cittyArgs(PUSH_OPTIONS) },
  options: PUSH_OPTIONS,
  async run(rawArgs) {
    const { values, target: input, output } = parseSyncArgs(COMMAND, rawArgs, PUSH_OPTIONS);
    const options: PushOptions = {
      raw: flag(values, 'raw'),
      skipPull: flag(values, 'skip-pull'),
      delete: flag(values, 'delete'),
      tar: flag(values, 'tar'),
    };
    if (typeof values['max-delete'] === 'string') {
      options.maxDelete = positiveInteger(values['max-delete'], '--max-delete');
      if (!options.delete) throw usageError('--max-delete only limits --delete: add --delete or drop --max-delete');
    }
    const target = await resolveTarget(input);
    // loaded only now: the verb and rxjs are most of swm's startup cost, and --help needs neither
    const { push } = await import('../../verbs/push.js');
    return runTransfer('push', target, { values, output }, (ctx) => push(ctx, options));
  },
};
