// Position encodings for spacetime patch tokens, computed from each sample's own
// grid so any T x H x W works (including grids never seen in training).
//   sincos1d(D, pos)       [N, D]: [sin(pos * w_i), cos(pos * w_i)], w_i = 10000^(-i/(D/2))
//   sincos2dDiT(D, H, W)   [H*W, D]: facebookresearch/DiT's get_2d_sincos_pos_embed
//                          (first half encodes the column, second half the row)
//   sincos3d(D, T, H, W)   [T*H*W, D]: channels split between t, h, w (D/4, 3D/8, 3D/8
//                          rounded to even sizes), tokens in (t, h, w) row-major order
//   rope3d(headDim, T, H, W) cos/sin tables [N, headDim/2] for rotary embeddings with the
//                          head dim split between t, h, w
//   applyRotary(x, cos, sin) rotates q or k [B, N, heads, headDim] by those tables
import { tensor } from '../creation';
import { cat, live, shapeStr } from '../ops/basic';
import { Device, Tensor } from '../tensor';

function check(op: string, D: number, ...sizes: number[]): void {
  if (!Number.isInteger(D) || D <= 0) throw new RangeError(`${op}: expected a positive integer dimension, got ${D}`);
  for (const s of sizes) if (!Number.isInteger(s) || s <= 0) throw new RangeError(`${op}: expected positive integer grid sizes, got [${sizes.join(', ')}]`);
}

/** Writes the 1-D sincos embedding of `pos` into out[row * stride + offset .. + D). */
function fill1d(out: Float32Array, row: number, stride: number, offset: number, D: number, pos: number): void {
  const half = D / 2;
  for (let i = 0; i < half; i++) {
    const w = 1 / Math.pow(10000, i / half);
    out[row * stride + offset + i] = Math.sin(pos * w);
    out[row * stride + offset + half + i] = Math.cos(pos * w);
  }
}

export function sincos1d(D: number, positions: number[], device: Device = 'cpu'): Tensor {
  check('sincos1d', D, positions.length || 1);
  if (D % 2) throw new RangeError(`sincos1d: expected an even dimension, got ${D}`);
  const out = new Float32Array(positions.length * D);
  positions.forEach((p, r) => fill1d(out, r, D, 0, D, p));
  return tensor(out, { shape: [positions.length, D], device });
}

export function sincos2dDiT(D: number, H: number, W: number, device: Device = 'cpu'): Tensor {
  check('sincos2dDiT', D, H, W);
  if (D % 4) throw new RangeError(`sincos2dDiT: expected a dimension divisible by 4, got ${D}`);
  const out = new Float32Array(H * W * D);
  for (let h = 0; h < H; h++)
    for (let w = 0; w < W; w++) {
      const r = h * W + w;
      fill1d(out, r, D, 0, D / 2, w);
      fill1d(out, r, D, D / 2, D / 2, h);
    }
  return tensor(out, { shape: [H * W, D], device });
}

/** Channel split of D between t, h, w: even sizes, t gets about a quarter. */
export function split3d(D: number): [number, number, number] {
  const t = 2 * Math.floor(D / 8);
  const h = 2 * Math.floor((D - t) / 4);
  return [t, h, D - t - h];
}

export function sincos3d(D: number, T: number, H: number, W: number, device: Device = 'cpu'): Tensor {
  check('sincos3d', D, T, H, W);
  const [dt, dh, dw] = split3d(D);
  if (dt < 2 || dw % 2) throw new RangeError(`sincos3d: expected a dimension of at least 8 that splits into even parts, got ${D}`);
  const out = new Float32Array(T * H * W * D);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++) {
        const r = (t * H + h) * W + w;
        fill1d(out, r, D, 0, dt, t);
        fill1d(out, r, D, dt, dh, h);
        fill1d(out, r, D, dt + dh, dw, w);
      }
  return tensor(out, { shape: [T * H * W, D], device });
}

/**
 * Rotary tables for a head dim split between t, h, w: cos and sin [N, headDim/2];
 * pair i of a head vector (elements 2i, 2i+1) rotates by angle[n, i].
 */
export function rope3d(headDim: number, T: number, H: number, W: number, theta = 10000, device: Device = 'cpu'): { cos: Tensor; sin: Tensor } {
  check('rope3d', headDim, T, H, W);
  const [dt, dh, dw] = split3d(headDim);
  if (dt < 2 || dw % 2 || headDim % 2) throw new RangeError(`rope3d: expected an even head dim of at least 8, got ${headDim}`);
  const P = headDim / 2, N = T * H * W;
  const cos = new Float32Array(N * P), sin = new Float32Array(N * P);
  const parts: [number, number][] = [[dt / 2, 0], [dh / 2, 1], [dw / 2, 2]];
  for (let t = 0; t < T; t++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++) {
        const n = (t * H + h) * W + w;
        const coord = [t, h, w];
        let i = 0;
        for (const [pairs, axis] of parts)
          for (let k = 0; k < pairs; k++, i++) {
            const a = coord[axis] / Math.pow(theta, (2 * k) / (2 * pairs));
            cos[n * P + i] = Math.cos(a);
            sin[n * P + i] = Math.sin(a);
          }
      }
  return { cos: tensor(cos, { shape: [N, P], device }), sin: tensor(sin, { shape: [N, P], device }) };
}

/**
 * Rotary position embedding applied to q or k x [B, N, heads, Dh] with tables cos, sin
 * [N, Dh/2] (from rope3d, or rows of several such tables for packed sequences): pair i
 * (elements 2i, 2i+1) of every head vector rotates by the angle of row n:
 *   y[2i] = x[2i] cos - x[2i+1] sin,   y[2i+1] = x[2i] sin + x[2i+1] cos.
 * Differentiable in x (the tables are constants).
 */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const op = 'applyRotary';
  const t = live(x, op, 'x'), c = live(cos, op, 'cos'), s = live(sin, op, 'sin');
  if (t.rank !== 4 || t.shape[3] % 2)
    throw new Error(`${op}: expected x of shape [B, N, heads, headDim] with an even headDim, got ${shapeStr(t.shape)}`);
  const [B, N, H, Dh] = t.shape;
  const P = Dh / 2;
  for (const [tab, name] of [[c, 'cos'], [s, 'sin']] as const)
    if (tab.rank !== 2 || tab.shape[0] !== N || tab.shape[1] !== P)
      throw new Error(`${op}: expected ${name} of shape [${N}, ${P}] for x ${shapeStr(t.shape)}, got ${shapeStr(tab.shape)}`);
  const xp = t.reshape([B, N, H, P, 2]); // [B, N, H, P, 2]: the pairs
  const x0 = xp.slice(4, 0, 1), x1 = xp.slice(4, 1, 2); // [B, N, H, P, 1] each
  const cb = c.reshape([1, N, 1, P, 1]), sb = s.reshape([1, N, 1, P, 1]); // broadcast over B and heads
  const y0 = x0.mul(cb).sub(x1.mul(sb)); // [B, N, H, P, 1]
  const y1 = x0.mul(sb).add(x1.mul(cb)); // [B, N, H, P, 1]
  return cat([y0, y1], 4).reshape([B, N, H, Dh]); // [B, N, H, Dh], pairs interleaved again
}
