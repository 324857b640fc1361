/// <reference lib="esnext.disposable" preserve="true" />
// Tensor: a JS handle on a native tensor, with autograd fields and tidy scopes.
// Native memory is owned by the native tensor: dispose() frees it now, tidy(fn)
// frees everything created inside fn that fn does not return, and a finalizer is
// only a safety net.
import { Handle, native } from './native';
import type { Node } from './autograd/node';
import * as ops from './ops/basic';
import { Device, typeName } from './checks';

export type DType = 'float32' | 'float64' | 'bfloat16' | 'float16' | 'int32' | 'int64' | 'uint8' | 'bool';
export type { Device };
export const DTYPES: readonly DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int64', 'uint8', 'bool'];

export type NestedArray = number | boolean | NestedArray[];
export type TensorData = NestedArray | Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array;

export interface TensorOptions {
  shape?: number[];
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

// Node >= 20 defines Symbol.dispose as Symbol.for('nodejs.dispose'); other realms
// (vm contexts, test runners) may lack it. Define it the same way so `using` works.
if (typeof (Symbol as { dispose?: symbol }).dispose !== 'symbol')
  Object.defineProperty(Symbol, 'dispose', { value: Symbol.for('nodejs.dispose') });

// ---- scopes (tidy) --------------------------------------------------------------------
const scopes: Set<Tensor>[] = [];

/** Stops tracking t in the tidy scopes, so the enclosing tidy will not dispose it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collectTensors(v: unknown, out: Set<Tensor>, seen: Set<unknown>): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if (v instanceof Tensor) {
    out.add(v);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collectTensors(x, out, seen);
  else if (v instanceof Map) for (const x of v.values()) collectTensors(x, out, seen);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collectTensors(x, out, seen);
}

function reachableNodes(roots: Set<Tensor>): Set<Node> {
  const seen = new Set<Node>();
  const stack: Node[] = [];
  for (const t of roots) if (t._node && !seen.has(t._node)) (seen.add(t._node), stack.push(t._node));
  while (stack.length) {
    const n = stack.pop()!;
    for (const inp of n.inputs) {
      const c = inp?._node;
      if (c && !seen.has(c)) (seen.add(c), stack.push(c));
    }
  }
  return seen;
}

/**
 * Runs fn and disposes every tensor created inside it that is not part of its
 * result (a tensor, or arrays / plain objects / Maps holding tensors). Nested tidies
 * hand their results to the enclosing scope. fn must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError(`tidy: expected a function, got ${typeof fn}`);
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    throw new Error('tidy: fn returned a Promise; tidy only works with synchronous functions');
  }
  const keepSet = new Set<Tensor>();
  collectTensors(result, keepSet, new Set());
  const parent = scopes[scopes.length - 1];
  // Graph nodes of tensors disposed here that no returned tensor depends on can never
  // be backpropagated: free what they saved now, not at garbage collection.
  const live = reachableNodes(keepSet);
  for (const t of scope) {
    if (keepSet.has(t)) {
      parent?.add(t);
    } else {
      if (t._node && !live.has(t._node)) t._node.release();
      t.dispose();
    }
  }
  return result;
}

// Safety net for tensors nobody disposed: when V8 collects the JS object, its
// native tensor is freed (on a later event-loop turn). tidy/dispose free memory
// deterministically and are the way to manage memory in loops.
const forgotten = new FinalizationRegistry<Handle>((h) => native.dispose(h));

export class Tensor {
  /** @internal */ _h: Handle | null;
  /** @internal */ _node: Node | null = null;
  private _meta: [number[], DType, Device] | null = null;
  /** True for leaves whose gradient is wanted, and for every result computed from them. */
  requiresGrad = false;
  /** The accumulated gradient of a leaf after backward(). */
  grad: Tensor | null = null;
  /**
   * @internal The host values of a small int32 index tensor made from them (indexTensor):
   * ops that need the indices on the host (attention's segments) use them instead of
   * reading the device. Cleared by copy_; aliases and views do not carry them.
   */
  hostValues: Int32Array | null = null;

  /** @internal Wraps a native handle; tracked by the innermost tidy unless untracked. */
  constructor(h: Handle, untracked = false) {
    this._h = h;
    if (!untracked && scopes.length) scopes[scopes.length - 1].add(this);
    forgotten.register(this, h, this);
  }

  /** @internal */ get h(): Handle {
    if (this._h === null) throw new Error('tensor: this tensor was disposed');
    return this._h;
  }
  /** @internal */ handle(op: string): Handle {
    if (this._h === null) throw new Error(`${op}: got a disposed tensor`);
    return this._h;
  }

  private meta(): [number[], DType, Device] {
    if (!this._meta) {
      const [s, d, dev] = native.meta(this.handle('tensor'));
      Object.freeze(s);
      this._meta = [s, d as DType, dev as Device];
    }
    return this._meta;
  }
  get shape(): readonly number[] {
    return this.meta()[0];
  }
  get dtype(): DType {
    return this.meta()[1];
  }
  get device(): Device {
    return this.meta()[2];
  }
  get rank(): number {
    return this.meta()[0].length;
  }
  get numel(): number {
    return this.meta()[0].reduce((a, b) => a * b, 1);
  }
  get isDisposed(): boolean {
    return this._h === null;
  }
  get isLeaf(): boolean {
    return this._node === null;
  }
  get strides(): number[] {
    return native.strides(this.handle('strides'));
  }
  isContiguous(): boolean {
    return native.isContiguous(this.handle('isContiguous'));
  }

