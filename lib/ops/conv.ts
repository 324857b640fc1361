// F.conv3d: 3D convolution in PyTorch layouts, with causal temporal padding.
//   x [B, Cin, T, H, W], weight [Cout, Cin, kt, kh, kw], bias [Cout] -> [B, Cout, T', H', W']
// Shapes are validated natively (one place); argument types here. Forward and the
// three gradients (dinp, dweight, dbias) are native kernels (native/cpu/conv3d.cc).
import { native } from '../native';
import { Tensor, typeName } from '../tensor';
import { f32, record, wrap } from './basic';
import { Triple, triple } from '../checks';

export type { Triple };

export interface Conv3dOptions {
  /** Step of the kernel over [t, h, w]; a number applies to all three. Default 1. */
  stride?: number | Triple;
  /**
   * Zero (or replicate) padding on both sides of [t, h, w]; a number applies to all
   * three, except with `causal`, where a number pads H and W only. Default 0.
   */
  padding?: number | Triple;
  /**
   * Pads kt - 1 frames before the first frame and none after, so output frame i
   * sees input frames <= i (for stride 1, T' = T). The temporal padding is then set
   * by causal: a [t, h, w] padding must have t = 0.
   */
  causal?: boolean;
  /** What padded positions hold: zeros, or copies of the nearest edge element (every padded dim). */
  paddingMode?: 'zeros' | 'replicate';
}

/** 3D convolution (no groups, no dilation). See Conv3dOptions for padding and causality. */
export function conv3d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv3dOptions = {}): Tensor {
  const xt = f32(x, 'conv3d', 'input'), w = f32(weight, 'conv3d', 'weight');
  const b = bias === undefined || bias === null ? null : f32(bias, 'conv3d', 'bias');
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new TypeError(`conv3d: expected options to be an object, got ${typeName(opts)}`);
  const causal = opts.causal ?? false;
  if (typeof causal !== 'boolean')
    throw new TypeError(`conv3d: expected causal to be a boolean, got ${typeName(causal)}`);
  const mode = opts.paddingMode ?? 'zeros';
  if (mode !== 'zeros' && mode !== 'replicate')
    throw new TypeError(
      `conv3d: expected paddingMode 'zeros' or 'replicate', got ${typeof mode === 'string' ? `'${mode}'` : typeName(mode)}`,
    );
  const stride = triple('conv3d', 'stride', opts.stride ?? 1);
  const pad = opts.padding ?? 0;
  // With causal, the temporal padding is set by causal itself: a number pads H and W only.
  const padding: Triple = causal && typeof pad === 'number' ? [0, ...triple('conv3d', 'padding', pad, 0).slice(1)] as Triple : triple('conv3d', 'padding', pad, 0);

  const out = wrap(native.conv3d(xt.h, w.h, b ? b.h : undefined, stride, padding, causal, mode));
  return record(out, 'conv3d', [xt, w, b], (save, needs) => {
    const sx = save(xt), sw = save(w); // both give the geometry; x feeds dweight, weight feeds dinp
    return (g) => {
      const [dx, dw, db] = native.conv3dBackward(g.h, sx.h, sw.h, stride, padding, causal, mode, [
        needs[0], needs[1], needs[2],
      ]);
      return [dx ? wrap(dx) : null, dw ? wrap(dw) : null, db ? wrap(db) : null];
    };
  });
}
