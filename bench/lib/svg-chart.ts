/**
 * Small, dependency-free SVG charts for bench/report.ts: a line chart (linear or log axes, solid or
 * dashed series, optional point labels) and a horizontal bar chart.
 *
 * Hand-written rather than a charting library because the report needs four plain charts, and a
 * library such as vega would add dozens of packages to a repository others install too; the output
 * here is static SVG 1.1 with no scripts, fonts or external references, so GitHub, browsers and
 * rsvg-convert render it the same. Text uses a generic sans-serif family for that reason.
 */

export interface Point {
  readonly x: number;
  readonly y: number;
  /** Drawn next to the point, e.g. the measured value. */
  readonly label?: string;
}

export interface Series {
  readonly name: string;
  readonly points: readonly Point[];
  readonly color?: string;
  /** Dashed and without markers: for limits and ideals, as opposed to measurements. */
  readonly dashed?: boolean;
  /** Draw markers at the points (default: true unless dashed). */
  readonly markers?: boolean;
}

export interface Axis {
  readonly label: string;
  readonly scale?: 'linear' | 'log';
  /** Domain; by default from the data (linear axes start at 0). */
  readonly min?: number;
  readonly max?: number;
  /** Tick positions; by default "nice" ones for the domain. */
  readonly ticks?: readonly number[];
  readonly format?: (value: number) => string;
}

export interface LineChartSpec {
  readonly title: string;
  readonly subtitle?: string;
  readonly x: Axis;
  readonly y: Axis;
  readonly series: readonly Series[];
  readonly width?: number;
  readonly height?: number;
}

export interface Bar {
  readonly label: string;
  readonly value: number;
  readonly color?: string;
  /** Drawn after the value, e.g. "(reference)". */
  readonly note?: string;
}

export interface BarChartSpec {
  readonly title: string;
  readonly subtitle?: string;
  readonly valueAxis: Axis;
  readonly bars: readonly Bar[];
  readonly width?: number;
}

/** Colour-blind-safe (Okabe-Ito): ledgerbus blue, peer orange, limits grey. */
export const palette = {
  ledgerbus: '#0072B2',
  peer: '#E69F00',
  limit: '#666666',
  other: '#009E73',
} as const;

const fallbackColors = [palette.ledgerbus, palette.peer, palette.other, '#CC79A7', '#D55E00'];
const font = 'font-family="Helvetica, Arial, sans-serif"';

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Trims float noise so coordinates stay short and the SVG diffs stay readable. */
function n(value: number): string {
  return String(Math.round(value * 10) / 10);
}

/** Default tick label: up to 3 significant digits, thousands as "k". */
export function formatNumber(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${trim(value / 1e6)}M`;
  if (abs >= 1e4) return `${trim(value / 1e3)}k`;
  return trim(value);
}

function trim(value: number): string {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return String(Number(value.toFixed(digits)));
}

/** Ticks at 1, 2, 5 × 10^k, about `count` of them, covering [min, max]. */
export function niceLinearTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((f) => f * magnitude >= raw) ?? 10) * magnitude;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}

/** Powers of ten, plus 2× and 5× when the domain spans fewer than three decades. */
export function niceLogTicks(min: number, max: number): number[] {
  const low = Math.floor(Math.log10(min));
  const high = Math.ceil(Math.log10(max));
  const factors = Math.log10(max / min) <= 3 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = low; e <= high; e++) {
    for (const f of factors) {
      const t = f * 10 ** e;
      if (t >= min * 0.999 && t <= max * 1.001) ticks.push(Number(t.toPrecision(12)));
    }
  }
  return ticks;
}

interface Scale {
  readonly min: number;
  readonly max: number;
  readonly ticks: readonly number[];
  /** Domain value → 0..1. */
  readonly unit: (value: number) => number;
  readonly format: (value: number) => string;
}

function makeScale(axis: Axis, values: readonly number[]): Scale {
  const finite = values.filter((v) => Number.isFinite(v) && (axis.scale !== 'log' || v > 0));
  const format = axis.format ?? formatNumber;
  if (axis.scale === 'log') {
    const dataMin = Math.min(...finite);
    const dataMax = Math.max(...finite);
    // Widen to the 1-2-5 steps around the data, so every point sits between two labelled ticks.
    const lo = axis.min ?? snapDown(dataMin);
    const hi = axis.max ?? snapUp(dataMax);
    const span = Math.log10(hi) - Math.log10(lo) || 1;
    return {
      min: lo,
      max: hi,
      ticks: axis.ticks ?? niceLogTicks(lo, hi),
      unit: (v) => (Math.log10(v) - Math.log10(lo)) / span,
      format,
    };
  }
  const lo = axis.min ?? Math.min(0, ...finite);
  const dataMax = Math.max(...finite);
  const step = niceLinearTicks(lo, dataMax);
  const tickStep = step.length > 1 ? (step[1] as number) - (step[0] as number) : 1;
  // Headroom for point labels: round the top up to the next tick above the data.
  const hi = axis.max ?? Math.ceil((dataMax * 1.08) / tickStep) * tickStep;
  const span = hi - lo || 1;
  return {
    min: lo,
    max: hi,
    ticks: axis.ticks ?? niceLinearTicks(lo, hi),
    unit: (v) => (v - lo) / span,
    format,
  };
}

function snapDown(value: number): number {
  const e = 10 ** Math.floor(Math.log10(value));
  const f = [5, 2, 1].find((factor) => factor * e <= value) ?? 1;
  return f * e;
}

function snapUp(value: number): number {
  const e = 10 ** Math.floor(Math.log10(value));
  const f = [1, 2, 5, 10].find((factor) => factor * e >= value) ?? 10;
  return f * e;
}

function header(width: number, height: number, title: string, subtitle: string | undefined): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${font}>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="17" font-weight="bold" fill="#222">${escapeXml(title)}</text>`,
    ...(subtitle === undefined
      ? []
      : [`<text x="16" y="46" font-size="12" fill="#555">${escapeXml(subtitle)}</text>`]),
  ];
}