  /** Frees the native memory now (views keep shared storage alive until they go too). */
  dispose(): void {
    if (this._h === null) return;
    native.dispose(this._h);
    forgotten.unregister(this);
    this._h = null;
    for (const s of scopes) s.delete(this);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- reading values ------------------------------------------------------------------
  toFloat32Array(): Float32Array {
    return native.read(this.handle('toFloat32Array'), 'float32') as Float32Array;
  }
  /** Values in C order as a typed array of this tensor's kind (Float32Array for float types). */
  dataSync(): Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array {
    const d = this.dtype;
    return native.read(this.handle('dataSync'), d);
  }
  /** Nested JS arrays of numbers (int64 values as numbers; bool as 0/1). */
  toArray(): NestedArray {
    const flat = this.dataSync();
    const vals: number[] = Array.from(flat as ArrayLike<number | bigint>, (x) => Number(x));
    const shape = this.shape;
    if (shape.length === 0) return vals[0];
    let i = 0;
    const build = (d: number): NestedArray[] => {
      const out: NestedArray[] = [];
      for (let k = 0; k < shape[d]; k++) out.push(d === shape.length - 1 ? vals[i++] : build(d + 1));
      return out;
    };
    return build(0);
  }
  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) throw new Error(`item: expected a tensor with one element, got shape [${this.shape.join(', ')}]`);
    return Number(this.dataSync()[0]);
  }
  toString(): string {
    if (this._h === null) return 'Tensor(disposed)';
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- math (autograd-aware; see lib/ops/basic.ts) ---------------------------------
  add(o: Tensor | number): Tensor { return ops.add(this, o); }
  sub(o: Tensor | number): Tensor { return ops.sub(this, o); }
  mul(o: Tensor | number): Tensor { return ops.mul(this, o); }
  div(o: Tensor | number): Tensor { return ops.div(this, o); }
  pow(o: Tensor | number): Tensor { return ops.pow(this, o); }
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  abs(): Tensor { return ops.abs(this); }
  tanh(): Tensor { return ops.tanh(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  square(): Tensor { return ops.square(this); }
  relu(): Tensor { return ops.relu(this); }
  clamp(lo?: number | null, hi?: number | null): Tensor { return ops.clamp(this, lo, hi); }
  sum(axis?: number | number[], keepDim = false): Tensor { return ops.sum(this, axis, keepDim); }
  mean(axis?: number | number[], keepDim = false): Tensor { return ops.mean(this, axis, keepDim); }
  max(axis?: number | number[], keepDim = false): Tensor { return ops.max(this, axis, keepDim); }
  min(axis?: number | number[], keepDim = false): Tensor { return ops.min(this, axis, keepDim); }
  matmul(o: Tensor): Tensor { return ops.matmul(this, o); }
  reshape(shape: number[]): Tensor { return ops.reshape(this, shape); }
  flatten(start = 0, end = -1): Tensor { return ops.flatten(this, start, end); }
  permute(dims: number[]): Tensor { return ops.permute(this, dims); }
  transpose(a: number, b: number): Tensor { return ops.transpose(this, a, b); }
  unsqueeze(axis: number): Tensor { return ops.unsqueeze(this, axis); }
  squeeze(axis?: number): Tensor { return ops.squeeze(this, axis); }
  expand(shape: number[]): Tensor { return ops.expand(this, shape); }
  contiguous(): Tensor { return ops.contiguous(this); }
  slice(axis: number, start: number, end?: number, step = 1): Tensor { return ops.slice(this, axis, start, end, step); }
  chunk(n: number, axis = 0): Tensor[] { return ops.chunk(this, n, axis); }
  clone(): Tensor { return ops.clone(this); }
  /** Converts dtype or moves device ('cpu', 'cuda', 'cuda:1'). */
  to(target: DType | Device): Tensor { return ops.to(this, target); }
  /** A tensor sharing this one's values with no gradient history. */
  detach(): Tensor { return ops.detach(this); }
  /** Marks a leaf as needing a gradient; returns this. */
  requiresGrad_(on = true): this {
    if (!this.isLeaf) throw new Error('requiresGrad_: only leaf tensors can change requiresGrad; use detach() first');
    if (on && !this.dtype.startsWith('float')) throw new Error(`requiresGrad_: expected a floating tensor, got ${this.dtype}`);
    this.requiresGrad = on;
    return this;
  }
  /** Computes gradients of this tensor with respect to the leaves it depends on. */
  backward(grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    ops.backward(this, grad, opts);
  }
  /**
   * @internal Points this tensor at another native handle (disposing the old one),
   * keeping the object's identity: Module.to() converts parameters this way so that
   * optimizers and other holders of the Parameter object see the new values.
   */
  _replaceHandle(h: Handle): void {
    if (this._h !== null && this._h !== h) native.dispose(this._h);
    this._h = h;
    this._meta = null;
  }
  /** Copies src's values into this tensor in place (no autograd). */
  copy_(src: Tensor): this {
    this.hostValues = null;
    native.copyInto(this.handle('copy_'), src.handle('copy_'));
    return this;
  }
}

export { typeName };
