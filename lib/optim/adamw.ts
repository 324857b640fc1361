// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"): Adam with
// bias-corrected moments and weight decay applied to the weights, not the gradient.
// Each parameter is updated by one fused native kernel pass (param, m, v in place)
// with torch.optim.AdamW's operation order, so results track PyTorch's closely.
import { native } from '../native';
import { Tensor } from '../tensor';
import { Optimizer, ownedZerosLike, ParamsInput } from './optimizer';

export interface AdamWHyper {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}
export type AdamWOptions = Partial<AdamWHyper>;

export class AdamW extends Optimizer<AdamWHyper> {
  /** Defaults as in PyTorch: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 1e-2. */
  constructor(params: ParamsInput<AdamWHyper>, opts: AdamWOptions = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, ...opts });
  }

  protected checkHyper(h: AdamWHyper, where: string): void {
    super.checkHyper(h, where);
    const b = h.betas;
    if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => typeof x === 'number' && x >= 0 && x < 1))
      throw new RangeError(`AdamW: expected ${where} betas to be two numbers in [0, 1), got ${JSON.stringify(b)}`);
    if (typeof h.eps !== 'number' || !Number.isFinite(h.eps) || h.eps < 0)
      throw new RangeError(`AdamW: expected ${where} eps to be a finite number >= 0, got ${String(h.eps)}`);
    if (typeof h.weightDecay !== 'number' || !Number.isFinite(h.weightDecay) || h.weightDecay < 0)
      throw new RangeError(`AdamW: expected ${where} weightDecay to be a finite number >= 0, got ${String(h.weightDecay)}`);
  }

  step(): void {
    for (const g of this.paramGroups)
      for (const p of g.params) {
        const grad = p.grad;
        if (!grad || grad.isDisposed) continue;
        let s = this.state.get(p);
        if (!s) {
          s = { step: 0, exp_avg: ownedZerosLike(p), exp_avg_sq: ownedZerosLike(p) };
          this.state.set(p, s);
        }
        const step = (s.step as number) + 1;
        native.adamwStep(p.h, (s.exp_avg as Tensor).h, (s.exp_avg_sq as Tensor).h, grad.h, g.lr, g.betas[0], g.betas[1], g.eps,
          g.weightDecay, step);
        s.step = step;
      }
  }
}
