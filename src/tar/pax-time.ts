// Sub-second mtimes in tar pax records ("mtime=1700000000.123456"): the ustar header only holds whole seconds.

/** formatPaxTime renders epoch milliseconds as pax decimal seconds to the microsecond, or undefined when the time is whole seconds (the ustar field suffices). */
export function formatPaxTime(mtimeMs: number): string | undefined {
  if (!Number.isFinite(mtimeMs)) return undefined;
  const micros = Math.round(mtimeMs * 1000);
  if (micros % 1_000_000 === 0) return undefined;
  const negative = micros < 0;
  const abs = Math.abs(micros);
  const seconds = Math.floor(abs / 1_000_000);
  const fraction = String(abs % 1_000_000).padStart(6, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${seconds}.${fraction}`;
}

/** parsePaxTime turns a pax decimal-seconds time into epoch milliseconds, or undefined when it is not a decimal number. */
export function parsePaxTime(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^(-?)(\d{1,15})(?:\.(\d{1,9}))?$/.exec(text);
  if (!m) return undefined;
  const micros = Number(m[2]) * 1_000_000 + Number((m[3] ?? '').padEnd(6, '0').slice(0, 6));
  return ((m[1] === '-' ? -1 : 1) * micros) / 1000;
}
