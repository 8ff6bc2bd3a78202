// `swm sync status <id> [path]`: show workspace, bucket, last push/pull, watcher, daemon, pending changes (and with --remote, what pull would do).
import { resolveTarget } from '../../config/resolve.js';
import { cittyArgs, OUTPUT_OPTIONS, TARGET_OPTIONS, type OptionSpec } from '../options.js';
import { statusLines } from '../render-status.js';
import { flag, parseSyncArgs, type SyncCommand } from '../sync-args.js';

const COMMAND = 'swm sync status';

/** STATUS_OPTIONS are the flags `swm sync status` accepts. */
export const STATUS_OPTIONS: OptionSpec[] = [
  ...TARGET_OPTIONS,
  { name: 'remote', type: 'boolean', description: 'Also list what a pull would change, and conflicts' },
  ...OUTPUT_OPTIONS,
];

/** statusCommand is `swm sync status`. */
export const statusCommand: SyncCommand = {
  def: { meta: { name: 'status', description: 'Show sync status' }, args: cittyArgs(STATUS_OPTIONS) },
  options: STATUS_OPTIONS,
  async run(rawArgs) {
    const { values, target: input, output } = parseSyncArgs(COMMAND, rawArgs, STATUS_OPTIONS);
    const target = await resolveTarget(input);
    const { status } = await import('../../verbs/status.js');
    const report = await status(target, { remote: flag(values, 'remote') });
    if (output.json) output.jsonLine(report);
    else for (const line of statusLines(report)) output.line(line);
    return 0;
  },
};
