// Module: the base of every layer and model. A module owns registered parameters
// (trainable leaf tensors), buffers (non-trainable state saved with the weights)
// and submodules, and names them the way PyTorch does ('blocks.3.attn.qkv.weight'),
// so state dicts interoperate with PyTorch checkpoints through safetensors.
//
// A layer is a small subclass: register what it owns in the constructor, write
// forward(). Registered names may differ from the TypeScript field names, so a
// camelCase field can carry a PyTorch name ('x_embedder'):
//   class Linear extends Module {
//     readonly weight = this.registerParameter('weight', zeros([out, inF]));
//     forward(x: Tensor): Tensor { return F.linear(x, this.weight); }
//   }
import { noGrad } from '../autograd/node';
import { full, zeros } from '../creation';
import { native } from '../native';
import { live, shapeStr } from '../ops/basic';
import { DType, Device, DTYPES, Tensor, typeName } from '../tensor';
import { isDeviceName } from '../checks';

/** A trainable leaf tensor owned by a module (not by any tidy scope). */
export class Parameter extends Tensor {
  /** Wraps data's values (shared storage, no copy) as a leaf; data itself stays the caller's. */
  constructor(data: Tensor, requiresGrad = true) {
    const t = live(data, 'Parameter', 'data');
    super(native.alias(t.h), true);
    if (requiresGrad) this.requiresGrad_(true);
  }

  /** A zero-filled parameter (layers fill it with their init), with no temporary left behind. */
  static zeros(shape: number[], opts: { dtype?: DType; device?: Device; requiresGrad?: boolean } = {}): Parameter {
    const t = zeros(shape, { dtype: opts.dtype, device: opts.device });
    const p = new Parameter(t, opts.requiresGrad ?? true);
    t.dispose();
    return p;
  }

  /** A parameter filled with ones (norm weights). */
  static ones(shape: number[], opts: { dtype?: DType; device?: Device; requiresGrad?: boolean } = {}): Parameter {
    const t = full(shape, 1, { dtype: opts.dtype, device: opts.device });
    const p = new Parameter(t, opts.requiresGrad ?? true);
    t.dispose();
    return p;
  }
}

export type StateDict = Record<string, Tensor>;
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

const FLOATING: readonly string[] = ['float32', 'float64', 'float16', 'bfloat16'];
const LIST_LIMIT = 20;

function listStr(items: string[]): string {
  const shown = items.slice(0, LIST_LIMIT).join(', ');
  return items.length > LIST_LIMIT ? `${shown}, ... and ${items.length - LIST_LIMIT} more` : shown;
}

/** An untracked handle on t's values (survives the caller's tidy). */
function own(t: Tensor): Tensor {
  return t instanceof Parameter ? t : new Tensor(native.alias(t.h), true);
}

export class Module {
  /** Training mode (dropout active, ...); set with train() / eval(). */
  training = true;
  private readonly _parameters = new Map<string, Parameter | null>();
  private readonly _buffers = new Map<string, Tensor | null>();
  private readonly _nonPersistent = new Set<string>();
  private readonly _modules = new Map<string, Module | null>();

  /** The computation; each layer defines it with its own signature. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  forward(..._args: any[]): any {
    throw new Error(`${this.constructor.name}: forward() is not implemented`);
  }

  // ---- registration -------------------------------------------------------------------

  private checkName(name: unknown, kind: string): string {
    const cls = this.constructor.name;
    if (typeof name !== 'string' || name === '') throw new TypeError(`${cls}: expected a non-empty ${kind} name, got ${typeName(name)}`);
    if (name.includes('.')) throw new Error(`${cls}: ${kind} name '${name}' must not contain '.'`);
    const taken =
      (kind !== 'parameter' && this._parameters.has(name) && 'parameter') ||
      (kind !== 'buffer' && this._buffers.has(name) && 'buffer') ||
      (kind !== 'module' && this._modules.has(name) && 'submodule');
    if (taken) throw new Error(`${cls}: cannot register ${kind} '${name}': a ${taken} of that name exists`);
    return name;
  }

  /**
   * Registers a parameter and returns it. A plain tensor is wrapped in a Parameter
   * (sharing its storage); null declares an absent parameter (e.g. no bias).
   */
  registerParameter<T extends Tensor | null>(name: string, value: T): T extends null ? null : Parameter {
    this.checkName(name, 'parameter');
    let p: Parameter | null = null;
    if (value !== null) {
      const t = live(value, `${this.constructor.name}.registerParameter`, `parameter '${name}'`);
      p = t instanceof Parameter ? t : new Parameter(t);
    }
    this._parameters.set(name, p);
    return p as T extends null ? null : Parameter;
  }

