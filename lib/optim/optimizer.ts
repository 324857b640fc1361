// Optimizer: parameter groups with their own hyperparameters, per-parameter state,
// and a state dict in PyTorch's shape: { state: {index: {...}}, paramGroups: [...] }
// where a parameter's index counts over the groups in order. State tensors are
// owned by the optimizer (untracked by tidy) and freed by dispose().
import { native } from '../native';
import { Module } from '../nn/module';
import { shapeStr } from '../ops/basic';
import { Device, Tensor, typeName } from '../tensor';

export type ParamState = Record<string, Tensor | number>;

/** A group of parameters with hyperparameters that override the optimizer's defaults. */
export type ParamGroupInput<H> = { params: Iterable<Tensor> } & Partial<H>;
export type ParamsInput<H> = Iterable<Tensor> | Module | ParamGroupInput<H>[];

export type ParamGroup<H> = H & {
  params: Tensor[];
  /** The lr the group started with; schedules scale it (setLRScale). */
  initialLr: number;
};

export interface OptimizerStateDict {
  /** Per-parameter state by index (over all groups, in order). */
  state: Record<string, ParamState>;
  /** Each group's hyperparameters and the indices of its parameters. */
  paramGroups: Record<string, unknown>[];
}

/** An untracked copy of t owned by whoever keeps it (optimizer state, EMA shadows). */
export function ownedClone(t: Tensor, device?: Device): Tensor {
  if (device !== undefined && t.device !== device) return new Tensor(native.toDevice(t.h, device), true);
  return new Tensor(native.clone(t.h), true);
}
/** An untracked zero tensor shaped like t (float32 on t's device). */
export function ownedZerosLike(t: Tensor): Tensor {
  return new Tensor(native.full(t.shape as number[], 0, 'float32', t.device), true);
}

export abstract class Optimizer<H extends { lr: number }> {
  readonly paramGroups: ParamGroup<H>[] = [];
  /** Per-parameter state (created lazily at the first step). */
  readonly state = new Map<Tensor, ParamState>();
  protected readonly name: string;

  constructor(params: ParamsInput<H>, readonly defaults: H) {
    this.name = this.constructor.name;
    this.checkHyper(defaults, 'defaults');
    const groups: ParamGroupInput<H>[] =
      params instanceof Module
        ? [{ params: params.parameters() } as unknown as ParamGroupInput<H>]
        : Array.isArray(params) && params.length > 0 && !(params[0] instanceof Tensor)
          ? (params as ParamGroupInput<H>[])
          : [{ params: params as Iterable<Tensor> } as unknown as ParamGroupInput<H>];
    const seen = new Set<Tensor>();
    groups.forEach((g, gi) => {
      if (g === null || typeof g !== 'object' || !g.params || typeof (g.params as Iterable<Tensor>)[Symbol.iterator] !== 'function')
        throw new TypeError(`${this.name}: expected param group ${gi} to be { params, ...options }, got ${typeName(g)}`);
      const list = [...g.params];
      list.forEach((p, i) => {
        if (!(p instanceof Tensor)) throw new TypeError(`${this.name}: group ${gi} param ${i} is not a Tensor (got ${typeName(p)})`);
        if (!p.isLeaf) throw new Error(`${this.name}: group ${gi} param ${i} is not a leaf tensor (optimize leaves, e.g. Parameters)`);
        if (seen.has(p)) throw new Error(`${this.name}: group ${gi} param ${i} appears in more than one place; each parameter may be optimized once`);
        seen.add(p);
      });
      const { params: _p, ...overrides } = g;
      const hyper = { ...defaults, ...overrides } as H;
      this.checkHyper(hyper, `group ${gi}`);
      this.paramGroups.push({ ...hyper, params: list, initialLr: hyper.lr });
    });
    if (seen.size === 0) throw new Error(`${this.name}: got an empty parameter list`);
  }

  /** Validates hyperparameters; subclasses extend it. */
  protected checkHyper(h: H, where: string): void {
    if (typeof h.lr !== 'number' || !Number.isFinite(h.lr) || h.lr < 0)
      throw new RangeError(`${this.name}: expected ${where} lr to be a finite number >= 0, got ${String(h.lr)}`);
  }

