// `swm sync auto <id> [path]`: start/restart the auto-sync daemon (-i seconds), show it (--status) or stop it (--stop).
import { resolveTarget } from '../../config/resolve.js';
import { usageError } from '../../errors.js';
import { cittyArgs, OUTPUT_OPTIONS, positiveInteger, TARGET_OPTIONS, type OptionSpec } from '../options.js';
import { autoStatusLines } from '../render-status.js';
import { flag, parseSyncArgs, type SyncCommand } from '../sync-args.js';

const COMMAND = 'swm sync auto';

/** AUTO_OPTIONS are the flags `swm sync auto` accepts. */
export const AUTO_OPTIONS: OptionSpec[] = [
  ...TARGET_OPTIONS,
  { name: 'interval', short: 'i', type: 'string', valueHint: 'seconds', description: 'Seconds between sync cycles (default 60, or the config)' },
  { name: 'force', short: 'f', type: 'boolean', description: 'Start even if no push or pull has succeeded yet' },
  { name: 'status', type: 'boolean', description: 'Show the daemon state and the tail of its log' },
  { name: 'stop', type: 'boolean', description: 'Stop the daemon' },
  ...OUTPUT_OPTIONS,
];

/** autoCommand is `swm sync auto`. */
export const autoCommand: SyncCommand = {
  def: { meta: { name: 'auto', description: 'Start/stop the background auto-sync daemon' }, args: cittyArgs(AUTO_OPTIONS) },
  options: AUTO_OPTIONS,
  async run(rawArgs) {
    const { values, target: input, output } = parseSyncArgs(COMMAND, rawArgs, AUTO_OPTIONS);
    const stop = flag(values, 'stop');
    const showStatus = flag(values, 'status');
    const force = flag(values, 'force');
    if (typeof values.interval === 'string') input.interval = positiveInteger(values.interval, '-i/--interval');
    if (stop && showStatus) throw usageError('--status and --stop contradict each other: give one');
    if ((stop || showStatus) && (input.interval !== undefined || force)) {
      throw usageError(`${input.interval !== undefined ? '-i/--interval' : '-f/--force'} only applies when starting the daemon: drop it, or drop ${stop ? '--stop' : '--status'}`);
    }
    const target = await resolveTarget(input);
    const { autoStart, autoStatus, autoStop } = await import('../../verbs/auto.js');
    if (stop) {
      const { wasRunning } = await autoStop(target);
      if (output.json) output.jsonLine({ type: 'auto', id: target.id, action: 'stop', wasRunning });
      else output.line(wasRunning ? `auto-sync of ${target.id} stopped` : `no auto-sync daemon was running for ${target.id}: nothing to stop`);
      return 0;
    }
    if (showStatus) {
      const report = await autoStatus(target);
      if (output.json) output.jsonLine({ id: target.id, ...report });
      else for (const line of autoStatusLines(target.id, report)) output.line(line);
      return 0;
    }
    const started = await autoStart(target, { interval: target.interval, force });
    const { restarted, pid } = started;
    // the verb may also say the daemon already ran with these very options (a no-op)
    const alreadyRunning = 'alreadyRunning' in started && started.alreadyRunning === true;
    if (output.json) output.jsonLine({ type: 'auto', id: target.id, action: 'start', restarted, alreadyRunning, pid, interval: target.interval });
    else if (alreadyRunning) output.line(`auto-sync of ${target.id} is already running with these options (pid ${pid}): nothing to do`);
    else output.line(`auto-sync of ${target.id} ${restarted ? 'restarted' : 'started'} (pid ${pid}), every ${target.interval}s to ${target.bucket.text}${target.dest ? ` under ${target.dest}` : ''}`);
    return 0;
  },
};
