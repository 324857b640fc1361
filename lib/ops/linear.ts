// F.linear: y = x W^T + b, x [..., in], W [out, in], b [out].
import { Tensor } from '../tensor';
import { add, f32, matmul, reshape, shapeStr, transpose } from './basic';

export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const xt = f32(x, 'linear', 'input'), w = f32(weight, 'linear', 'weight');
  if (w.rank !== 2) throw new Error(`linear: expected weight of shape [out, in], got ${shapeStr(w.shape)}`);
  if (xt.rank < 1 || xt.shape[xt.rank - 1] !== w.shape[1])
    throw new Error(`linear: input's last dim must equal weight's in features ${w.shape[1]}, got input ${shapeStr(xt.shape)}`);
  // Fold leading dims into rows so forward and both gradients are single GEMMs.
  const lead = xt.shape.slice(0, -1) as number[];
  const x2 = xt.rank === 2 ? xt : reshape(xt, [-1, w.shape[1]]); // [M, in]
  const y2 = matmul(x2, transpose(w, 0, 1)); // [M, out]
  const y = xt.rank === 2 ? y2 : reshape(y2, [...lead, w.shape[0]]); // [..., out]
  if (bias === undefined || bias === null) return y;
  const b = f32(bias, 'linear', 'bias');
  if (b.rank !== 1 || b.shape[0] !== w.shape[0])
    throw new Error(`linear: expected bias of shape [${w.shape[0]}], got ${shapeStr(b.shape)}`);
  return add(y, b);
}
