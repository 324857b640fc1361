// report.html: one self-contained page (no external URL) for a demo run: the VAE's and
// the DiT's loss curves as inline SVG (from their log.jsonl files), the reconstruction
// and sample GIFs as base64 data URIs with their prompts, the evaluation table, the
// config and the machine. The figures sit at fixed places (REPORT_FIGURES, CSS pixels
// from the page's top-left) so that a screenshot can be checked where they are.
import * as fs from 'fs';
import type { AdherenceReport } from './adherence';
import { writeTextAtomic } from '../io/atomic';
import type { Info } from '../runtime';

export interface LossPoint {
  step: number;
  value: number;
}

/**
 * The curve `key` of a training log.jsonl: one point per step, a later line for a step
 * replacing an earlier one (a resumed run redoes the steps after its checkpoint);
 * lines without a finite `key` (events) are skipped. A missing file gives no points.
 */
export function readLossLog(file: string | null | undefined, key = 'loss'): LossPoint[] {
  if (!file || !fs.existsSync(file)) return [];
  const byStep = new Map<number, number>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a line torn by a kill mid-append
    }
    const step = rec.step, value = rec[key];
    if (typeof step === 'number' && typeof value === 'number' && Number.isFinite(value)) byStep.set(step, value);
  }
  return [...byStep.entries()].sort((a, b) => a[0] - b[0]).map(([step, value]) => ({ step, value }));
}

/** At most n points: the mean of each of n equal runs of steps (a curve stays readable). */
function downsample(points: LossPoint[], n: number): LossPoint[] {
  if (points.length <= n) return points;
  const out: LossPoint[] = [];
  for (let k = 0; k < n; k++) {
    const part = points.slice(Math.floor((k * points.length) / n), Math.floor(((k + 1) * points.length) / n));
    out.push({ step: part[part.length - 1].step, value: part.reduce((s, p) => s + p.value, 0) / part.length });
  }
  return out;
}

/** A centered moving average over about 1/25 of the points (the raw curve is drawn faintly beneath). */
function smooth(points: LossPoint[]): LossPoint[] {
  const k = Math.max(1, Math.floor(points.length / 50));
  return points.map((p, i) => {
    const part = points.slice(Math.max(0, i - k), i + k + 1);
    return { step: p.step, value: part.reduce((s, q) => s + q.value, 0) / part.length };
  });
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const num = (v: number): string => (Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3));

/**
 * A loss curve as an SVG element (w x h pixels): the raw values faint, a moving average
 * strong; a log-scale y axis when the loss spans more than a factor of 20. Without points: the frame and a note.
 */
