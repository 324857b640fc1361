// Gradient clipping by global norm.
import { noGrad } from '../autograd/node';
import { Module } from '../nn/module';
import { native } from '../native';
import { Tensor, tidy, typeName } from '../tensor';

/**
 * Scales the gradients of params so that their global norm (the norm of all
 * gradients as one vector) is at most maxNorm; returns the norm before clipping.
 * normType 2 (Euclidean) or Infinity. A non-finite norm leaves the gradients
 * untouched (and is returned, so the caller can skip the step).
 */
export function clipGradNorm(params: Iterable<Tensor> | Module, maxNorm: number, opts: { normType?: number } = {}): number {
  const normType = opts.normType ?? 2;
  if (typeof maxNorm !== 'number' || !(maxNorm >= 0)) throw new RangeError(`clipGradNorm: expected maxNorm >= 0, got ${String(maxNorm)}`);
  if (normType !== 2 && normType !== Infinity) throw new RangeError(`clipGradNorm: expected normType 2 or Infinity, got ${String(normType)}`);
  const list = params instanceof Module ? params.parameters() : [...params];
  const grads: Tensor[] = [];
  for (const p of list) {
    if (!(p instanceof Tensor)) throw new TypeError(`clipGradNorm: expected tensors, got ${typeName(p)}`);
    if (p.grad && !p.grad.isDisposed && p.grad.numel > 0) grads.push(p.grad);
  }
  if (!grads.length) return 0;
  return noGrad(() =>
    tidy(() => {
      // float32 gradients (all that autograd makes) go through one native call for the
      // norm and one for the scaling, on each device; others op by op.
      const fast = grads.filter((g) => g.dtype === 'float32' && g.device === grads[0].device);
      const slow = grads.filter((g) => !fast.includes(g));
      let total = 0;
      if (normType === 2) {
        total = native.sumOfSquares(fast.map((g) => g.h));
        for (const g of slow) total += g.to('float32').square().sum().item();
        total = Math.sqrt(total);
      } else {
        for (const g of grads) total = Math.max(total, g.abs().max().item());
      }
      const coef = maxNorm / (total + 1e-6);
      if (Number.isFinite(total) && coef < 1) {
        const dense = fast.filter((g) => g.isContiguous());
        native.scale_(dense.map((g) => g.h), coef);
        for (const g of grads) if (!dense.includes(g)) g.copy_(g.mul(coef));
      }
      return total;
    }),
  );
}
