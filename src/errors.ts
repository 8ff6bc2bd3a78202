// The one error type of swm: a user-facing one-line message plus the exit code the CLI returns (SPEC §7).

/** ExitCode lists the process exit codes promised by SPEC §7. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  conflicts: 3,
  refused: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** SwmError is thrown for every failure a user should read: `message` is one line naming what is wrong and what to do. */
export class SwmError extends Error {
  readonly exitCode: ExitCode;
  /** hint is an optional second clause ("run `swm sync watch demo` first"); rendered after the message. */
  readonly hint?: string;
  constructor(exitCode: ExitCode, message: string, options?: { cause?: unknown; hint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SwmError';
    this.exitCode = exitCode;
    this.hint = options?.hint;
  }
}

/** usageError is bad usage or input (exit 2). */
export const usageError = (message: string, hint?: string) => new SwmError(ExitCode.usage, message, { hint });
/** failure is an I/O, network or server failure (exit 1). */
export const failure = (message: string, cause?: unknown, hint?: string) => new SwmError(ExitCode.failed, message, { cause, hint });
/** refusal is a safety refusal (exit 4). */
export const refusal = (message: string, hint?: string) => new SwmError(ExitCode.refused, message, { hint });

/** isSwmError narrows unknown errors. */
export function isSwmError(e: unknown): e is SwmError {
  return e instanceof SwmError;
}

/** errnoCode returns the Node errno code (ENOENT, EACCES…) of an error, if any. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}
