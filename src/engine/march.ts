// Lock-step walks of two key-ordered async streams (rclone's march). No RxJS here: `swm sync status` uses them, and
// loading RxJS (~250 CommonJS files) would double its start-up.

/** Paired is one key seen in two key-ordered streams: on the left, the right, or both. */
export interface Paired<L, R> {
  key: string;
  left?: L;
  right?: R;
}

/**
 * marchBatches is marchSorted over streams of batches, yielding batches of pairs: the lock-step walk runs synchronously
 * within the batches at hand and awaits only when one side's batch is used up. Throws if either side is out of order.
 */
export async function* marchBatches<L, R>(
  left: AsyncIterable<L[]>,
  right: AsyncIterable<R[]>,
  leftKey: (l: L) => string,
  rightKey: (r: R) => string,
  compare: (a: string, b: string) => number,
): AsyncGenerator<Paired<L, R>[]> {
  const li = left[Symbol.asyncIterator]();
  const ri = right[Symbol.asyncIterator]();
  let lb: L[] = [];
  let rb: R[] = [];
  let lAt = 0;
  let rAt = 0;
  let lDone = false;
  let rDone = false;
  let lastL: string | undefined;
  let lastR: string | undefined;
  const outOfOrder = (side: string, key: string) => new Error(`${side} stream out of key order at ${JSON.stringify(key)}`);
  try {
    for (;;) {
      // refill a side whose batch is used up (skipping empty batches)
      while (!lDone && lAt >= lb.length) {
        const n = await li.next();
        if (n.done) lDone = true;
        else [lb, lAt] = [n.value, 0];
      }
      while (!rDone && rAt >= rb.length) {
        const n = await ri.next();
        if (n.done) rDone = true;
        else [rb, rAt] = [n.value, 0];
      }
      if (lDone && rDone) return;
      const out: Paired<L, R>[] = [];
      // walk while both sides have items at hand (or one side is finished for good)
      while ((lAt < lb.length || lDone) && (rAt < rb.length || rDone) && !(lDone && rDone)) {
        const l = lAt < lb.length ? lb[lAt]! : undefined;
        const r = rAt < rb.length ? rb[rAt]! : undefined;
        const lk = l === undefined ? undefined : leftKey(l);
        const rk = r === undefined ? undefined : rightKey(r);
        const c = lk === undefined ? 1 : rk === undefined ? -1 : compare(lk, rk);
        if (c < 0) {
          if (lastL !== undefined && compare(lastL, lk!) >= 0) throw outOfOrder('left', lk!);
          lastL = lk;
          out.push({ key: lk!, left: l });
          lAt++;
        } else if (c > 0) {
          if (lastR !== undefined && compare(lastR, rk!) >= 0) throw outOfOrder('right', rk!);
          lastR = rk;
          out.push({ key: rk!, right: r });
          rAt++;
        } else {
          if (lastL !== undefined && compare(lastL, lk!) >= 0) throw outOfOrder('left', lk!);
          lastL = lastR = lk;
          out.push({ key: lk!, left: l, right: r });
          lAt++;
          rAt++;
        }
        if (lAt >= lb.length && !lDone) break;
        if (rAt >= rb.length && !rDone) break;
      }
      if (out.length > 0) yield out;
    }
  } finally {
    await li.return?.(undefined);
    await ri.return?.(undefined);
  }
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
