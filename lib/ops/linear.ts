// F.linear: y = x W^T + b, x [..., in], W [out, in], b [out] (nn.Linear): one native
// GEMM whose output tiles start from the bias; the backward is one native call too
// (dx = g W, dW = g^T x over all leading dims, db = g summed over them).
import { native } from '../native';
import { Tensor } from '../tensor';
import { f32, record, shapeStr, wrap } from './basic';

export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const xt = f32(x, 'linear', 'input'), w = f32(weight, 'linear', 'weight');
  if (w.rank !== 2) throw new Error(`linear: expected weight of shape [out, in], got ${shapeStr(w.shape)}`);
  if (xt.rank < 1 || xt.shape[xt.rank - 1] !== w.shape[1])
    throw new Error(`linear: input's last dim must equal weight's in features ${w.shape[1]}, got input ${shapeStr(xt.shape)}`);
  const b = bias === undefined || bias === null ? null : f32(bias, 'linear', 'bias');
  if (b && (b.rank !== 1 || b.shape[0] !== w.shape[0]))
    throw new Error(`linear: expected bias of shape [${w.shape[0]}], got ${shapeStr(b.shape)}`);
  const out = wrap(native.linear(xt.h, w.h, b ? b.h : null));
  return record(out, 'linear', [xt, w, b], (save, needs) => {
    const sx = save(xt), sw = save(w);
    return (g) => {
      const [dx, dw, db] = native.linearBackward(g.h, sx.h, sw.h, needs[0], needs[1], needs[2]);
      return [dx === null ? null : wrap(dx), dw === null ? null : wrap(dw), db === null ? null : wrap(db)];
    };
  });
}
