// F.* nn ops: softmax, norms, DiT's adaLN modulate, embedding, dropout, losses,
// nearest upsampling and spacetime patches. Layouts follow PyTorch: video and
// latents [B, C, T, H, W], tokens [B, N, D]. Each op checks argument types here
// (errors name the op), lets the native core check shapes, runs one native forward
// kernel and records a backward that runs the matching native backward kernel.
import { Handle, native } from '../native';
import { Tensor, typeName } from '../tensor';
import { f32, live, normAxis, record, shapeStr, wrap } from './basic';

// ---- argument checks ---------------------------------------------------------------------

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function intArg(v: unknown, op: string, what: string): number {
  if (!isInt(v)) throw new TypeError(`${op}: expected ${what} to be an integer, got ${typeName(v)} ${String(v)}`);
  return v;
}

function numArg(v: unknown, op: string, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new TypeError(`${op}: expected ${what} to be a finite number, got ${typeName(v)} ${String(v)}`);
  return v;
}

function intsArg(v: unknown, op: string, what: string): number[] {
  if (!Array.isArray(v) || !v.every(isInt))
    throw new TypeError(
      `${op}: expected ${what} to be an array of integers, got ${Array.isArray(v) ? `[${v.map(typeName).join(', ')}]` : typeName(v)}`,
    );
  return v as number[];
}

/** Three positive integers [a, b, c] (a single integer n means [n, n, n] where allowed). */
function tripleArg(v: unknown, op: string, what: string, names: string, allowScalar = false): number[] {
  const list = allowScalar && isInt(v) ? [v, v, v] : v;
  if (!Array.isArray(list) || list.length !== 3 || !list.every((x) => isInt(x) && x >= 1))
    throw new RangeError(
      `${op}: expected ${what} to be 3 positive integers ${names}, got ${Array.isArray(v) ? shapeStr(v as number[]) : `${typeName(v)} ${String(v)}`}`,
    );
  return list as number[];
}

function optF32(v: unknown, op: string, what: string): Tensor | null {
  return v === undefined || v === null ? null : f32(v, op, what);
}

/**
 * Runs fn with native statistics handles wrapped as untracked tensors, then frees
 * them: a backward that needs them keeps its own alias via record's save().
 */
function withStats<T>(hs: Handle[], fn: (stats: Tensor[]) => T): T {
  const stats = hs.map((h) => new Tensor(h, true));
  try {
    return fn(stats);
  } finally {
    for (const s of stats) s.dispose();
  }
}

const maybe = (h: Handle | null): Tensor | null => (h === null ? null : wrap(h));

// ---- softmax -----------------------------------------------------------------------------

function softmaxOp(x: Tensor, axis: number, log: boolean): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  const t = f32(x, op);
  const a = normAxis(axis, t.rank, op);
  const out = wrap(native.softmax(t.h, a, log));
  return record(out, op, [t], (save) => {
    const so = save(out);
    return (g) => [wrap(native.softmaxBackward(g.h, so.h, a, log))];
  });
}

/** softmax over `axis` (numerically stable: the max is subtracted first). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp(x, axis, false);
}

/** log(softmax(x)) over `axis`, computed as x - max - log(sum(exp(x - max))). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp(x, axis, true);
}

// ---- norms -------------------------------------------------------------------------------

/**
 * Layer norm over the trailing dims `normalizedShape` of x (biased variance, as
 * PyTorch); weight and bias have shape normalizedShape.
 */
export function layerNorm(
  x: Tensor,
  normalizedShape: number[] | number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const op = 'layerNorm';
  const t = f32(x, op);
  const ns = isInt(normalizedShape) ? [normalizedShape] : intsArg(normalizedShape, op, 'normalizedShape');
  const w = optF32(weight, op, 'weight'), b = optF32(bias, op, 'bias');
  const e = numArg(eps, op, 'eps');
  const [ho, hm, hr] = native.layerNorm(t.h, ns, w ? w.h : null, b ? b.h : null, e);
  const out = wrap(ho);
  return withStats([hm, hr], ([mean, rstd]) =>
    record(out, op, [t, w, b], (save) => {
      const sx = save(t), sw = w ? save(w) : null, sm = save(mean), sr = save(rstd);
      return (g) => {
        const [dx, dw, db] = native.layerNormBackward(g.h, sx.h, sw ? sw.h : null, sm.h, sr.h, ns, b !== null);
        return [wrap(dx), maybe(dw), maybe(db)];
      };
    }),
  );
}

/** Group norm of x [B, C, ...] over groups of C / numGroups channels; weight, bias [C]. */
export function groupNorm(x: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const op = 'groupNorm';
  const t = f32(x, op);
  const G = intArg(numGroups, op, 'numGroups');
  const w = optF32(weight, op, 'weight'), b = optF32(bias, op, 'bias');
  const e = numArg(eps, op, 'eps');
  const [ho, hm, hr] = native.groupNorm(t.h, G, w ? w.h : null, b ? b.h : null, e);
  const out = wrap(ho);
  return withStats([hm, hr], ([mean, rstd]) =>
    record(out, op, [t, w, b], (save) => {
      const sx = save(t), sw = w ? save(w) : null, sm = save(mean), sr = save(rstd);
      return (g) => {
        const [dx, dw, db] = native.groupNormBackward(g.h, sx.h, sw ? sw.h : null, sm.h, sr.h, G, b !== null);
        return [wrap(dx), maybe(dw), maybe(db)];
      };
    }),
  );
}