export function lossCurveSvg(points: LossPoint[], o: { title: string; width: number; height: number; color: string }): string {
  const { width: w, height: h } = o;
  const m = { l: 56, r: 12, t: 26, b: 30 };
  const pw = w - m.l - m.r, ph = h - m.t - m.b;
  const parts = [
    `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(o.title)}">`,
    `<rect x="0" y="0" width="${w}" height="${h}" fill="#fff"/>`,
    `<text x="${m.l}" y="17" font-size="14" font-family="sans-serif">${esc(o.title)}</text>`,
    `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  ];
  const pts = downsample(points, 600);
  if (pts.length < 2) {
    parts.push(`<text x="${m.l + 10}" y="${m.t + ph / 2}" font-size="13" font-family="sans-serif" fill="#666">no training log</text></svg>`);
    return parts.join('');
  }
  const lo = Math.min(...pts.map((p) => p.value)), hi = Math.max(...pts.map((p) => p.value));
  const log = lo > 0 && hi / lo > 20;
  const f = (v: number): number => (log ? Math.log10(v) : v);
  const y0 = f(lo), y1 = f(hi) > y0 ? f(hi) : y0 + 1;
  const s0 = pts[0].step, s1 = pts[pts.length - 1].step > s0 ? pts[pts.length - 1].step : s0 + 1;
  const X = (s: number): string => (m.l + ((s - s0) / (s1 - s0)) * pw).toFixed(1);
  const Y = (v: number): string => (m.t + ph - ((f(v) - y0) / (y1 - y0)) * ph).toFixed(1);
  const d = (ps: LossPoint[]): string => ps.map((p, i) => `${i ? 'L' : 'M'}${X(p.step)} ${Y(p.value)}`).join(' ');
  parts.push(
    `<path d="${d(pts)}" fill="none" stroke="${o.color}" stroke-opacity="0.3" stroke-width="1"/>`,
    `<path d="${d(smooth(pts))}" fill="none" stroke="${o.color}" stroke-width="2"/>`,
    `<text x="${m.l - 4}" y="${m.t + 10}" font-size="11" text-anchor="end" font-family="sans-serif">${num(hi)}</text>`,
    `<text x="${m.l - 4}" y="${m.t + ph}" font-size="11" text-anchor="end" font-family="sans-serif">${num(lo)}</text>`,
    `<text x="${m.l}" y="${h - 10}" font-size="11" font-family="sans-serif">step ${s0}</text>`,
    `<text x="${w - m.r}" y="${h - 10}" font-size="11" text-anchor="end" font-family="sans-serif">${s1}${log ? ' (log y)' : ''}</text>`,
    '</svg>',
  );
  return parts.join('');
}

/** A file as a data URI (null when the file is missing). */
export function dataUri(file: string | null | undefined, mime: string): string | null {
  if (!file || !fs.existsSync(file)) return null;
  return `data:${mime};base64,${fs.readFileSync(file).toString('base64')}`;
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Where the figures sit (CSS pixels from the page's top-left). */
export const REPORT_FIGURES: { vaeCurve: Box; ditCurve: Box; recon: Box; samples: Box } = {
  vaeCurve: { x: 20, y: 70, w: 470, h: 260 },
  ditCurve: { x: 510, y: 70, w: 470, h: 260 },
  recon: { x: 20, y: 350, w: 470, h: 300 },
  samples: { x: 510, y: 350, w: 470, h: 300 },
};
const FIGURES_BOTTOM = 700;

export interface DemoReportInput {
  title?: string;
  /** log.jsonl files of the two trainings. */
  vaeLog?: string | null;
  ditLog?: string | null;
  reconGif?: string | null;
  samplesGif?: string | null;
  /** The prompts of the sample grid, in its order. */
  prompts?: string[];
  evaluation?: AdherenceReport | null;
  /** Extra rows for the numbers table (e.g. the VAE's held-out PSNR). */
  numbers?: [string, string][];
  config?: unknown;
  machine?: Info;
}

const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;

function figure(box: Box, inner: string, caption: string): string {
  return `<figure style="left:${box.x}px;top:${box.y}px;width:${box.w}px;height:${box.h}px">${inner}<figcaption>${caption}</figcaption></figure>`;
}

function image(uri: string | null, box: Box, alt: string): string {
  return uri
    ? `<img src="${uri}" alt="${esc(alt)}" style="width:${box.w}px;height:${box.h - 44}px">`
    : `<div class="missing">${esc(alt)}: not produced</div>`;
}

function evaluationTable(r: AdherenceReport): string {
  const rows = r.perPrompt.map(
    (p) => `<tr><td>${esc(p.prompt)}</td><td>${pct(p.digitAccuracy)}</td><td>${pct(p.directionAccuracy)}</td><td>${p.samples.map((s) => `${s.digit} ${esc(s.direction)}`).join('; ')}</td></tr>`,
  );
  return [
    `<p>${r.samples} samples: digit right ${pct(r.digitAccuracy)} (chance ${pct(r.chance.digit)}), direction right ${pct(r.directionAccuracy)} (chance ${pct(r.chance.direction)}), both ${pct(r.jointAccuracy)}.</p>`,
    '<table><tr><th>prompt</th><th>digit</th><th>direction</th><th>judged (digit, direction)</th></tr>',
    ...rows,
    '</table>',
  ].join('\n');
}

/** The report as one HTML string (see the file header). */
export function renderReport(r: DemoReportInput): string {
  const F = REPORT_FIGURES;
  const vae = lossCurveSvg(readLossLog(r.vaeLog), { title: 'VAE training loss (L1 + MSE + KL)', width: F.vaeCurve.w, height: F.vaeCurve.h - 24, color: '#1f77b4' });
  const dit = lossCurveSvg(readLossLog(r.ditLog), { title: 'DiT training loss', width: F.ditCurve.w, height: F.ditCurve.h - 24, color: '#d62728' });
  const prompts = r.prompts ?? [];
  const machine = r.machine;
  const title = r.title ?? 'tessera demo';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body { margin: 0; font: 14px/1.4 sans-serif; color: #222; background: #fff; }
header { position: absolute; left: 20px; top: 0; width: 960px; height: 60px; overflow: hidden; }
h1 { font-size: 22px; margin: 14px 0 0; }
.figures { position: relative; width: 1000px; height: ${FIGURES_BOTTOM}px; }
figure { position: absolute; margin: 0; overflow: hidden; }
figcaption { font-size: 12px; color: #444; height: 40px; overflow: hidden; }
img { display: block; image-rendering: pixelated; object-fit: contain; object-position: left top; }
.missing { padding: 20px; color: #a00; }
main { padding: 0 20px 40px; width: 960px; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }
pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
</style></head>
<body>
<div class="figures">
<header><h1>${esc(title)}</h1><div>${esc(new Date().toISOString())}</div></header>
${figure(F.vaeCurve, vae, 'VAE: reconstruction loss per step (training batches).')}
${figure(F.ditCurve, dit, 'DiT: diffusion loss per step (training batches).')}
${figure(F.recon, image(dataUri(r.reconGif, 'image/gif'), F.recon, 'VAE reconstructions'), 'Held-out clips (top) and their VAE reconstructions (bottom).')}
${figure(F.samples, image(dataUri(r.samplesGif, 'image/gif'), F.samples, 'Samples'), 'Samples for the held-out prompts listed below, in reading order (a row per prompt when several samples each).')}
</div>
<main>
<h2>Prompts of the sample grid</h2>
<ol>${prompts.map((p) => `<li>${esc(p)}</li>`).join('')}</ol>
<h2>Numbers</h2>
<table>${(r.numbers ?? []).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
<h2>Prompt adherence</h2>
${r.evaluation ? evaluationTable(r.evaluation) : '<p>not evaluated</p>'}
<h2>Config</h2>
<pre>${esc(JSON.stringify(r.config ?? {}, null, 2))}</pre>
<h2>Machine</h2>
<pre>${esc(machine ? JSON.stringify(machine, null, 2) : 'unknown')}</pre>
</main>
</body></html>
`;
}

/** Writes renderReport(r) to file atomically. */
export function writeReport(file: string, r: DemoReportInput): void {
  writeTextAtomic(file, renderReport(r));
}
