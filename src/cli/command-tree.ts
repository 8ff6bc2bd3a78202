// The command tree `swm` → `sync` → push|pull|watch|auto|status, loaded lazily, and the help texts rendered from it (citty).
import { readFileSync } from 'node:fs';
import type { CommandDef } from 'citty';
import type { SyncCommand } from './sync-args.js';

/**
 * SYNC_COMMANDS loads each `swm sync <verb>` on demand, so `--help` and one verb never load the others (or the AWS SDK).
 * Command definitions are plain CommandDef objects; citty itself is loaded only to render `swm sync [<verb>] --help`.
 */
export const SYNC_COMMANDS: Record<string, () => Promise<SyncCommand>> = {
  push: async () => (await import('./commands/push.js')).pushCommand,
  pull: async () => (await import('./commands/pull.js')).pullCommand,
  watch: async () => (await import('./commands/watch.js')).watchCommand,
  auto: async () => (await import('./commands/auto.js')).autoCommand,
  status: async () => (await import('./commands/status.js')).statusCommand,
};

/** swmVersion reads the version from the package.json beside dist/. */
export function swmVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** syncGroup is the citty definition of `swm sync`, whose subcommands resolve lazily. */
function syncGroup(): CommandDef {
  const subCommands = Object.fromEntries(Object.entries(SYNC_COMMANDS).map(([name, load]) => [name, async () => (await load()).def]));
  return { meta: { name: 'sync', description: 'Sync a workspace folder with a bucket' }, subCommands };
}

/** rootHelp is the text of `swm --help`. */
export function rootHelp(): string {
  return [
    `swm ${swmVersion()}: sync a workspace folder with object storage (S3 and compatibles, or a local file: bucket)`,
    '',
    'USAGE',
    '  swm sync push   <id> [path]   Push workspace to storage',
    '  swm sync pull   <id> [path]   Pull workspace from storage to the workspace',
    '  swm sync watch  <id> [path]   Start/stop the filesystem watcher',
    '  swm sync auto   <id> [path]   Start/stop the background auto-sync daemon',
    '  swm sync status <id> [path]   Show sync status',
    '',
    'OPTIONS',
    '  -h, --help   Show help; `swm sync <command> --help` lists a command\'s options',
    '  --version    Print the version',
    '',
    'Buckets: s3:NAME, r2:NAME, gcs:NAME, b2:NAME, minio:NAME, a provider named in the config, or file:/folder',
    '         (default: file:$XDG_DATA_HOME/swm/buckets/default).',
    'Config:  $SWM_CONFIG, else $XDG_CONFIG_HOME/swm/config.json, else ~/.config/swm/config.json.',
    'Environment: SWM_BUCKET, SWM_DEST, SWM_CONFIG; AWS_ENDPOINT_URL, AWS_PROFILE and the usual AWS credential variables.',
    'Exit codes: 0 done, 1 failed, 2 bad usage or input, 3 conflicts, 4 refused for safety.',
  ].join('\n');
}

/** syncHelp is the text of `swm sync --help`. */
export async function syncHelp(): Promise<string> {
  const { renderUsage } = await import('citty');
  return renderUsage(syncGroup(), { meta: { name: 'swm', version: swmVersion() } });
}

/** commandHelp is the text of `swm sync <verb> --help`. */
export async function commandHelp(command: SyncCommand): Promise<string> {
  const { renderUsage } = await import('citty');
  return renderUsage(command.def, { meta: { name: 'swm sync', version: swmVersion() } });
}
