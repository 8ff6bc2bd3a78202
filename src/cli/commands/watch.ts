// `swm sync watch <id> [path]`: start the background watcher of a workspace, or stop it with --stop.
import { resolveTarget } from '../../config/resolve.js';
import { cittyArgs, OUTPUT_OPTIONS, TARGET_OPTIONS, type OptionSpec } from '../options.js';
import { flag, parseSyncArgs, type SyncCommand } from '../sync-args.js';

const COMMAND = 'swm sync watch';

/** WATCH_OPTIONS are the flags `swm sync watch` accepts. */
export const WATCH_OPTIONS: OptionSpec[] = [
  ...TARGET_OPTIONS,
  { name: 'stop', type: 'boolean', description: 'Stop the watcher of this workspace' },
  ...OUTPUT_OPTIONS,
];

/** watchCommand is `swm sync watch`. */
export const watchCommand: SyncCommand = {
  def: { meta: { name: 'watch', description: 'Start/stop the filesystem watcher' }, args: cittyArgs(WATCH_OPTIONS) },
  options: WATCH_OPTIONS,
  async run(rawArgs) {
    const { values, target: input, output } = parseSyncArgs(COMMAND, rawArgs, WATCH_OPTIONS);
    const target = await resolveTarget(input);
    const { watchStart, watchStop } = await import('../../verbs/watch.js');
    if (flag(values, 'stop')) {
      const { wasRunning } = await watchStop(target);
      if (output.json) output.jsonLine({ type: 'watch', id: target.id, action: 'stop', wasRunning });
      else output.line(wasRunning ? `watcher of ${target.id} stopped` : `no watcher was running for ${target.id}: nothing to stop`);
      return 0;
    }
    const { alreadyRunning, pid } = await watchStart(target);
    if (output.json) output.jsonLine({ type: 'watch', id: target.id, action: 'start', alreadyRunning, pid });
    else {
      output.line(
        alreadyRunning
          ? `watcher of ${target.id} is already running (pid ${pid}): nothing to do`
          : `watcher of ${target.id} started (pid ${pid}), journaling changes under ${target.workspace}`,
      );
    }
    return 0;
  },
};
