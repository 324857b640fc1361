// Basic layers: Linear, activations, containers (Sequential, ModuleList) and the
// transformer MLP. Each is a small Module subclass; see module.ts.
import * as F from '../ops/functional';
import { DType, Device, Tensor, typeName } from '../tensor';
import { defaultLayerInit } from './init';
import { Module, Parameter } from './module';

export interface LayerOptions {
  dtype?: DType;
  device?: Device;
}

function features(v: unknown, cls: string, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw new TypeError(`${cls}: expected ${what} to be a non-negative integer, got ${typeName(v)} ${String(v)}`);
  return v;
}

/** y = x W^T + b; weight [out, in], bias [out]; PyTorch's default init. */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(inFeatures: number, outFeatures: number, opts: LayerOptions & { bias?: boolean } = {}) {
    super();
    this.inFeatures = features(inFeatures, 'Linear', 'inFeatures');
    this.outFeatures = features(outFeatures, 'Linear', 'outFeatures');
    const o = { dtype: opts.dtype, device: opts.device };
    this.weight = this.registerParameter('weight', Parameter.zeros([outFeatures, inFeatures], o));
    this.bias = this.registerParameter('bias', opts.bias === false ? null : Parameter.zeros([outFeatures], o));
    this.resetParameters();
  }

  resetParameters(): void {
    defaultLayerInit(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias); // [..., out]
  }

  extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return F.silu(x);
  }
}

export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';
  constructor(opts: { approximate?: 'none' | 'tanh' } = {}) {
    super();
    this.approximate = opts.approximate ?? 'none';
    if (this.approximate !== 'none' && this.approximate !== 'tanh')
      throw new TypeError(`GELU: expected approximate 'none' or 'tanh', got '${String(this.approximate)}'`);
  }
  forward(x: Tensor): Tensor {
    return F.gelu(x, { approximate: this.approximate });
  }
  extraRepr(): string {
    return `approximate='${this.approximate}'`;
  }
}

/** A list of submodules named '0', '1', ... (PyTorch's ModuleList). */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  private readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  get length(): number {
    return this.items.length;
  }
  /** The module at index i (negative counts from the end). */
  at(i: number): M {
    const k = i < 0 ? i + this.items.length : i;
    if (!Number.isInteger(k) || k < 0 || k >= this.items.length)
      throw new RangeError(`${this.constructor.name}: index ${i} is out of range for ${this.items.length} modules`);
    return this.items[k];
  }
  append(m: M): this {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }
  extend(ms: Iterable<M>): this {
    for (const m of ms) this.append(m);
    return this;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/** Runs its modules in order, each on the previous one's output. */
export class Sequential extends ModuleList {
  constructor(...modules: Module[]) {
    super(modules);
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  forward(x: any): any {
    for (const m of this) x = m.forward(x);
    return x;
  }
}

export interface MLPOptions extends LayerOptions {
  hiddenFeatures?: number;
  outFeatures?: number;
  /** The activation between the layers (default GELU with the tanh approximation, as in DiT). */
  act?: () => Module;
  bias?: boolean;
}

/** fc1 -> act -> fc2, named like timm's Mlp so DiT/ViT weights load. */
export class MLP extends Module {
  readonly fc1: Linear;
  readonly act: Module;
  readonly fc2: Linear;

  constructor(inFeatures: number, opts: MLPOptions = {}) {
    super();
    const hidden = opts.hiddenFeatures ?? inFeatures;
    const out = opts.outFeatures ?? inFeatures;
    const lin = { bias: opts.bias, dtype: opts.dtype, device: opts.device };
    this.fc1 = this.registerModule('fc1', new Linear(inFeatures, hidden, lin));
    this.act = this.registerModule('act', opts.act ? opts.act() : new GELU({ approximate: 'tanh' }));
    this.fc2 = this.registerModule('fc2', new Linear(hidden, out, lin));
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act.forward(this.fc1.forward(x))); // [..., in] -> [..., hidden] -> [..., out]
  }
}
