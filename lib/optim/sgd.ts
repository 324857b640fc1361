// SGD with momentum (PyTorch's formulation): with weight decay wd (added to the
// gradient, coupled), momentum mu, dampening d:
//   g' = g + wd*p;  buf = g' (first step) or mu*buf + (1-d)*g';
//   step = nesterov ? g' + mu*buf : buf;  p -= lr * step
import { noGrad } from '../autograd/node';
import { Tensor, tidy } from '../tensor';
import { Optimizer, ownedClone, ParamsInput } from './optimizer';

export interface SGDHyper {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}
export type SGDOptions = Partial<SGDHyper>;

export class SGD extends Optimizer<SGDHyper> {
  constructor(params: ParamsInput<SGDHyper>, opts: SGDOptions = {}) {
    super(params, { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...opts });
  }

  protected checkHyper(h: SGDHyper, where: string): void {
    super.checkHyper(h, where);
    for (const k of ['momentum', 'dampening', 'weightDecay'] as const)
      if (typeof h[k] !== 'number' || !Number.isFinite(h[k]) || h[k] < 0)
        throw new RangeError(`SGD: expected ${where} ${k} to be a finite number >= 0, got ${String(h[k])}`);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0))
      throw new RangeError(`SGD: nesterov needs momentum > 0 and dampening 0 (${where})`);
  }

  step(): void {
    noGrad(() => {
      for (const g of this.paramGroups)
        for (const p of g.params) {
          const grad = p.grad;
          if (!grad || grad.isDisposed) continue;
          tidy(() => {
            let d: Tensor = g.weightDecay ? grad.add(p.mul(g.weightDecay)) : grad;
            if (g.momentum) {
              const s = this.state.get(p);
              let buf = s?.momentum_buffer as Tensor | undefined;
              if (!buf) {
                buf = ownedClone(d);
                this.state.set(p, { momentum_buffer: buf });
              } else {
                buf.copy_(buf.mul(g.momentum).add(d.mul(1 - g.dampening)));
              }
              d = g.nesterov ? d.add(buf.mul(g.momentum)) : buf;
            }
            p.copy_(p.add(d.mul(-g.lr)));
          });
        }
    });
  }
}