export function lineChart(spec: LineChartSpec): string {
  const width = spec.width ?? 720;
  // One legend row per series: series names are long, and rows never overflow the width.
  const legendRows = spec.series.length;
  const height = (spec.height ?? 400) + legendRows * 20;
  const margin = {
    left: 78,
    right: 24,
    top: spec.subtitle === undefined ? 48 : 64,
    bottom: 62 + legendRows * 20,
  };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const all = spec.series.flatMap((s) => s.points);
  const xs = makeScale(
    spec.x,
    all.map((p) => p.x),
  );
  const ys = makeScale(
    spec.y,
    all.map((p) => p.y),
  );
  const px = (v: number): number => margin.left + xs.unit(v) * plotW;
  const py = (v: number): number => margin.top + (1 - ys.unit(v)) * plotH;
  const out = header(width, height, spec.title, spec.subtitle);

  // Grid and ticks.
  for (const t of ys.ticks) {
    const y = py(t);
    out.push(
      `<line x1="${n(margin.left)}" y1="${n(y)}" x2="${n(margin.left + plotW)}" y2="${n(y)}" stroke="#e3e3e3"/>`,
      `<text x="${n(margin.left - 8)}" y="${n(y + 4)}" font-size="12" text-anchor="end" fill="#333">${escapeXml(ys.format(t))}</text>`,
    );
  }
  for (const t of xs.ticks) {
    const x = px(t);
    out.push(
      `<line x1="${n(x)}" y1="${n(margin.top)}" x2="${n(x)}" y2="${n(margin.top + plotH)}" stroke="#f0f0f0"/>`,
      `<line x1="${n(x)}" y1="${n(margin.top + plotH)}" x2="${n(x)}" y2="${n(margin.top + plotH + 5)}" stroke="#333"/>`,
      `<text x="${n(x)}" y="${n(margin.top + plotH + 19)}" font-size="12" text-anchor="middle" fill="#333">${escapeXml(xs.format(t))}</text>`,
    );
  }
  out.push(
    `<rect x="${n(margin.left)}" y="${n(margin.top)}" width="${n(plotW)}" height="${n(plotH)}" fill="none" stroke="#333"/>`,
    `<text x="${n(margin.left + plotW / 2)}" y="${n(margin.top + plotH + 40)}" font-size="13" text-anchor="middle" fill="#222">${escapeXml(spec.x.label)}</text>`,
    `<text transform="translate(18 ${n(margin.top + plotH / 2)}) rotate(-90)" font-size="13" text-anchor="middle" fill="#222">${escapeXml(spec.y.label)}</text>`,
  );

  // Series, then their labels on top so lines never cover text.
  const labels: string[] = [];
  spec.series.forEach((series, index) => {
    const color = series.color ?? fallbackColors[index % fallbackColors.length] ?? '#000';
    const points = series.points.filter(
      (p) =>
        Number.isFinite(p.x) &&
        Number.isFinite(p.y) &&
        (spec.x.scale !== 'log' || p.x > 0) &&
        (spec.y.scale !== 'log' || p.y > 0),
    );
    if (points.length === 0) return;
    const path = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${n(px(p.x))},${n(py(p.y))}`).join(' ');
    out.push(
      `<path d="${path}" fill="none" stroke="${color}" stroke-width="${series.dashed === true ? 2 : 2.5}"${
        series.dashed === true ? ' stroke-dasharray="7 5"' : ''
      }/>`,
    );
    if (series.markers ?? series.dashed !== true) {
      for (const p of points) {
        out.push(
          `<circle cx="${n(px(p.x))}" cy="${n(py(p.y))}" r="4" fill="${color}" stroke="#fff" stroke-width="1"/>`,
        );
      }
    }
    for (const p of points) {
      if (p.label === undefined) continue;
      // Alternate above/below by series so two series' labels at one x do not overlap.
      const dy = index % 2 === 0 ? -10 : 18;
      labels.push(
        `<text x="${n(px(p.x))}" y="${n(py(p.y) + dy)}" font-size="11" text-anchor="middle" fill="${color}" stroke="#fff" stroke-width="3" paint-order="stroke">${escapeXml(p.label)}</text>`,
      );
    }
  });
  out.push(...labels);

  // Legend below the axis title, one row per series.
  const lx = margin.left;
  spec.series.forEach((series, index) => {
    const color = series.color ?? fallbackColors[index % fallbackColors.length] ?? '#000';
    const ly = margin.top + plotH + 64 + index * 20;
    out.push(
      `<line x1="${n(lx)}" y1="${n(ly)}" x2="${n(lx + 28)}" y2="${n(ly)}" stroke="${color}" stroke-width="2.5"${
        series.dashed === true ? ' stroke-dasharray="7 5"' : ''
      }/>`,
      `<text x="${n(lx + 34)}" y="${n(ly + 4)}" font-size="12" fill="#222">${escapeXml(series.name)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export function barChart(spec: BarChartSpec): string {
  const width = spec.width ?? 720;
  const barH = 30;
  const gap = 16;
  const labelW = Math.min(330, Math.max(120, ...spec.bars.map((b) => b.label.length * 6.8 + 16)));
  const margin = { left: labelW, right: 150, top: spec.subtitle === undefined ? 52 : 68, bottom: 58 };
  const plotW = width - margin.left - margin.right;
  const plotH = spec.bars.length * (barH + gap) + gap;
  const height = margin.top + plotH + margin.bottom;
  const scale = makeScale(
    { ...spec.valueAxis, scale: 'linear' },
    spec.bars.map((b) => b.value),
  );
  const px = (v: number): number => margin.left + scale.unit(v) * plotW;
  const out = header(width, height, spec.title, spec.subtitle);
  for (const t of scale.ticks) {
    const x = px(t);
    out.push(
      `<line x1="${n(x)}" y1="${n(margin.top)}" x2="${n(x)}" y2="${n(margin.top + plotH)}" stroke="#e3e3e3"/>`,
      `<text x="${n(x)}" y="${n(margin.top + plotH + 18)}" font-size="12" text-anchor="middle" fill="#333">${escapeXml(scale.format(t))}</text>`,
    );
  }
  spec.bars.forEach((bar, index) => {
    const color = bar.color ?? fallbackColors[index % fallbackColors.length] ?? '#000';
    const y = margin.top + gap + index * (barH + gap);
    const w = Math.max(0, px(bar.value) - margin.left);
    out.push(
      `<text x="${n(margin.left - 10)}" y="${n(y + barH / 2 + 4)}" font-size="12" text-anchor="end" fill="#222">${escapeXml(bar.label)}</text>`,
      `<rect x="${n(margin.left)}" y="${n(y)}" width="${n(w)}" height="${barH}" fill="${color}"/>`,
      `<text x="${n(margin.left + w + 6)}" y="${n(y + barH / 2 + 4)}" font-size="12" fill="#222">${escapeXml(
        `${scale.format(bar.value)}${bar.note === undefined ? '' : ` ${bar.note}`}`,
      )}</text>`,
    );
  });
  out.push(
    `<line x1="${n(margin.left)}" y1="${n(margin.top)}" x2="${n(margin.left)}" y2="${n(margin.top + plotH)}" stroke="#333"/>`,
    `<line x1="${n(margin.left)}" y1="${n(margin.top + plotH)}" x2="${n(margin.left + plotW)}" y2="${n(margin.top + plotH)}" stroke="#333"/>`,
    `<text x="${n(margin.left + plotW / 2)}" y="${n(margin.top + plotH + 40)}" font-size="13" text-anchor="middle" fill="#222">${escapeXml(spec.valueAxis.label)}</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}
