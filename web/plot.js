// A trend plot of numeric results over time, drawn as SVG by hand: the
// reference range shaded, the values joined, points outside the range
// marked. Text in the SVG goes in as text nodes like everywhere else.

import { s, newId } from './dom.js';
import { fmtNumber, fmtDay } from './fmt.js';

const W = 640;
const H = 240;
const M = { l: 56, r: 16, t: 14, b: 34 };

/** About n round tick values covering [lo, hi]. */
function ticks(lo, hi, n) {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((x) => x >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out;
}

/**
 * points: [{t (ms), v (number), date (FHIR text), abnormal}], sorted by t.
 * range: {low, high} (either may be null) or null. Returns an <svg>.
 */
export function trendPlot({ title, unit, points, range }) {
  const titleId = newId('plot-title');
  const descId = newId('plot-desc');
  const vals = points.map((p) => p.v);
  const low = range && range.low !== null ? range.low : null;
  const high = range && range.high !== null ? range.high : null;
  let y0 = Math.min(...vals, ...(low !== null ? [low] : []));
  let y1 = Math.max(...vals, ...(high !== null ? [high] : []));
  const pad = (y1 - y0) * 0.1 || Math.abs(y1) * 0.1 || 1;
  y0 -= pad;
  y1 += pad;
  let t0 = points[0].t;
  let t1 = points[points.length - 1].t;
  if (t1 === t0) {
    t0 -= 86400000;
    t1 += 86400000;
  }
  const x = (t) => M.l + ((t - t0) / (t1 - t0)) * (W - M.l - M.r);
  const y = (v) => H - M.b - ((v - y0) / (y1 - y0)) * (H - M.t - M.b);
  const f1 = (n) => n.toFixed(1);

  const last = points[points.length - 1];
  const desc = `${points.length} result${points.length === 1 ? '' : 's'} ` +
    `from ${fmtDay(points[0].date)} to ${fmtDay(last.date)}; latest ` +
    `${fmtNumber(last.v)} ${unit}` + (low !== null || high !== null
    ? `; reference range ${low !== null ? fmtNumber(low) : '…'}–` +
      `${high !== null ? fmtNumber(high) : '…'} ${unit}` : '') + '.';

  const svg = s('svg', { class: 'trend', viewBox: `0 0 ${W} ${H}`,
    role: 'img', 'aria-labelledby': `${titleId} ${descId}` },
  s('title', { id: titleId }, title),
  s('desc', { id: descId }, desc));

  if (low !== null || high !== null) {
    const top = y(high !== null ? high : y1);
    const bottom = y(low !== null ? low : y0);
    svg.append(s('rect', { class: 'refband', x: M.l, y: f1(top),
      width: W - M.l - M.r, height: f1(Math.max(0, bottom - top)) }));
  }
  for (const v of ticks(y0, y1, 5)) {
    svg.append(s('line', { class: 'grid', x1: M.l, x2: W - M.r, y1: f1(y(v)),
      y2: f1(y(v)) }), s('text', { class: 'tick', x: M.l - 6, y: f1(y(v) + 4),
      'text-anchor': 'end' }, fmtNumber(Number(v.toPrecision(6)))));
  }
  const xt = points.length <= 4 ? points.map((p) => p.t)
    : [0, 1, 2, 3].map((i) => t0 + ((t1 - t0) * i) / 3);
  xt.forEach((t, i) => {
    // The first and last labels keep inside the plot.
    let anchor = 'middle';
    if (xt.length > 1 && i === 0) anchor = 'start';
    else if (xt.length > 1 && i === xt.length - 1) anchor = 'end';
    svg.append(s('text', { class: 'tick', x: f1(x(t)), y: H - M.b + 18,
      'text-anchor': anchor }, fmtDay(new Date(t).toISOString())));
  });
  svg.append(s('line', { class: 'axis', x1: M.l, x2: M.l, y1: M.t,
    y2: H - M.b }), s('line', { class: 'axis', x1: M.l, x2: W - M.r,
    y1: H - M.b, y2: H - M.b }));
  svg.append(s('text', { class: 'unit', x: 4, y: M.t + 4 }, unit));
  svg.append(s('polyline', { class: 'series', fill: 'none',
    points: points.map((p) => `${f1(x(p.t))},${f1(y(p.v))}`).join(' ') }));
  for (const p of points) {
    svg.append(s('circle', { class: p.abnormal ? 'pt abnormal' : 'pt',
      cx: f1(x(p.t)), cy: f1(y(p.v)), r: p.abnormal ? 4.5 : 3.5 },
    s('title', null, `${fmtDay(p.date)}: ${fmtNumber(p.v)} ${unit}` +
      (p.abnormal ? ' (outside the reference range or flagged)' : ''))));
  }
  return svg;
}
