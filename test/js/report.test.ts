// report.html: its structure (inline SVG curves, GIFs as data URIs, escaped prompts, no
// external URL), the log reader, and a headless-Chromium screenshot that must show the
// curves and the images where REPORT_FIGURES says they are.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
// (the modules themselves rather than lib/index, which also loads the DiT stage)
import { tensor } from '../../lib/creation';
import type { AdherenceReport } from '../../lib/demo/adherence';
import { loadVideo, saveVideo } from '../../lib/io/video';
import { DemoReportInput, lossCurveSvg, readLossLog, renderReport, REPORT_FIGURES } from '../../lib/demo/report';
import { info } from '../../lib/runtime';
import { tidy } from '../../lib/tensor';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-report-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A log.jsonl of a decaying loss from `from` to about `from / ratio`, with an event line and a torn last line. */
function writeLog(file: string, steps: number, from: number, ratio: number): void {
  const lines = [];
  for (let s = 1; s <= steps; s++) lines.push(JSON.stringify({ step: s, loss: from * Math.pow(ratio, -(s - 1) / (steps - 1)), lr: 1e-3 }));
  lines.push(JSON.stringify({ step: steps, event: 'completed' }), '{"step": 99, "lo');
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
}

/** A GIF of `n` clips: a white square moving right on black. */
function writeGif(file: string, n: number): void {
  const T = 5, H = 32, W = 32;
  const v = new Float32Array(n * T * H * W);
  for (let b = 0; b < n; b++)
    for (let t = 0; t < T; t++)
      for (let y = 8; y < 20; y++) for (let x = 4 + 3 * t; x < 14 + 3 * t; x++) v[((b * T + t) * H + y) * W + x] = 1;
  tidy(() => saveVideo(tensor(v, { shape: [n, 1, T, H, W] }), file));
}

const prompts = ['the digit 7 moves right', 'the digit 2 moves up <b>bold</b>'];
const evaluation: AdherenceReport = {
  digitAccuracy: 0.5, directionAccuracy: 1, jointAccuracy: 0.5, samples: 2, chance: { digit: 0.1, direction: 0.125 },
  perPrompt: [
    { prompt: prompts[0], digit: 7, direction: 'right', samples: [{ digit: 7, direction: 'right', digitCorrect: true, directionCorrect: true }], digitAccuracy: 1, directionAccuracy: 1 },
    { prompt: prompts[1], digit: 2, direction: 'up', samples: [{ digit: 3, direction: 'up', digitCorrect: false, directionCorrect: true }], digitAccuracy: 0, directionAccuracy: 1 },
  ],
};

function inputs(withMedia: boolean): DemoReportInput {
  const vaeLog = path.join(tmp, 'vae.jsonl'), ditLog = path.join(tmp, 'dit.jsonl');
  writeLog(vaeLog, 300, 0.5, 10); // linear y
  writeLog(ditLog, 200, 2, 100); // log y
  const recon = path.join(tmp, 'recon.gif'), samples = path.join(tmp, 'samples.gif');
  writeGif(recon, 8);
  writeGif(samples, 2);
  return {
    title: 'test report', vaeLog, ditLog, reconGif: withMedia ? recon : null, samplesGif: withMedia ? samples : null, prompts, evaluation,
    numbers: [['VAE held-out PSNR', '24.6 dB']], config: { seed: 3 }, machine: info(),
  };
}

test('readLossLog keeps the last value of each step and skips events and torn lines', () => {
  const f = path.join(tmp, 'dup.jsonl');
  fs.writeFileSync(f, ['{"step":1,"loss":3}', '{"step":2,"loss":2}', '{"step":2,"event":"aborted"}', '{"step":2,"loss":5}', '{"step":3,"loss":NaN}', '{"step":4,"lo'].join('\n'));
  expect(readLossLog(f)).toEqual([{ step: 1, value: 3 }, { step: 2, value: 5 }]);
  expect(readLossLog(path.join(tmp, 'missing.jsonl'))).toEqual([]);
});

test('loss curves: one path point per step (up to 600), y falling with the loss, log scale for wide ranges', () => {
  const pts = Array.from({ length: 50 }, (_, i) => ({ step: i + 1, value: 100 / (i + 1) }));
  const svg = lossCurveSvg(pts, { title: 't', width: 400, height: 200, color: '#000' });
  const raw = /<path d="([^"]+)"/.exec(svg)![1].split(/[ML]/).filter(Boolean).map((p) => p.trim().split(' ').map(Number));
  expect(raw).toHaveLength(50);
  for (let i = 1; i < raw.length; i++) {
    expect(raw[i][0]).toBeGreaterThan(raw[i - 1][0]); // x grows with the step
    expect(raw[i][1]).toBeGreaterThan(raw[i - 1][1]); // a smaller loss is lower (larger y)
  }
  // log y: 100/k spans 50x, so the midpoint of log10 (k = sqrt(50) ~ 7) sits half way down.
  const ys = raw.map((p) => p[1]);
  const mid = (ys[0] + ys[49]) / 2;
  expect(Math.abs(ys[6] - mid)).toBeLessThan(0.06 * (ys[49] - ys[0]));
  expect(svg).toContain('(log y)');
  expect(lossCurveSvg([], { title: 't', width: 400, height: 200, color: '#000' })).toContain('no training log');
});

