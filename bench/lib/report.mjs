// Turns the benchmark's samples into its results: medians, rates and ratios, as a markdown report and a JSON record.

/** median of numbers (mean of the middle two for an even count); null for none. */
export function median(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * summarize computes, per case row, the median wall time over successful runs, the rate, the peak RSS
 * (largest over runs) and the ratios to the best peer and to the ceiling. rows: [{ caseId, label, unit, amount, tool, kind, missing, runs: [{ok, wallS, rssKiB, error}] }].
 */
export function summarize(rows) {
  for (const r of rows) {
    const ok = r.runs.filter((x) => x.ok);
    r.okRuns = ok.length;
    r.medianS = ok.length && ok.length === r.runs.length ? median(ok.map((x) => x.wallS)) : null;
    r.failed = !r.missing && (r.runs.length === 0 || ok.length < r.runs.length);
    r.error = r.failed ? (r.runs.find((x) => !x.ok)?.error ?? 'no successful run') : null;
    const rss = ok.map((x) => x.rssKiB).filter((x) => x !== null && x !== undefined);
    r.peakRssKiB = rss.length ? Math.max(...rss) : null;
    r.minS = ok.length ? Math.min(...ok.map((x) => x.wallS)) : null;
    r.maxS = ok.length ? Math.max(...ok.map((x) => x.wallS)) : null;
    r.rate = r.medianS && r.amount ? r.amount / r.medianS : null;
  }
  const byCase = new Map();
  for (const r of rows) byCase.set(r.caseId, [...(byCase.get(r.caseId) ?? []), r]);
  for (const group of byCase.values()) {
    const peers = group.filter((r) => r.kind === 'peer' && r.medianS !== null);
    const best = peers.length ? peers.reduce((a, b) => (b.medianS < a.medianS ? b : a)) : null;
    const ceiling = group.find((r) => r.kind === 'ceiling' && r.medianS !== null) ?? null;
    for (const r of group) {
      r.bestPeer = best?.tool ?? null;
      r.vsBestPeer = best && r.medianS !== null ? r.medianS / best.medianS : null;
      r.vsCeiling = ceiling && r.medianS !== null ? r.medianS / ceiling.medianS : null;
    }
  }
  return rows;
}

const fmtS = (s) => (s === null ? '—' : s < 1 ? s.toFixed(3) : s < 100 ? s.toFixed(2) : s.toFixed(0));
const fmtRate = (r) => {
  if (r.rate === null) return '—';
  const v = r.rate;
  const n = v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1);
  return `${n} ${r.unit === 'MiB' ? 'MiB/s' : 'files/s'}`;
};
const fmtRss = (k) => (k === null ? '—' : `${(k / 1024).toFixed(0)} MiB`);
const fmtRatio = (x) => (x === null ? '—' : `${x.toFixed(2)}×`);
const cell = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** markdownTable renders the summarized rows as the results table. */
export function markdownTable(rows) {
  const out = [
    '| case | tool | median wall s | files/s or MiB/s | peak RSS | vs best peer | vs ceiling | runs (min–max s) |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  ];
  let last = null;
  for (const r of rows) {
    const label = r.caseId === last ? '' : cell(r.label);
    last = r.caseId;
    if (r.missing) {
      out.push(`| ${label} | ${r.tool} | missing: ${cell(r.missing)} | | | | | |`);
      continue;
    }
    if (r.failed) {
      out.push(`| ${label} | ${r.tool} | **FAILED**: ${cell(r.error)} | | ${fmtRss(r.peakRssKiB)} | | | ${r.okRuns}/${r.runs.length} ok |`);
      continue;
    }
    const name = r.kind === 'swm' ? `**${r.tool}**` : r.tool;
    const spread = r.runs.length > 1 ? ` (${fmtS(r.minS)}–${fmtS(r.maxS)})` : '';
    out.push(`| ${label} | ${name} | ${fmtS(r.medianS)} | ${fmtRate(r)} | ${fmtRss(r.peakRssKiB)} | ${fmtRatio(r.vsBestPeer)} | ${fmtRatio(r.vsCeiling)} | ${r.runs.length}${spread} |`);
  }
  return out.join('\n');
}

/** rssScalingTable compares each tool's peak RSS on the small no-op (b) with the scale no-op (g). */
export function rssScalingTable(rows, smallFiles, scaleFiles) {
  const b = new Map(rows.filter((r) => r.caseId === 'b').map((r) => [r.tool, r]));
  const g = rows.filter((r) => r.caseId === 'g');
  if (!b.size || !g.length) return '';
  const out = [
    `| tool | peak RSS, no-op ${smallFiles.toLocaleString('en-US')} files (b) | peak RSS, no-op ${scaleFiles.toLocaleString('en-US')} files (g) | growth |`,
    '|---|---:|---:|---:|',
  ];
  for (const r of g) {
    const small = b.get(r.tool)?.peakRssKiB ?? null;
    const big = r.peakRssKiB;
    out.push(`| ${r.tool} | ${fmtRss(small)} | ${fmtRss(big)} | ${small && big ? `${(big / small).toFixed(2)}×` : '—'} |`);
  }
  return out.join('\n');
}
