// SIGINT/SIGTERM during a transfer: the first signal aborts the verb (it cleans up and rejects), a second one exits at once.
import { setMaxListeners } from 'node:events';

/** shutdown is aborted by the first SIGINT/SIGTERM once handlers are installed; its signal goes into VerbContext. */
export const shutdown = new AbortController();
// every request and stream in flight listens on this one signal (64 and more at once): no MaxListenersExceededWarning
setMaxListeners(0, shutdown.signal);

/** EXIT_ON_SIGNAL are the conventional exit codes of a process stopped by a signal (128 + signal number). */
export const EXIT_ON_SIGNAL: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };

let received: 'SIGINT' | 'SIGTERM' | undefined;

/** interruptedBy says which signal aborted the run, if any. */
export function interruptedBy(): 'SIGINT' | 'SIGTERM' | undefined {
  return received;
}

/**
 * abortOnSignals makes SIGINT/SIGTERM abort `shutdown` instead of killing the process, so a transfer can remove its temp
 * files and lock. Only commands that pass the signal to a verb install it; the others keep Node's default (exit at once).
 */
export function abortOnSignals(): void {
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    if (received !== undefined) {
      process.exit(EXIT_ON_SIGNAL[signal]);
    }
    received = signal;
    shutdown.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
