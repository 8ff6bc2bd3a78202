// Backpressure between pull-based sources (async iterables) and RxJS stages: at most N items in flight through a pipeline.
// NOTES.md: `from(asyncIterable)` + `mergeMap` drains the whole source into a buffer; this bounds it.
import { Observable, tap, type MonoTypeOperatorFunction } from 'rxjs';

/** InFlightWindow counts items between a source and the end of its pipeline; the source waits while it is full. */
export class InFlightWindow {
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  constructor(readonly size: number) {}

  async acquire(): Promise<void> {
    while (this.inFlight >= this.size) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.inFlight++;
  }

  release(): void {
    this.inFlight--;
    this.waiters.shift()?.();
  }
}

/**
 * fromWindowed turns an async iterable into an Observable that pulls the next item only when the window has room.
 * Every emitted item must reach `releaseWindow(window)` at the end of the pipeline (stages map, they never drop).
 */
export function fromWindowed<T>(source: AsyncIterable<T>, window: InFlightWindow): Observable<T> {
  return new Observable<T>((subscriber) => {
    const iterator = source[Symbol.asyncIterator]();
    let stopped = false;
    void (async () => {
      try {
        for (;;) {
          await window.acquire();
          if (stopped) return;
          const next = await iterator.next();
          if (stopped) return;
          if (next.done) {
            window.release();
            subscriber.complete();
            return;
          }
          subscriber.next(next.value);
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

/** Paired is one key seen in two key-ordered streams: on the left, the right, or both. */
export interface Paired<L, R> {
  key: string;
  left?: L;
  right?: R;
}

/**
 * marchSorted walks two key-ordered async streams in lock step (rclone's march): each key once, with what each side has.
 * Memory stays constant whatever the sizes. Throws if either side is out of order.
 */
export async function* marchSorted<L, R>(
  left: AsyncIterable<L>,
  right: AsyncIterable<R>,
  leftKey: (l: L) => string,
  rightKey: (r: R) => string,
  compare: (a: string, b: string) => number,
): AsyncGenerator<Paired<L, R>> {
  const li = left[Symbol.asyncIterator]();
  const ri = right[Symbol.asyncIterator]();
  let l = await li.next();
  let r = await ri.next();
  let lastL: string | undefined;
  let lastR: string | undefined;
  const check = (last: string | undefined, key: string, side: string) => {
    if (last !== undefined && compare(last, key) >= 0) throw new Error(`${side} stream out of key order at ${JSON.stringify(key)}`);
    return key;
  };
  try {
    while (!l.done || !r.done) {
      if (r.done || (!l.done && compare(leftKey(l.value), rightKey(r.value)) < 0)) {
        const key = (lastL = check(lastL, leftKey(l.value as L), 'left'));
        yield { key, left: l.value as L };
        l = await li.next();
      } else if (l.done || compare(leftKey(l.value), rightKey(r.value)) > 0) {
        const key = (lastR = check(lastR, rightKey(r.value as R), 'right'));
        yield { key, right: r.value as R };
        r = await ri.next();
      } else {
        const key = (lastL = lastR = check(lastL, leftKey(l.value), 'left'));
        yield { key, left: l.value, right: r.value };
        l = await li.next();
        r = await ri.next();
      }
    }
  } finally {
    await li.return?.(undefined);
    await ri.return?.(undefined);
  }
}