test('report.html is self-contained: two SVG curves, GIFs as data URIs, escaped prompts, evaluation table', () => {
  const html = renderReport(inputs(true));
  expect(html.match(/<svg /g)).toHaveLength(2);
  expect(html.match(/<path d="M[\d.]+ [\d.]+( L[\d.]+ [\d.]+){100,}"/g)!.length).toBeGreaterThanOrEqual(2);
  const imgs = [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1]);
  expect(imgs).toHaveLength(2);
  for (const src of imgs) {
    expect(src).toMatch(/^data:image\/gif;base64,[A-Za-z0-9+/=]+$/);
    expect(Buffer.from(src.split(',')[1], 'base64').subarray(0, 6).toString()).toBe('GIF89a');
  }
  const text = html.replace(/data:image\/gif;base64,[A-Za-z0-9+/=]+/g, 'DATA');
  expect(text).not.toMatch(/(https?:|file:)?\/\/[a-z]|url\(/i); // no external URL of any kind
  expect(text).not.toMatch(/(src|href)="(?!DATA)/);
  expect(html).not.toMatch(/<(script|link)\b/);
  expect(html).toContain('the digit 2 moves up &lt;b&gt;bold&lt;/b&gt;');
  expect(html).not.toContain('<b>bold</b>');
  expect(html.match(/<tr><td>the digit/g)).toHaveLength(2);
  expect(html).toContain('digit right 50.0% (chance 10.0%)');
  expect(html).toContain(`&quot;gemmKernel&quot;: &quot;${info().cpu.gemmKernel}&quot;`);
  const missing = renderReport(inputs(false));
  expect(missing).not.toContain('<img');
  expect(missing).toContain('VAE reconstructions: not produced');
});

// ---- rendering in headless Chromium ---------------------------------------------------------

function findChromium(): string | null {
  for (const bin of ['chromium', 'chromium-browser', 'google-chrome']) {
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return bin;
  }
  return null;
}

interface Shot {
  width: number;
  height: number;
  rgb: Float32Array; // [3, H, W] in [0, 1]
}

function screenshot(bin: string, html: string, name: string): Shot {
  const page = path.join(tmp, `${name}.html`), png = path.join(tmp, `${name}.png`);
  fs.writeFileSync(page, html);
  const r = spawnSync(
    bin,
    ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--force-device-scale-factor=1', '--window-size=1000,720', `--screenshot=${png}`, `file://${page}`],
    { encoding: 'utf8', timeout: 60000 },
  );
  if (!fs.existsSync(png)) throw new Error(`chromium wrote no screenshot (status ${r.status}):\n${r.stderr}`);
  const v = loadVideo(png); // the repo's own PNG reader: [3, 1, H, W]
  const [, , height, width] = v.shape;
  const rgb = v.toFloat32Array();
  v.dispose();
  return { width, height, rgb };
}

type Box = { x: number; y: number; w: number; h: number };

/** Pixels in box whose color is within 0.1 of `color` (per channel). */
function countColor(s: Shot, box: Box, color: [number, number, number]): number {
  let n = 0;
  const plane = s.width * s.height;
  for (let y = box.y; y < box.y + box.h; y++)
    for (let x = box.x; x < box.x + box.w; x++) {
      const i = y * s.width + x;
      if ([0, 1, 2].every((c) => Math.abs(s.rgb[c * plane + i] - color[c]) < 0.1)) n++;
    }
  return n;
}

/** The bounding box of the pixels of `color` in box. */
function boundsOf(s: Shot, box: Box, color: [number, number, number]): Box {
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
  const plane = s.width * s.height;
  for (let y = box.y; y < box.y + box.h; y++)
    for (let x = box.x; x < box.x + box.w; x++) {
      const i = y * s.width + x;
      if ([0, 1, 2].every((c) => Math.abs(s.rgb[c * plane + i] - color[c]) < 0.1))
        (x0 = Math.min(x0, x)), (y0 = Math.min(y0, y)), (x1 = Math.max(x1, x)), (y1 = Math.max(y1, y));
    }
  return { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

const BLUE: [number, number, number] = [0x1f / 255, 0x77 / 255, 0xb4 / 255];
const RED: [number, number, number] = [0xd6 / 255, 0x27 / 255, 0x28 / 255];

test('report.html renders in headless Chromium with curves and images where REPORT_FIGURES says', () => {
  const bin = findChromium();
  if (!bin) {
    console.log('report.test: SKIPPED the Chromium rendering check: no chromium on the PATH (apt-get install chromium; .ci/run installs it)');
    return;
  }
  const F = REPORT_FIGURES;
  const shot = screenshot(bin, renderReport(inputs(true)), 'full');
  expect(shot.width).toBe(1000);
  // The curves: the strong line of each in its own box, not in the other.
  expect(countColor(shot, F.vaeCurve, BLUE)).toBeGreaterThan(300);
  expect(countColor(shot, F.ditCurve, RED)).toBeGreaterThan(300);
  expect(countColor(shot, F.vaeCurve, RED)).toBe(0);
  expect(countColor(shot, F.ditCurve, BLUE)).toBe(0);
  // The GIFs: black frames (their extent: the box of the black pixels) with white squares inside.
  for (const box of [F.recon, F.samples]) {
    const inner = { ...box, h: box.h - 44 };
    expect(countColor(shot, inner, [0, 0, 0])).toBeGreaterThan(0.2 * inner.w * inner.h);
    const frame = boundsOf(shot, inner, [0, 0, 0]);
    const white = countColor(shot, frame, [1, 1, 1]);
    expect(white).toBeGreaterThan(0.02 * frame.w * frame.h);
    expect(white).toBeLessThan(0.5 * frame.w * frame.h);
  }
  // The same page without the GIFs shows no black there: the check above sees the images.
  const bare = screenshot(bin, renderReport(inputs(false)), 'bare');
  for (const box of [F.recon, F.samples]) expect(countColor(bare, { ...box, h: box.h - 44 }, [0, 0, 0])).toBeLessThan(0.01 * box.w * box.h);
});