/** RMS norm over the last dim: x / sqrt(mean(x^2) + eps) * weight; weight [D]. */
export function rmsNorm(x: Tensor, weight?: Tensor | null, eps = 1e-6): Tensor {
  const op = 'rmsNorm';
  const t = f32(x, op);
  const w = optF32(weight, op, 'weight');
  const e = numArg(eps, op, 'eps');
  const [ho, hr] = native.rmsNorm(t.h, w ? w.h : null, e);
  const out = wrap(ho);
  return withStats([hr], ([rstd]) =>
    record(out, op, [t, w], (save) => {
      const sx = save(t), sw = w ? save(w) : null, sr = save(rstd);
      return (g) => {
        const [dx, dw] = native.rmsNormBackward(g.h, sx.h, sw ? sw.h : null, sr.h);
        return [wrap(dx), maybe(dw)];
      };
    }),
  );
}

// ---- DiT adaLN modulate ------------------------------------------------------------------

/** x * (1 + scale[:, None]) + shift[:, None]: x [B, N, D], shift and scale [B, D]. One fused kernel each way. */
export function modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
  const op = 'modulate';
  const t = f32(x, op, 'x'), sh = f32(shift, op, 'shift'), sc = f32(scale, op, 'scale');
  const out = wrap(native.modulate(t.h, sh.h, sc.h));
  return record(out, op, [t, sh, sc], (save) => {
    const sx = save(t), ss = save(sc);
    return (g) => native.modulateBackward(g.h, sx.h, ss.h).map(wrap);
  });
}

// ---- embedding ---------------------------------------------------------------------------

/** Rows of weight [V, D] picked by int32/int64 ids of any shape -> [...ids.shape, D]. */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  const op = 'embedding';
  const i = live(ids, op, 'ids');
  if (i.dtype !== 'int32' && i.dtype !== 'int64')
    throw new TypeError(`${op}: expected ids of dtype int32 or int64, got ${i.dtype}`);
  const w = f32(weight, op, 'weight');
  const out = wrap(native.embedding(i.h, w.h));
  const V = w.shape[0];
  return record(out, op, [w], (save) => {
    const si = save(i);
    return (g) => [wrap(native.embeddingBackward(g.h, si.h, V))];
  });
}

/**
 * Rows of x [V, ...] picked by index (int32/int64, any shape) along dim 0: out
 * [...index.shape, ...x.shape[1:]], out[i] = x[index[i]] (torch.index_select on dim 0,
 * with an index of any rank). Differentiable in x: the backward adds each output row's
 * gradient to the row it came from. Runs the embedding kernels (a row gather), on x's device.
 */
export function indexSelect(x: Tensor, index: Tensor): Tensor {
  const op = 'indexSelect';
  const t = f32(x, op, 'x');
  const i = live(index, op, 'index');
  if (i.dtype !== 'int32' && i.dtype !== 'int64') throw new TypeError(`${op}: expected an index of dtype int32 or int64, got ${i.dtype}`);
  if (t.rank < 1) throw new Error(`${op}: expected x of rank >= 1, got a scalar`);
  const rest = t.shape.slice(1) as number[];
  const D = rest.reduce((a, b) => a * b, 1);
  const rows = t.reshape([t.shape[0], D]); // [V, D]
  return embedding(i, rows).reshape([...(i.shape as number[]), ...rest]); // [...index, ...rest]
}

// ---- dropout -----------------------------------------------------------------------------

/**
 * Zeroes each element with probability p and scales the rest by 1 / (1 - p). The
 * mask comes from the global seeded Philox generator (ts.manualSeed makes it
 * reproducible) and is regenerated, not stored, for the backward. Identity when
 * training is false or p is 0.
 */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  const op = 'dropout';
  const t = f32(x, op);
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new RangeError(`${op}: expected p in [0, 1), got ${String(p)}`);
  if (typeof training !== 'boolean') throw new TypeError(`${op}: expected training to be a boolean, got ${typeName(training)}`);
  if (!training || p === 0) return record(wrap(native.alias(t.h)), op, [t], () => (g) => [g]);
  const [h, seed, offset] = native.dropout(t.h, p, true);
  return record(wrap(h), op, [t], () => (g) => [wrap(native.dropoutBackward(g.h, p, seed, offset))]);
}

// ---- losses ------------------------------------------------------------------------------

export type Reduction = 'mean' | 'sum' | 'none';

