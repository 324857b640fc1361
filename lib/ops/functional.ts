// F: the functional op namespace (ts.F.layerNorm, ts.F.conv3d, ...). Each family
// lives in its own module under lib/ops/ and is re-exported here.
import { Tensor } from '../tensor';
import { f32, unaryOp } from './basic';

export { relu, sigmoid, tanh } from './basic';

/** x * sigmoid(x). */
export function silu(x: Tensor): Tensor {
  return unaryOp('silu', f32(x, 'silu'), 'silu');
}

/** GELU, exact (erf) or the tanh approximation. */
export function gelu(x: Tensor, opts: { approximate?: 'none' | 'tanh' } = {}): Tensor {
  const approx = opts.approximate ?? 'none';
  if (approx !== 'none' && approx !== 'tanh')
    throw new TypeError(`gelu: expected approximate 'none' or 'tanh', got '${String(approx)}'`);
  return unaryOp(approx === 'tanh' ? 'gelu_tanh' : 'gelu', f32(x, 'gelu'), 'gelu');
}

export { linear } from './linear';
export * from './nn';
export { scaledDotProductAttention } from './attention';
export type { AttentionOptions } from './attention';
export { conv3d, type Conv3dOptions } from './conv';
export { groupNormSiLU, layerNormModulate } from './fused';
