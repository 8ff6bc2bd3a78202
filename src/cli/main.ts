#!/usr/bin/env node
// The `swm` executable: routes `swm sync <verb>`, prints help and version, and turns every error into one line and an exit code (SPEC §7, §8).
import { ExitCode, isSwmError, usageError } from '../errors.js';
import { commandHelp, rootHelp, SYNC_COMMANDS, swmVersion, syncHelp } from './command-tree.js';
import { EXIT_ON_SIGNAL, interruptedBy } from './shutdown.js';

// The SDK warns on every run under Node 20; swm supports Node 20 on purpose, so the warning is noise (NOTES.md).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const SYNC_VERBS = Object.keys(SYNC_COMMANDS);

/** run routes argv to a command and returns its exit code; errors propagate to the caller. */
async function run(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(rootHelp() + '\n');
    return ExitCode.usage;
  }
  if (first === '--help' || first === '-h') return printHelp(rootHelp());
  if (first === '--version' || first === '-V') {
    process.stdout.write(swmVersion() + '\n');
    return ExitCode.ok;
  }
  if (first.startsWith('-')) throw usageError(`unknown option ${first} for \`swm\` (see swm --help)`);
  if (first !== 'sync') {
    if (SYNC_VERBS.includes(first)) throw usageError(`unknown command "${first}": did you mean \`swm sync ${first}\`?`);
    throw usageError(`unknown command "${first}": the commands are \`swm sync ${SYNC_VERBS.join('|')}\` (see swm --help)`);
  }

  const [verb, ...verbArgs] = rest;
  if (verb === undefined) {
    process.stderr.write(stripAnsiUnlessTty(await syncHelp()) + '\n');
    return ExitCode.usage;
  }
  if (verb === '--help' || verb === '-h') return printHelp(await syncHelp());
  if (verb.startsWith('-')) throw usageError(`unknown option ${verb} for \`swm sync\` (see swm sync --help)`);
  const load = SYNC_COMMANDS[verb];
  if (!load) throw usageError(`unknown command "${verb}" for \`swm sync\`: use one of ${SYNC_VERBS.join(', ')}`);
  const command = await load();
  if (beforeTerminator(verbArgs).some((a) => a === '--help' || a === '-h')) return printHelp(await commandHelp(command));
  return command.run(verbArgs);
}

function printHelp(text: string): number {
  process.stdout.write(stripAnsiUnlessTty(text) + '\n');
  return ExitCode.ok;
}

/** stripAnsiUnlessTty drops citty's colours when stdout is not a terminal (pipes, CI logs), and the padding citty leaves at line ends. */
function stripAnsiUnlessTty(text: string): string {
  // eslint-disable-next-line no-control-regex
  const plain = process.stdout.isTTY ? text : text.replace(/\x1b\[[0-9;]*m/g, '');
  return plain.replace(/[ \t]+$/gm, '');
}

function beforeTerminator(args: string[]): string[] {
  const i = args.indexOf('--');
  return i < 0 ? args : args.slice(0, i);
}

/** oneLine keeps a message to a single line. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** reportError prints an error as `swm: <message>` (stack only with -v; a JSON error line too with --json) and returns the exit code. */
function reportError(error: unknown, argv: string[]): number {
  const flags = beforeTerminator(argv);
  const verbose = flags.includes('-v') || flags.includes('--verbose');
  const json = flags.includes('--json');
  const signal = interruptedBy();
  let code: number;
  let message: string;
  let hint: string | undefined;
  if (signal) {
    code = EXIT_ON_SIGNAL[signal];
    message = `interrupted by ${signal}: stopped before finishing; run the command again to complete it`;
  } else if (isSwmError(error)) {
    code = error.exitCode;
    message = oneLine(error.message);
    hint = error.hint === undefined ? undefined : oneLine(error.hint);
  } else {
    code = ExitCode.failed;
    const text = error instanceof Error ? error.message : String(error);
    message = `${oneLine(text) || 'unexpected error'}${verbose ? '' : ' (run again with -v for details)'}`;
  }
  process.stderr.write(`swm: ${message}${hint ? `; ${hint}` : ''}\n`);
  if (verbose && error instanceof Error) {
    process.stderr.write(`${error.stack ?? error.message}\n`);
    let cause = error.cause;
    while (cause instanceof Error) {
      process.stderr.write(`caused by: ${cause.stack ?? cause.message}\n`);
      cause = cause.cause;
    }
  }
  if (json) process.stdout.write(JSON.stringify({ type: 'error', message, ...(hint ? { hint } : {}), exitCode: code }) + '\n');
  return code;
}

/** exitAfterFlush ends the process once stdout and stderr have taken everything written to them. */
async function exitAfterFlush(code: number): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.write('', () => resolve()))));
  process.exit(code);
}

const argv = process.argv.slice(2);
process.on('unhandledRejection', (reason) => {
  void exitAfterFlush(reportError(reason, argv));
});
let exitCode: number;
try {
  exitCode = await run(argv);
  // a verb that stopped early on SIGINT/SIGTERM may still return a summary: the run did not finish, say so
  if (interruptedBy() !== undefined) exitCode = reportError(new Error('interrupted'), argv);
} catch (error) {
  exitCode = reportError(error, argv);
}
await exitAfterFlush(exitCode);