function lossOp(kind: 'mse' | 'l1', op: string, a: Tensor, b: Tensor, reduction: Reduction): Tensor {
  const x = f32(a, op, 'input'), y = f32(b, op, 'target');
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none')
    throw new TypeError(`${op}: expected reduction 'mean', 'sum' or 'none', got ${typeName(reduction)} ${String(reduction)}`);
  const out = wrap(native.loss(kind, x.h, y.h, reduction));
  return record(out, op, [x, y], (save) => {
    const sx = save(x), sy = save(y);
    return (g) => native.lossBackward(kind, g.h, sx.h, sy.h, reduction).map(wrap);
  });
}

/** Mean squared error (a - b)^2, reduced by 'mean' (default), 'sum' or 'none'. */
export function mseLoss(a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor {
  return lossOp('mse', 'mseLoss', a, b, reduction);
}

/** Mean absolute error |a - b|, reduced by 'mean' (default), 'sum' or 'none'. */
export function l1Loss(a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor {
  return lossOp('l1', 'l1Loss', a, b, reduction);
}

/**
 * KL divergence of the diagonal Gaussian N(mean, exp(logvar)) from N(0, I), for a
 * VAE posterior. Exact reduction: summed over every element, divided by the batch
 * size B = mean.shape[0]:  0.5 * sum(mean^2 + exp(logvar) - 1 - logvar) / B.
 * Returns a scalar (shape []).
 */
export function gaussianKL(mean: Tensor, logvar: Tensor): Tensor {
  const op = 'gaussianKL';
  const m = f32(mean, op, 'mean'), lv = f32(logvar, op, 'logvar');
  const out = wrap(native.gaussianKL(m.h, lv.h));
  return record(out, op, [m, lv], (save) => {
    const sm = save(m), sl = save(lv);
    return (g) => native.gaussianKLBackward(g.h, sm.h, sl.h).map(wrap);
  });
}

// ---- nearest upsampling ------------------------------------------------------------------

export interface InterpolateOptions {
  /** Integer factors [t, h, w] (or one integer for all three). */
  scaleFactor: number[] | number;
  mode?: 'nearest';
}

/** Upsamples x [B, C, T, H, W] by integer factors, copying each value into its block. */
export function interpolate(x: Tensor, opts: InterpolateOptions): Tensor {
  const op = 'interpolate';
  const t = f32(x, op);
  if (opts === null || typeof opts !== 'object')
    throw new TypeError(`${op}: expected options { scaleFactor: [t, h, w], mode: 'nearest' }, got ${typeName(opts)}`);
  const mode = opts.mode ?? 'nearest';
  if (mode !== 'nearest') throw new Error(`${op}: expected mode 'nearest' (the only mode supported), got '${String(mode)}'`);
  const scale = tripleArg(opts.scaleFactor, op, 'scaleFactor', '[t, h, w]', true);
  const out = wrap(native.interpolateNearest(t.h, scale));
  return record(out, op, [t], () => (g) => [wrap(native.interpolateNearestBackward(g.h, scale))]);
}

// ---- spacetime patches -------------------------------------------------------------------

/**
 * Cuts x [B, C, T, H, W] into patches [pt, ph, pw] -> tokens [B, N, C*pt*ph*pw] with
 * N = (T/pt)(H/ph)(W/pw): tokens in (t, h, w) row-major order, features in
 * (c, pt, ph, pw) order (x.reshape(B,C,T',pt,H',ph,W',pw).permute(0,2,4,6,1,3,5,7)).
 */
export function patchify(x: Tensor, patch: number[]): Tensor {
  const op = 'patchify';
  const t = f32(x, op);
  const p = tripleArg(patch, op, 'patch', '[pt, ph, pw]');
  const out = wrap(native.patchify(t.h, p));
  const [, C, T, H, W] = t.shape; // rank 5: the native op checked
  const grid = [T / p[0], H / p[1], W / p[2]];
  return record(out, op, [t], () => (g) => [wrap(native.unpatchify(g.h, C, grid, p))]);
}

export interface UnpatchifyOptions {
  channels: number;
  /** Patches along T, H, W: [T', H', W']. */
  grid: number[];
  patch: number[];
}

/** The exact inverse of patchify: tokens [B, T'H'W', C*pt*ph*pw] -> [B, C, T'pt, H'ph, W'pw]. */
export function unpatchify(tokens: Tensor, opts: UnpatchifyOptions): Tensor {
  const op = 'unpatchify';
  const t = f32(tokens, op, 'tokens');
  if (opts === null || typeof opts !== 'object')
    throw new TypeError(`${op}: expected options { channels, grid: [T', H', W'], patch: [pt, ph, pw] }, got ${typeName(opts)}`);
  const C = intArg(opts.channels, op, 'channels');
  const grid = tripleArg(opts.grid, op, 'grid', "[T', H', W']");
  const p = tripleArg(opts.patch, op, 'patch', '[pt, ph, pw]');
  const out = wrap(native.unpatchify(t.h, C, grid, p));
  return record(out, op, [t], () => (g) => [wrap(native.patchify(g.h, p))]);
}
