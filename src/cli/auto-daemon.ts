// Entry of the detached auto-sync daemon: `node dist/cli/auto-daemon.js <workspace> <json {target, interval}>`, started by
// `swm sync auto` (verbs/auto.ts). Logs to `.swm/daemon.log`; SIGTERM/SIGINT abort the running cycle cleanly and remove daemon.json.
import { setMaxListeners } from 'node:events';
import { runAutoLoop, type DaemonArgs } from '../verbs/auto.js';
import { logLine } from '../daemon/log.js';
import { removePidRecord } from '../daemon/pidfile.js';
import { swmPaths } from '../state/paths.js';

async function main(): Promise<number> {
  const [workspace, json] = process.argv.slice(2);
  if (!workspace || !json) {
    process.stderr.write('usage: auto-daemon.js <workspace> <json {target, interval}>\n');
    return 2;
  }
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const args = JSON.parse(json) as DaemonArgs;
  const controller = new AbortController();
  // every request of a cycle's push listens on this one signal (64 and more at once): no MaxListenersExceededWarning in the log
  setMaxListeners(0, controller.signal);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (!controller.signal.aborted) logLine(`${signal} received: stopping`);
      controller.abort();
    });
  }
  process.on('SIGHUP', () => { /* detached: a closing terminal is not a reason to stop */ });
  process.on('uncaughtException', (e) => {
    logLine(`fatal: ${e.stack ?? e.message}`);
    removePidRecord(swmPaths(workspace).daemon, process.pid); // no stale pid file
    process.exit(1);
  });
  return runAutoLoop({ ...args.target, workspace }, { interval: args.interval }, controller.signal);
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    logLine(`fatal: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
