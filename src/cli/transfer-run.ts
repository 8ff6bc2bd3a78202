// Running push or pull from the CLI: progress stream, renderer, Ctrl-C handling and the exit code, shared by both commands.
import type { SyncTarget } from '../config/types.js';
import type { TransferSummary, VerbContext } from '../verbs/types.js';
import { renderTransfer } from './render-transfer.js';
import { abortOnSignals, shutdown } from './shutdown.js';
import { flag, type SyncArgs } from './sync-args.js';

/**
 * runTransfer builds the verb context from the flags (-f, --dry-run), renders the verb's progress and summary, and returns
 * the exit code. `run` calls the verb, loaded lazily by the caller: rxjs and the verbs are most of swm's start-up cost.
 */
export async function runTransfer(
  verb: 'push' | 'pull',
  target: SyncTarget,
  args: Pick<SyncArgs, 'values' | 'output'>,
  run: (ctx: VerbContext) => Promise<TransferSummary>,
): Promise<number> {
  const { createProgress } = await import('../engine/progress.js');
  const progress = createProgress();
  const dryRun = flag(args.values, 'dry-run');
  const renderer = renderTransfer(progress, args.output, { verb, id: target.id, dryRun });
  abortOnSignals();
  try {
    return renderer.finish(await run({ target, progress, force: flag(args.values, 'force'), dryRun, signal: shutdown.signal }));
  } catch (e) {
    renderer.abandon();
    throw e;
  } finally {
    progress.complete();
  }
}
