// Gradient clipping by global norm, on the gradients' device: nothing is read back, so
// a training step on a GPU clips without a host sync (read the returned norm when you
// log it).
import { noGrad } from '../autograd/node';
import { Module } from '../nn/module';
import { native } from '../native';
import { stack, wrap } from '../ops/basic';
import { Tensor, tidy } from '../tensor';
import { typeName } from '../checks';

/**
 * Scales the gradients of params so that their global norm (the norm of all gradients
 * as one vector) is at most maxNorm, in place; returns the norm before clipping as a
 * float32 scalar tensor on the gradients' device (0 without gradients). normType 2
 * (Euclidean) or Infinity. A non-finite norm leaves the gradients untouched (and is
 * returned, so the caller can skip the step).
 */
export function clipGradNorm(params: Iterable<Tensor> | Module, maxNorm: number, opts: { normType?: number } = {}): Tensor {
  const normType = opts.normType ?? 2;
  if (typeof maxNorm !== 'number' || !(maxNorm >= 0) || !Number.isFinite(maxNorm)) throw new RangeError(`clipGradNorm: expected a finite maxNorm >= 0, got ${String(maxNorm)}`);
  if (normType !== 2 && normType !== Infinity) throw new RangeError(`clipGradNorm: expected normType 2 or Infinity, got ${String(normType)}`);
  const list = params instanceof Module ? params.parameters() : [...params];
  const grads: Tensor[] = [];
  for (const p of list) {
    if (!(p instanceof Tensor)) throw new TypeError(`clipGradNorm: expected tensors, got ${typeName(p)}`);
    if (p.grad && !p.grad.isDisposed && p.grad.numel > 0) grads.push(p.grad);
  }
  const device = grads.length ? grads[0].device : list.find((p) => p instanceof Tensor && !p.isDisposed)?.device ?? 'cpu';
  for (const g of grads)
    if (g.device !== device) throw new Error(`clipGradNorm: expected every gradient on one device, got ${device} and ${g.device}`);
  return noGrad(() =>
    tidy(() => {
      if (!grads.length) return wrap(native.full([], 0, 'float32', device));
      // float32 contiguous gradients (all that autograd makes) are clipped in place by one
      // native call; others through a float32 copy.
      const dense = grads.filter((g) => g.dtype === 'float32' && g.isContiguous());
      const other = grads.filter((g) => !dense.includes(g));
      const copies = other.map((g) => g.to('float32').contiguous());
      const all = [...dense, ...copies];
      let sumsq: Tensor; // float64 [1]
      if (normType === 2) {
        sumsq = wrap(native.sumOfSquares(all.map((g) => g.h)));
      } else {
        const m = stack(all.map((g) => g.abs().max())).max(); // float32 []
        sumsq = m.square().to('float64').reshape([1]);
      }
      native.clipByNorm_(all.map((g) => g.h), sumsq.h, maxNorm);
      other.forEach((g, i) => g.copy_(copies[i]));
      return sumsq.to('float32').sqrt().reshape([]); // the norm before clipping
    }),
  );
}
