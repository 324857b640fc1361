// F.groupNormSiLU and F.layerNormModulate: the norm + activation / modulation pairs
// the models run back to back, each one native kernel per direction (the input is read
// once and the output written once; the backward recomputes the intermediate).
//   groupNormSiLU(x [B, C, ...], G, weight [C]?, bias [C]?, eps) = silu(groupNorm(...))
//   layerNormModulate(x [B, N, D], shift [B, D], scale [B, D], eps)
//     = layerNorm(x over D, no affine) * (1 + scale[:, None]) + shift[:, None]
// Argument types are checked here (errors name the op); shapes natively.
import { Handle, native } from '../native';
import { Tensor, typeName } from '../tensor';
import { f32, record, wrap } from './basic';

function optF32(v: unknown, op: string, what: string): Tensor | null {
  return v === undefined || v === null ? null : f32(v, op, what);
}

function epsArg(v: unknown, op: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new TypeError(`${op}: expected eps to be a finite number, got ${typeName(v)} ${String(v)}`);
  return v;
}

/** Runs fn with the native mean/rstd handles as untracked tensors, then frees them (a backward keeps its own alias). */
function withStats<T>(hs: Handle[], fn: (stats: Tensor[]) => T): T {
  const stats = hs.map((h) => new Tensor(h, true));
  try {
    return fn(stats);
  } finally {
    for (const s of stats) s.dispose();
  }
}

/**
 * silu(groupNorm(x, numGroups, weight, bias, eps)) in one pass: x [B, C, ...] with C
 * divisible by numGroups; weight and bias [C] or null. The VAE ResNet block's norm + act.
 * opts.perFrame: x [B, C, T, ...] is normalized frame by frame (groups per (b, t): a causal
 * video VAE's norm, exact under temporal chunking), without rearranging x in memory.
 */
export function groupNormSiLU(
  x: Tensor,
  numGroups: number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
  opts: { perFrame?: boolean } = {},
): Tensor {
  const op = 'groupNormSiLU';
  const t = f32(x, op);
  const perFrame = opts.perFrame ?? false;
  if (typeof perFrame !== 'boolean') throw new TypeError(`${op}: expected perFrame to be a boolean, got ${typeName(perFrame)}`);
  if (typeof numGroups !== 'number' || !Number.isInteger(numGroups))
    throw new TypeError(`${op}: expected numGroups to be an integer, got ${typeName(numGroups)} ${String(numGroups)}`);
  const w = optF32(weight, op, 'weight'), b = optF32(bias, op, 'bias');
  const e = epsArg(eps, op);
  const [ho, hm, hr] = native.groupNormSiLU(t.h, numGroups, w ? w.h : null, b ? b.h : null, e, perFrame);
  const out = wrap(ho);
  return withStats([hm, hr], ([mean, rstd]) =>
    record(out, op, [t, w, b], (save) => {
      const sx = save(t), sw = w ? save(w) : null, sb = b ? save(b) : null, sm = save(mean), sr = save(rstd);
      return (g) => {
        const [dx, dw, db] = native.groupNormSiLUBackward(g.h, sx.h, sw ? sw.h : null, sb ? sb.h : null, sm.h, sr.h, numGroups, perFrame);
        return [wrap(dx), dw ? wrap(dw) : null, db ? wrap(db) : null];
      };
    }),
  );
}

/**
 * DiT's adaLN input: layerNorm(x, [D], no affine, eps) * (1 + scale[:, None]) +
 * shift[:, None] in one pass; x [B, N, D], shift and scale [B, D]. Default eps 1e-6 (DiT's).
 */
export function layerNormModulate(x: Tensor, shift: Tensor, scale: Tensor, eps = 1e-6): Tensor {
  const op = 'layerNormModulate';
  const t = f32(x, op, 'x'), sh = f32(shift, op, 'shift'), sc = f32(scale, op, 'scale');
  const e = epsArg(eps, op);
  const [ho, hm, hr] = native.layerNormModulate(t.h, sh.h, sc.h, e);
  const out = wrap(ho);
  return withStats([hm, hr], ([mean, rstd]) =>
    record(out, op, [t, sh, sc], (save) => {
      const sx = save(t), ss = save(sc), sm = save(mean), sr = save(rstd);
      return (g) => native.layerNormModulateBackward(g.h, sx.h, ss.h, sm.h, sr.h).map(wrap);
    }),
  );
}
