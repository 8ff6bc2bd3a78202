// `swm sync pull <id> [path]`: flags → PullOptions, resolve the target, run the pull verb, render progress and the summary.
import { resolveTarget } from '../../config/resolve.js';
import type { PullOptions } from '../../verbs/types.js';
import { cittyArgs, DRY_RUN_OPTION, FORCE_OPTION, OUTPUT_OPTIONS, TARGET_OPTIONS, type OptionSpec } from '../options.js';
import { runTransfer } from '../transfer-run.js';
import { flag, parseSyncArgs, type SyncCommand } from '../sync-args.js';

const COMMAND = 'swm sync pull';

/** PULL_OPTIONS are the flags `swm sync pull` accepts. */
export const PULL_OPTIONS: OptionSpec[] = [
  ...TARGET_OPTIONS,
  FORCE_OPTION,
  DRY_RUN_OPTION,
  { name: 'raw', type: 'boolean', description: 'Write every remote file, overwriting without asking; no state' },
  { name: 'tar', type: 'boolean', description: 'Download <dest>.tar and extract it as it streams' },
  ...OUTPUT_OPTIONS,
];

/** pullCommand is `swm sync pull`. */
export const pullCommand: SyncCommand = {
  def: { meta: { name: 'pull', description: 'Pull workspace from storage to the workspace' }, args: cittyArgs(PULL_OPTIONS) },
  options: PULL_OPTIONS,
  async run(rawArgs) {
    const { values, target: input, output } = parseSyncArgs(COMMAND, rawArgs, PULL_OPTIONS);
    const options: PullOptions = { raw: flag(values, 'raw'), tar: flag(values, 'tar') };
    const target = await resolveTarget(input);
    // loaded only now: the verb and rxjs are most of swm's startup cost, and --help needs neither
    const { pull } = await import('../../verbs/pull.js');
    return runTransfer('pull', target, { values, output }, (ctx) => pull(ctx, options));
  },
};
