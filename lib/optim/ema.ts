// Exponential moving average of a model's weights (the weights DiT samples with):
//   shadow = decay * shadow + (1 - decay) * param
// after each optimizer step. The shadow covers the whole state dict: floating
// entries are averaged, others (integer buffers) are copied.
import { noGrad } from '../autograd/node';
import { Module, StateDict } from '../nn/module';
import { shapeStr } from '../ops/basic';
import { native } from '../native';
import { Tensor, tidy, typeName } from '../tensor';
import { ownedClone } from './optimizer';

export interface EMAStateDict {
  decay: number;
  numUpdates: number;
  shadow: Record<string, Tensor>;
}

const FLOATING = new Set(['float32', 'float64', 'float16', 'bfloat16']);

function checkDecay(decay: unknown): number {
  if (typeof decay !== 'number' || !(decay >= 0 && decay <= 1)) throw new RangeError(`EMA: expected decay in [0, 1], got ${String(decay)}`);
  return decay;
}

export class EMA {
  decay: number;
  numUpdates = 0;
  private readonly shadow = new Map<string, Tensor>();

  /** Starts the average at the model's current weights. */
  constructor(readonly model: Module, decay = 0.9999) {
    if (!(model instanceof Module)) throw new TypeError(`EMA: expected a Module, got ${typeName(model)}`);
    this.decay = checkDecay(decay);
    for (const [k, t] of Object.entries(model.stateDict())) this.shadow.set(k, ownedClone(t));
  }

  /** Folds the model's current weights into the average. */
  update(): void {
    const sd = this.model.stateDict();
    const d = this.decay;
    noGrad(() =>
      tidy(() => {
        // float32 shadows of float32 weights on the shadows' device: one native call for
        // all of them; other dtypes op by op below.
        const fast: [Tensor, Tensor][] = [];
        for (const [k, s] of this.shadow) {
          const p = sd[k];
          if (!p) throw new Error(`EMA.update: the model no longer has '${k}'`);
          if (s.dtype === 'float32' && p.dtype === 'float32' && s.isContiguous() && p.device === s.device) {
            fast.push([s, p]);
          } else if (FLOATING.has(s.dtype) && FLOATING.has(p.dtype)) {
            // Averaged in float32 (the math dtype); copy_ rounds back to the shadow's dtype.
            const s32 = s.dtype === 'float32' ? s : s.to('float32'), p32 = p.dtype === 'float32' ? p : p.to('float32');
            s.copy_(s32.mul(d).add(p32.mul(1 - d)));
          } else {
            s.copy_(p);
          }
        }
        const byDevice = new Map<string, [Tensor, Tensor][]>();
        for (const pair of fast) {
          const list = byDevice.get(pair[0].device);
          if (list) list.push(pair);
          else byDevice.set(pair[0].device, [pair]);
        }
        for (const pairs of byDevice.values()) native.emaUpdate(pairs.map(([s]) => s.h), pairs.map(([, p]) => p.h), d);
      }),
    );
    this.numUpdates++;
  }

  /** Loads the averaged weights into a model (the same architecture). */
  copyTo(model: Module): void {
    model.loadStateDict(this.shadow);
  }

  /** decay, numUpdates and the shadow tensors (the EMA's own: do not dispose). */
  stateDict(): EMAStateDict {
    return { decay: this.decay, numUpdates: this.numUpdates, shadow: Object.fromEntries(this.shadow) };
  }

  loadStateDict(sd: EMAStateDict): void {
    if (sd === null || typeof sd !== 'object' || sd.shadow === null || typeof sd.shadow !== 'object')
      throw new TypeError(`EMA.loadStateDict: expected { decay, numUpdates, shadow }, got ${typeName(sd)}`);
    const problems: string[] = [];
    for (const [k, s] of this.shadow) {
      const t = sd.shadow[k];
      if (!(t instanceof Tensor)) problems.push(`missing '${k}'`);
      else if (t.shape.length !== s.shape.length || t.shape.some((v, i) => v !== s.shape[i]))
        problems.push(`'${k}': expected shape ${shapeStr(s.shape)}, got ${shapeStr(t.shape)}`);
    }
    for (const k of Object.keys(sd.shadow)) if (!this.shadow.has(k)) problems.push(`unexpected '${k}'`);
    if (problems.length) throw new Error(`EMA.loadStateDict: cannot load the state dict:\n  ${problems.join('\n  ')}`);
    this.decay = checkDecay(sd.decay);
    if (!Number.isInteger(sd.numUpdates) || sd.numUpdates < 0)
      throw new RangeError(`EMA.loadStateDict: expected numUpdates to be an integer >= 0, got ${String(sd.numUpdates)}`);
    this.numUpdates = sd.numUpdates;
    for (const [k, s] of this.shadow) s.copy_(sd.shadow[k]);
  }

  /** Frees the shadow weights. */
  dispose(): void {
    for (const s of this.shadow.values()) s.dispose();
    this.shadow.clear();
  }
}

export type { StateDict };
