// Entry of the detached watcher process: `node dist/watch/watcher-process.js <workspace> <json options>`, started by
// `swm sync watch` (verbs/watch.ts). Logs to `.swm/watcher.log`; SIGTERM/SIGINT stop it cleanly and remove watcher.json.
import { WorkspaceWatcher, type WatcherOptions } from './watcher.js';
import { logLine } from '../daemon/log.js';

async function main(): Promise<number> {
  const [workspace, json] = process.argv.slice(2);
  if (!workspace || !json) {
    process.stderr.write('usage: watcher-process.js <workspace> <json options>\n');
    return 2;
  }
  const options = JSON.parse(json) as WatcherOptions;
  const w = new WorkspaceWatcher(workspace, options);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      void w.stop(`${signal} received`).then(() => process.exit(0));
    });
  }
  process.on('SIGHUP', () => { /* detached: a closing terminal is not a reason to stop */ });
  process.on('uncaughtException', (e) => {
    logLine(`fatal: ${e.stack ?? e.message}`);
    void w.stop(`fatal error: ${e.message}`, 1).then(() => process.exit(1));
  });
  return w.run();
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    logLine(`fatal: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
