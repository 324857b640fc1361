// Gradient clipping by global norm.
import { noGrad } from '../autograd/node';
import { Module } from '../nn/module';
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
      let total = 0;
      for (const g of grads) {
        if (normType === 2) total += g.square().sum().item();
        else total = Math.max(total, g.abs().max().item());
      }
      if (normType === 2) total = Math.sqrt(total);
      const coef = maxNorm / (total + 1e-6);
      if (Number.isFinite(total) && coef < 1) for (const g of grads) g.copy_(g.mul(coef));
      return total;
    }),
  );
}
