// Pipeline plumbing: backpressure between pull-based sources (async iterables) and RxJS stages, the key-ordered marches, and the RxJS pieces the verbs use.
// NOTES.md: `from(asyncIterable)` + `mergeMap` drains the whole source into a buffer; the windows here bound it.
// The RxJS pieces the verbs use come through here, from the package's public entry point only.
import { Observable, tap, type MonoTypeOperatorFunction } from 'rxjs';

export { Observable, tap };
export { Subject, mergeMap, defaultIfEmpty, lastValueFrom } from 'rxjs';

/** InFlightWindow counts items between a source and the end of its pipeline; the source waits while it is full. */
export class InFlightWindow {
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  constructor(readonly size: number) {}

  async acquire(): Promise<void> {
    while (this.inFlight >= this.size) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.inFlight++;
  }

  /** tryAcquire takes a place if one is free right now, without waiting. */
  tryAcquire(): boolean {
    if (this.inFlight >= this.size) return false;
    this.inFlight++;
    return true;
  }

  release(): void {
    this.inFlight--;
    this.waiters.shift()?.();
  }
}

/**
 * fromBatchesWindowed turns an async iterable of batches into an Observable, pulling the next batch only when the
 * window has room. `pick` looks at each item first: it may settle it on the spot (an unchanged path: nothing to wait
 * for) and return undefined, or return what goes down the pipeline. Settled items never enter the pipeline, so a run
 * over a big unchanged tree costs a function call per path instead of a trip through every stage. Each emitted value
 * must reach `releaseWindow(window)` at the end of the pipeline.
 */
export function fromBatchesWindowed<T, U>(source: AsyncIterable<T[]>, window: InFlightWindow, pick: (item: T) => U | undefined): Observable<U> {
  return new Observable<U>((subscriber) => {
    const iterator = source[Symbol.asyncIterator]();
    let stopped = false;
    void (async () => {
      try {
        for (;;) {
          const next = await iterator.next();
          if (stopped) return;
          if (next.done) {
            subscriber.complete();
            return;
          }
          for (const item of next.value) {
            const picked = pick(item);
            if (picked === undefined) continue;
            if (!window.tryAcquire()) await window.acquire();
            if (stopped) return;
            subscriber.next(picked);
          }
        }
      } catch (e) {
        subscriber.error(e);
      }
    })();
    return () => {
      stopped = true;
      void iterator.return?.(undefined)?.catch(() => {});
    };
  });
}

/** releaseWindow is the last stage of a windowed pipeline: each item that arrives frees one place. */
export function releaseWindow<T>(window: InFlightWindow): MonoTypeOperatorFunction<T> {
  return tap<T>(() => window.release());
}

export { marchBatches, marchSorted, type Paired } from './march.js';