  /** One update of every parameter that has a gradient. */
  abstract step(): void;

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const g of this.paramGroups)
      for (const p of g.params) {
        p.grad?.dispose();
        p.grad = null;
      }
  }

  /** Sets each group's lr to its initial lr times scale (what a schedule returns). */
  setLRScale(scale: number): void {
    if (typeof scale !== 'number' || !Number.isFinite(scale) || scale < 0)
      throw new RangeError(`${this.name}.setLRScale: expected a finite scale >= 0, got ${String(scale)}`);
    for (const g of this.paramGroups) g.lr = g.initialLr * scale;
  }

  private indexed(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** Hyperparameters and state; tensors in it are the optimizer's own (do not dispose). */
  stateDict(): OptimizerStateDict {
    const all = this.indexed();
    const state: Record<string, ParamState> = {};
    all.forEach((p, i) => {
      const s = this.state.get(p);
      if (s) state[String(i)] = { ...s };
    });
    let at = 0;
    const paramGroups = this.paramGroups.map(({ params, ...hyper }) => {
      const idx = params.map((_, k) => at + k);
      at += params.length;
      return { ...hyper, params: idx } as Record<string, unknown>;
    });
    return { state, paramGroups };
  }

  /**
   * Restores hyperparameters and state saved by stateDict() from an optimizer over
   * parameters of the same shapes in the same order. State tensors are copied.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const op = `${this.name}.loadStateDict`;
    if (sd === null || typeof sd !== 'object' || !Array.isArray(sd.paramGroups) || sd.state === null || typeof sd.state !== 'object')
      throw new TypeError(`${op}: expected { state, paramGroups }, got ${typeName(sd)}`);
    const sizes = this.paramGroups.map((g) => g.params.length);
    const got = sd.paramGroups.map((g) => (Array.isArray(g?.params) ? (g.params as unknown[]).length : -1));
    if (sizes.length !== got.length || sizes.some((n, i) => n !== got[i]))
      throw new Error(`${op}: expected ${sizes.length} param groups of sizes [${sizes.join(', ')}], got ${got.length} of sizes [${got.join(', ')}]`);
    const all = this.indexed();
    const problems: string[] = [];
    for (const [k, s] of Object.entries(sd.state)) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= all.length) {
        problems.push(`state for parameter ${k}, which does not exist (${all.length} parameters)`);
        continue;
      }
      for (const [name, v] of Object.entries(s ?? {})) {
        if (v instanceof Tensor) {
          if (v.isDisposed) problems.push(`state ${k}.${name} is a disposed tensor`);
          else if (v.shape.length !== all[i].shape.length || v.shape.some((d, j) => d !== all[i].shape[j]))
            problems.push(`state ${k}.${name}: expected shape ${shapeStr(all[i].shape)}, got ${shapeStr(v.shape)}`);
        } else if (typeof v !== 'number') {
          problems.push(`state ${k}.${name}: expected a Tensor or number, got ${typeName(v)}`);
        }
      }
    }
    if (problems.length) throw new Error(`${op}: cannot load the state dict:\n  ${problems.join('\n  ')}`);
    sd.paramGroups.forEach((g, gi) => {
      const { params: _p, ...hyper } = g;
      this.checkHyper({ ...this.paramGroups[gi], ...hyper } as unknown as H, `group ${gi}`);
    });
    this.disposeState();
    sd.paramGroups.forEach((g, gi) => {
      const { params: _p, ...hyper } = g;
      Object.assign(this.paramGroups[gi], hyper);
    });
    for (const [k, s] of Object.entries(sd.state)) {
      const copy: ParamState = {};
      // State follows its parameter's device (a checkpoint is read on the CPU and may resume anywhere).
      for (const [name, v] of Object.entries(s)) copy[name] = v instanceof Tensor ? ownedClone(v, all[Number(k)].device) : v;
      this.state.set(all[Number(k)], copy);
    }
  }

  /** Frees the state tensors (the optimizer starts fresh at its next step). */
  disposeState(): void {
    for (const s of this.state.values()) for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
    this.state.clear();
  }
  dispose(): void {
    this.disposeState();
  }
}