  /**
   * Registers a buffer (state that is not trained, e.g. fixed positional embeddings)
   * and returns the module's own handle on it. Persistent buffers are part of the
   * state dict.
   */
  registerBuffer<T extends Tensor | null>(name: string, value: T, opts: { persistent?: boolean } = {}): T {
    this.checkName(name, 'buffer');
    const t = value === null ? null : own(live(value, `${this.constructor.name}.registerBuffer`, `buffer '${name}'`));
    this._buffers.set(name, t);
    if (opts.persistent === false) this._nonPersistent.add(name);
    else this._nonPersistent.delete(name);
    return t as T;
  }

  /** Registers a submodule and returns it. */
  registerModule<M extends Module | null>(name: string, module: M): M {
    this.checkName(name, 'module');
    if (module !== null && !(module instanceof Module))
      throw new TypeError(`${this.constructor.name}: expected submodule '${name}' to be a Module, got ${typeName(module)}`);
    this._modules.set(name, module);
    return module;
  }

  // ---- traversal ----------------------------------------------------------------------

  /** Direct submodules with their names. */
  namedChildren(): [string, Module][] {
    return [...this._modules].filter((e): e is [string, Module] => e[1] !== null);
  }
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module and all below it, depth first, each once, with dotted names ('' for this). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (m: Module, p: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([p, m]);
      for (const [n, c] of m.namedChildren()) visit(c, p ? `${p}.${n}` : n);
    };
    visit(this, prefix);
    return out;
  }
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Every parameter with its dotted name; a parameter shared by two modules is listed once. */
  namedParameters(opts: { recurse?: boolean } = {}): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    const seen = new Set<Parameter>();
    const mods: [string, Module][] = opts.recurse === false ? [['', this]] : this.namedModules();
    for (const [p, m] of mods)
      for (const [n, t] of m._parameters)
        if (t && !seen.has(t)) {
          seen.add(t);
          out.push([p ? `${p}.${n}` : n, t]);
        }
    return out;
  }
  parameters(opts: { recurse?: boolean } = {}): Parameter[] {
    return this.namedParameters(opts).map(([, p]) => p);
  }

  /** Every buffer (persistent or not) with its dotted name. */
  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [p, m] of this.namedModules())
      for (const [n, t] of m._buffers)
        if (t && !seen.has(t)) {
          seen.add(t);
          out.push([p ? `${p}.${n}` : n, t]);
        }
    return out;
  }
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  /** The submodule at a dotted path ('blocks.3.attn'). */
  getSubmodule(target: string): Module {
    if (target === '') return this;
    let m: Module = this;
    for (const part of target.split('.')) {
      const c = m._modules.get(part);
      if (!c) throw new Error(`${this.constructor.name}.getSubmodule: '${target}': ${m.constructor.name} has no submodule '${part}'`);
      m = c;
    }
    return m;
  }

  /** The parameter at a dotted path ('blocks.3.attn.qkv.weight'). */
  getParameter(target: string): Parameter {
    const i = target.lastIndexOf('.');
    const m = this.getSubmodule(i < 0 ? '' : target.slice(0, i));
    const p = m._parameters.get(target.slice(i + 1));
    if (!p) throw new Error(`${this.constructor.name}.getParameter: no parameter '${target}'`);
    return p;
  }

  // ---- state --------------------------------------------------------------------------

  /**
   * Parameters and persistent buffers by PyTorch-style dotted name. The values are
   * the module's own tensors (not copies): read or save them, do not dispose them.
   */
  stateDict(): StateDict {
    const out: StateDict = Object.create(null);
    const path = new Set<Module>();
    const visit = (m: Module, p: string): void => {
      if (path.has(m)) throw new Error(`${this.constructor.name}.stateDict: the module graph has a cycle at '${p}'`);
      path.add(m);
      for (const [n, t] of m._parameters) if (t) out[p + n] = t;
      for (const [n, t] of m._buffers) if (t && !m._nonPersistent.has(n)) out[p + n] = t;
      for (const [n, c] of m._modules) if (c) visit(c, `${p}${n}.`);
      path.delete(m);
    };
    visit(this, '');
    return out;
  }

  /**
   * Copies values from a state dict into this module's parameters and buffers
   * (converting dtype and device as needed). Shape mismatches are always an error;
   * with strict (the default) missing and unexpected keys are too. All problems are
   * reported in one error, and nothing is copied unless the whole load is valid.
   */
  loadStateDict(sd: StateDict | Map<string, Tensor>, opts: { strict?: boolean } = {}): LoadStateDictResult {
    const op = `${this.constructor.name}.loadStateDict`;
    const strict = opts.strict ?? true;
    const entries: [string, unknown][] =
      sd instanceof Map ? [...sd.entries()] : sd !== null && typeof sd === 'object' && !Array.isArray(sd) ? Object.entries(sd) : [];
    if (!(sd instanceof Map) && (sd === null || typeof sd !== 'object' || Array.isArray(sd)))
      throw new TypeError(`${op}: expected an object (or Map) of name -> Tensor, got ${typeName(sd)}`);
    const given = new Map<string, Tensor>();
    for (const [k, v] of entries) given.set(k, live(v, op, `'${k}'`));
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !given.has(k));
    const unexpected = [...given.keys()].filter((k) => !(k in own));
    const mismatched: string[] = [];
    for (const [k, t] of Object.entries(own)) {
      const g = given.get(k);
      if (g && (g.shape.length !== t.shape.length || g.shape.some((s, i) => s !== t.shape[i])))
        mismatched.push(`${k}: expected ${shapeStr(t.shape)}, got ${shapeStr(g.shape)}`);
    }
    const problems: string[] = [];
    if (strict && missing.length) problems.push(`missing keys (${missing.length}): ${listStr(missing)}`);
    if (strict && unexpected.length) problems.push(`unexpected keys (${unexpected.length}): ${listStr(unexpected)}`);
    if (mismatched.length) problems.push(`shape mismatches (${mismatched.length}): ${listStr(mismatched)}`);
    if (problems.length) throw new Error(`${op}: cannot load the state dict:\n  ${problems.join('\n  ')}`);
    noGrad(() => {
      for (const [k, t] of Object.entries(own)) {
        const g = given.get(k);
        if (g && g !== t) t.copy_(g);
      }
    });
    return { missingKeys: missing, unexpectedKeys: unexpected };
  }

  // ---- modes, conversion, gradients ----------------------------------------------------

  /** Sets training mode on this module and every submodule; returns this. */
  train(mode = true): this {
    if (typeof mode !== 'boolean') throw new TypeError(`${this.constructor.name}.train: expected a boolean, got ${typeName(mode)}`);
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /**
   * Moves every parameter and buffer to a device, or converts the floating ones to a
   * floating dtype, in place: the Parameter objects stay the same (optimizers holding
   * them keep working); gradients follow.
   */
  to(target: DType | Device): this {
    const op = `${this.constructor.name}.to`;
    const isDtype = (DTYPES as readonly string[]).includes(target as string);
    if (typeof target !== 'string' || (!isDtype && !isDeviceName(target)))
      throw new TypeError(`${op}: expected a dtype or device name, got ${typeName(target)} ${String(target)}`);
    if (isDtype && !FLOATING.includes(target))
      throw new TypeError(`${op}: modules convert only to floating dtypes, got ${target}`);
    const convert = (t: Tensor): void => {
      if (isDtype) {
        if (!FLOATING.includes(t.dtype) || t.dtype === target) return;
        t._replaceHandle(native.toDtype(t.h, target));
      } else if (t.device !== target) {
        t._replaceHandle(native.toDevice(t.h, target));
      }
    };
    const all = new Set<Tensor>([...this.parameters(), ...this.buffers()]);
    for (const t of all) {
      convert(t);
      if (t.grad && !t.grad.isDisposed) convert(t.grad);
    }
    return this;
  }

  /**
   * The device of the module's parameters (of its buffers when it has none; 'cpu' when it
   * has neither): where its forward makes the tensors it needs. A module whose tensors
   * sit on several devices is an error here, so a half-moved model fails early.
   */
  get device(): Device {
    let dev: Device | null = null;
    for (const t of [...this.parameters(), ...this.buffers()]) {
      if (t.isDisposed) continue;
      if (dev === null) dev = t.device;
      else if (t.device !== dev) throw new Error(`${this.constructor.name}.device: the module's tensors are on several devices (${dev} and ${t.device}); move it with .to(device)`);
    }
    return dev ?? 'cpu';
  }

  /** Total elements of the (unique) parameters; trainableOnly counts those requiring grad. */
  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    return this.parameters()
      .filter((p) => !opts.trainableOnly || p.requiresGrad)
      .reduce((n, p) => n + p.numel, 0);
  }

  /** Drops every parameter's gradient (frees it; the next backward starts from zero). */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Freezes (false) or unfreezes (true) every parameter; returns this. */
  requiresGrad_(on = true): this {
    for (const p of this.parameters()) p.requiresGrad_(on);
    return this;
  }

  /** Calls fn on every module (this included), children first as in PyTorch; returns this. */
  apply(fn: (m: Module) => void): this {
    for (const [, m] of this.namedModules().reverse()) fn(m);
    return this;
  }

  /** Frees every parameter, gradient and buffer now; the module is unusable afterwards. */
  dispose(): void {
    for (const t of new Set<Tensor>([...this.parameters(), ...this.buffers()])) {
      t.grad?.dispose();
      t.grad = null;
      t.dispose();
    }
  }

  // ---- printing -----------------------------------------------------------------------

  /** The layer's settings for toString(), e.g. 'in_features=4, out_features=8, bias=true'. */
  extraRepr(): string {
    return '';
  }
  toString(): string {
    const extra = this.extraRepr();
    const kids = this.namedChildren();
    if (!kids.length) return `${this.constructor.name}(${extra})`;
    const lines = kids.map(([n, m]) => `  (${n}): ${m.toString().split('\n').join('\n  ')}`);
    if (extra) lines.unshift(`  ${extra}`);
    return `${this.constructor.name}(\n${lines.join('\n')}\n)`;
  }
}
