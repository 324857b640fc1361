// Image quality metrics on videos in [0, 1]: MSE, PSNR and SSIM (Wang et al. 2004:
// 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, computed per frame and
// channel and averaged), for [B, C, T, H, W] or [C, T, H, W] tensors.
import { live, shapeStr } from '../ops/basic';
import { Tensor } from '../tensor';

function dims(t: Tensor, op: string): [number, number, number, number, number] {
  const s = t.shape as number[];
  if (s.length === 4) return [1, s[0], s[1], s[2], s[3]];
  if (s.length === 5) return s as [number, number, number, number, number];
  throw new Error(`${op}: expected a video [C, T, H, W] or [B, C, T, H, W], got ${shapeStr(s)}`);
}

function pair(a: Tensor, b: Tensor, op: string): [Float32Array, Float32Array, [number, number, number, number, number]] {
  const x = live(a, op, 'the first video'), y = live(b, op, 'the second video');
  const d = dims(x, op);
  if (x.shape.length !== y.shape.length || x.shape.some((v, i) => v !== y.shape[i]))
    throw new Error(`${op}: expected videos of one shape, got ${shapeStr(x.shape)} and ${shapeStr(y.shape)}`);
  return [x.to('float32').toFloat32Array(), y.to('float32').toFloat32Array(), d];
}

/** Mean squared error per sample: [B] values. */
export function mseValues(a: Tensor, b: Tensor): number[] {
  const [x, y, [B]] = pair(a, b, 'mse');
  const n = x.length / B;
  const out: number[] = [];
  for (let s = 0; s < B; s++) {
    let e = 0;
    for (let i = s * n; i < (s + 1) * n; i++) e += (x[i] - y[i]) ** 2;
    out.push(e / n);
  }
  return out;
}

/** PSNR in dB per sample (peak 1), capped at 100 dB for identical samples. */
export function psnrValues(a: Tensor, b: Tensor): number[] {
  return mseValues(a, b).map((m) => (m <= 1e-10 ? 100 : -10 * Math.log10(m)));
}

function gaussianWindow(size: number, sigma: number): Float64Array {
  const w = new Float64Array(size);
  let s = 0;
  for (let i = 0; i < size; i++) {
    w[i] = Math.exp(-((i - (size - 1) / 2) ** 2) / (2 * sigma * sigma));
    s += w[i];
  }
  for (let i = 0; i < size; i++) w[i] /= s;
  return w;
}

/** Separable 'valid' Gaussian filter of an H x W image. */
function filter(img: Float64Array, H: number, W: number, w: Float64Array): Float64Array {
  const k = w.length, Ho = H - k + 1, Wo = W - k + 1;
  const tmp = new Float64Array(H * Wo);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < Wo; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += img[y * W + x + i] * w[i];
      tmp[y * Wo + x] = s;
    }
  const out = new Float64Array(Ho * Wo);
  for (let y = 0; y < Ho; y++)
    for (let x = 0; x < Wo; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += tmp[(y + i) * Wo + x] * w[i];
      out[y * Wo + x] = s;
    }
  return out;
}

/** SSIM per sample (mean over channels, frames and window positions). */
export function ssimValues(a: Tensor, b: Tensor): number[] {
  const [x, y, [B, C, T, H, W]] = pair(a, b, 'ssim');
  const win = gaussianWindow(Math.min(11, H, W), 1.5);
  const C1 = 0.01 ** 2, C2 = 0.03 ** 2;
  const out: number[] = [];
  const plane = H * W;
  for (let s = 0; s < B; s++) {
    let total = 0, count = 0;
    for (let c = 0; c < C; c++)
      for (let t = 0; t < T; t++) {
        const off = ((s * C + c) * T + t) * plane;
        const p = new Float64Array(plane), q = new Float64Array(plane);
        for (let i = 0; i < plane; i++) (p[i] = x[off + i]), (q[i] = y[off + i]);
        const pp = p.map((v) => v * v), qq = q.map((v) => v * v), pq = p.map((v, i) => v * q[i]);
        const mp = filter(p, H, W, win), mq = filter(q, H, W, win);
        const spp = filter(pp, H, W, win), sqq = filter(qq, H, W, win), spq = filter(pq, H, W, win);
        for (let i = 0; i < mp.length; i++) {
          const vp = spp[i] - mp[i] ** 2, vq = sqq[i] - mq[i] ** 2, cov = spq[i] - mp[i] * mq[i];
          total += ((2 * mp[i] * mq[i] + C1) * (2 * cov + C2)) / ((mp[i] ** 2 + mq[i] ** 2 + C1) * (vp + vq + C2));
          count++;
        }
      }
    out.push(total / count);
  }
  return out;
}

const meanOf = (v: number[]): number => v.reduce((p, q) => p + q, 0) / v.length;
export const psnr = (a: Tensor, b: Tensor): number => meanOf(psnrValues(a, b));
export const ssim = (a: Tensor, b: Tensor): number => meanOf(ssimValues(a, b));
export const mse = (a: Tensor, b: Tensor): number => meanOf(mseValues(a, b));
