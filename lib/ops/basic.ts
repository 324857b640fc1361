// Differentiable tensor ops: elementwise with NumPy broadcasting, reductions,
// matmul and shape ops. Each validates its inputs (errors name the op), calls one
// native kernel, and records how to send the gradient back (native kernels again).
import { BackwardFn, isGradEnabled, Node } from '../autograd/node';
import { Handle, native } from '../native';
import { DType, Device, DTYPES, Tensor } from '../tensor';
import { isDeviceName, shapeStr, typeName } from '../checks';

// ---- plumbing shared by all ops ----------------------------------------------------

/** @internal Wraps a fresh native handle. */
export function wrap(h: Handle): Tensor {
  return new Tensor(h);
}

/** @internal Checks that v is a live tensor; `what` names the argument in the message. */
export function live(v: unknown, op: string, what = 'input'): Tensor {
  if (!(v instanceof Tensor)) throw new TypeError(`${op}: expected ${what} to be a Tensor, got ${typeName(v)}`);
  if (v.isDisposed) throw new Error(`${op}: ${what} is a disposed tensor`);
  return v;
}

/** @internal Checks a floating (float32) input of a math op. */
export function f32(v: unknown, op: string, what = 'input'): Tensor {
  const t = live(v, op, what);
  if (t.dtype !== 'float32')
    throw new TypeError(`${op}: expected ${what} of dtype float32, got ${t.dtype} (convert with .to('float32'))`);
  return t;
}

export { shapeStr };

/** @internal Normalizes an axis (negative counts from the end) or throws naming op. */
export function normAxis(axis: unknown, rank: number, op: string): number {
  if (typeof axis !== 'number' || !Number.isInteger(axis))
    throw new TypeError(`${op}: expected an integer axis, got ${typeName(axis)} ${String(axis)}`);
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new RangeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  return a;
}

export type SaveFn = (t: Tensor) => Tensor;
/**
 * @internal Attaches a backward node to `out` when gradients are on and any input
 * requires them. `make` receives `save` (keeps an untracked alias of a tensor for
 * backward) and `needs` (which inputs want a gradient) and returns the backward fn.
 */
export function record(
  out: Tensor,
  name: string,
  inputs: (Tensor | null)[],
  make: (save: SaveFn, needs: boolean[]) => BackwardFn,
): Tensor {
  if (!isGradEnabled()) return out;
  const needs = inputs.map((t) => !!t && t.requiresGrad);
  if (!needs.some((x) => x)) return out;
  // Backward fns and the engine read the inputs' shapes; cache them now, since a tidy
  // may dispose an intermediate input before backward runs (its saved data lives on).
  for (const t of inputs) if (t) void t.shape;
  const node = new Node(
    name,
    inputs.map((t, i) => (needs[i] ? t : null)),
  );
  const save: SaveFn = (t) => {
    const a = new Tensor(native.alias(t.handle(name)), true);
    node.saved.push(a);
    return a;
  };
  node.backwardFn = make(save, needs);
  out._node = node;
  out.requiresGrad = true;
  return out;
}

/** @internal Sums a broadcast gradient back to `shape` (no autograd). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((s, i) => s === shape[i])) return g;
  return wrap(native.sumTo(g.h, shape as number[]));
}

// ---- elementwise binary ----------------------------------------------------------------

type Operand = Tensor | number;

function checkOperand(v: unknown, op: string, what: string): Operand {
  if (typeof v === 'number') return v;
  return f32(v, op, what);
}

function binaryRaw(op: string, a: Tensor, b: Tensor): Tensor {
  return wrap(native.binary(op, a.h, b.h));
}
function scalarRaw(op: string, a: Tensor, s: number, scalarFirst = false): Tensor {
  return wrap(native.binaryScalar(op, a.h, s, scalarFirst));
}

export function add(a: Operand, b: Operand): Tensor {
  const x = checkOperand(a, 'add', 'the first argument'), y = checkOperand(b, 'add', 'the second argument');
  if (typeof x === 'number' && typeof y === 'number') throw new TypeError('add: expected at least one Tensor, got two numbers');
  if (typeof y === 'number') return record(scalarRaw('add', x as Tensor, y), 'add', [x as Tensor], () => (g) => [g]);
  if (typeof x === 'number') return add(y, x);
  const out = binaryRaw('add', x, y);
  return record(out, 'add', [x, y], () => (g) => [sumTo(g, x.shape), sumTo(g, y.shape)]);
}

export function sub(a: Operand, b: Operand): Tensor {
  const x = checkOperand(a, 'sub', 'the first argument'), y = checkOperand(b, 'sub', 'the second argument');
  if (typeof x === 'number' && typeof y === 'number') throw new TypeError('sub: expected at least one Tensor, got two numbers');
  if (typeof y === 'number') return record(scalarRaw('sub', x as Tensor, y), 'sub', [x as Tensor], () => (g) => [g]);
  if (typeof x === 'number') return record(scalarRaw('sub', y, x, true), 'sub', [y], () => (g) => [neg(g)]);
  const out = binaryRaw('sub', x, y);
  return record(out, 'sub', [x, y], (_s, needs) => (g) => [
    needs[0] ? sumTo(g, x.shape) : null,
    needs[1] ? sumTo(neg(g), y.shape) : null,
  ]);
}

export function mul(a: Operand, b: Operand): Tensor {
  const x = checkOperand(a, 'mul', 'the first argument'), y = checkOperand(b, 'mul', 'the second argument');
  if (typeof x === 'number' && typeof y === 'number') throw new TypeError('mul: expected at least one Tensor, got two numbers');
  if (typeof y === 'number') return record(scalarRaw('mul', x as Tensor, y), 'mul', [x as Tensor], () => (g) => [scalarRaw('mul', g, y)]);
  if (typeof x === 'number') return mul(y, x);
  const out = binaryRaw('mul', x, y);
  return record(out, 'mul', [x, y], (save, needs) => {
    const sx = needs[1] ? save(x) : null, sy = needs[0] ? save(y) : null;
    return (g) => [sy ? sumTo(binaryRaw('mul', g, sy), x.shape) : null, sx ? sumTo(binaryRaw('mul', g, sx), y.shape) : null];
  });
}

export function div(a: Operand, b: Operand): Tensor {
  const x = checkOperand(a, 'div', 'the first argument'), y = checkOperand(b, 'div', 'the second argument');
  if (typeof x === 'number' && typeof y === 'number') throw new TypeError('div: expected at least one Tensor, got two numbers');
  if (typeof y === 'number') return record(scalarRaw('mul', x as Tensor, 1 / y), 'div', [x as Tensor], () => (g) => [scalarRaw('mul', g, 1 / y)]);
  if (typeof x === 'number') {
    const out = scalarRaw('div', y, x, true);  // x / y
    return record(out, 'div', [y], (save) => {
      const so = save(out), sy = save(y);
      return (g) => [neg(binaryRaw('div', binaryRaw('mul', g, so), sy))];
    });
  }
  const out = binaryRaw('div', x, y);
  return record(out, 'div', [x, y], (save, needs) => {
    const sy = save(y), so = needs[1] ? save(out) : null;
    return (g) => {
      const gx = binaryRaw('div', g, sy);
      return [needs[0] ? sumTo(gx, x.shape) : null, so ? sumTo(neg(binaryRaw('mul', gx, so)), y.shape) : null];
    };
  });
}

export function pow(a: Operand, b: Operand): Tensor {
  const x = checkOperand(a, 'pow', 'the base'), y = checkOperand(b, 'pow', 'the exponent');
  if (typeof x === 'number' && typeof y === 'number') throw new TypeError('pow: expected at least one Tensor, got two numbers');
  if (typeof y === 'number') {
    const xt = x as Tensor;
    if (y === 2) return square(xt);
    const out = scalarRaw('pow', xt, y);
    return record(out, 'pow', [xt], (save) => {
      const sx = save(xt);
      return (g) => [binaryRaw('mul', g, scalarRaw('mul', scalarRaw('pow', sx, y - 1), y))];
    });
  }
  if (typeof x === 'number') {
    const out = scalarRaw('pow', y, x, true);
    return record(out, 'pow', [y], (save) => {
      const so = save(out);
      return (g) => [scalarRaw('mul', binaryRaw('mul', g, so), Math.log(x))];
    });
  }
  const out = binaryRaw('pow', x, y);
  return record(out, 'pow', [x, y], (save, needs) => {
    const sx = save(x), sy = save(y), so = save(out);
    return (g) => [
      needs[0] ? sumTo(binaryRaw('mul', binaryRaw('mul', g, sy), binaryRaw('pow', sx, scalarRaw('sub', sy, 1))), x.shape) : null,
      needs[1] ? sumTo(binaryRaw('mul', binaryRaw('mul', g, so), unaryRaw('log', sx)), y.shape) : null,
    ];
  });
}

/** Clamps to [lo, hi] (either may be omitted); the gradient passes where x is inside. */
export function clamp(x: Tensor, lo?: number | null, hi?: number | null): Tensor {
  const t = f32(x, 'clamp');
  for (const [v, n] of [[lo, 'lo'], [hi, 'hi']] as const)
    if (v !== undefined && v !== null && (typeof v !== 'number' || Number.isNaN(v)))
      throw new TypeError(`clamp: expected ${n} to be a number, got ${String(v)}`);
  if (lo != null && hi != null && lo > hi) throw new RangeError(`clamp: expected lo <= hi, got ${lo} > ${hi}`);
  let out = t;
  if (lo != null) out = scalarRaw('maximum', out, lo);
  if (hi != null) {
    const o2 = scalarRaw('minimum', out, hi);
    if (out !== t) out.dispose();
    out = o2;
  }
  if (out === t) out = wrap(native.alias(t.h));
  return record(out, 'clamp', [t], (save) => {
    const sx = save(t);
    return (g) => {
      let mask = wrap(native.full(t.shape as number[], 1, 'float32', t.device));
      if (lo != null) mask = binaryRaw('mul', mask, scalarRaw('gt', sx, lo));
      if (hi != null) mask = binaryRaw('mul', mask, scalarRaw('lt', sx, hi));
      return [binaryRaw('mul', g, mask)];
    };
  });
}

/** Elementwise maximum / minimum (gradient to the larger / smaller input; ties split). */
/**
 * Comparisons as float32 masks (1 where true, 0 elsewhere), with broadcasting; not
 * differentiable (their results never carry a gradient).
 */
function compare(op: 'lt' | 'gt' | 'eq', a: Tensor, b: Tensor | number): Tensor {
  const x = f32(a, op, 'the first argument');
  if (typeof b === 'number') return wrap(native.binaryScalar(op, x.h, b, false));
  return wrap(native.binary(op, x.h, f32(b, op, 'the second argument').h));
}
export const lt = (a: Tensor, b: Tensor | number): Tensor => compare('lt', a, b);
export const gt = (a: Tensor, b: Tensor | number): Tensor => compare('gt', a, b);
export const eq = (a: Tensor, b: Tensor | number): Tensor => compare('eq', a, b);

export function maximum(a: Tensor, b: Tensor): Tensor {
  return minmax('maximum', a, b);
}
export function minimum(a: Tensor, b: Tensor): Tensor {
  return minmax('minimum', a, b);
}
function minmax(op: 'maximum' | 'minimum', a: Tensor, b: Tensor): Tensor {
  const x = f32(a, op, 'the first argument'), y = f32(b, op, 'the second argument');
  const out = binaryRaw(op, x, y);
  return record(out, op, [x, y], (save) => {
    const sx = save(x), sy = save(y);
    return (g) => {
      const cmp = op === 'maximum' ? 'gt' : 'lt';
      const ties = scalarRaw('mul', binaryRaw('eq', sx, sy), 0.5);
      const mx = binaryRaw('add', binaryRaw(cmp, sx, sy), ties);  // 1, 0.5 on ties, 0
      const my = scalarRaw('sub', mx, 1, true);
      return [sumTo(binaryRaw('mul', g, mx), x.shape), sumTo(binaryRaw('mul', g, my), y.shape)];
    };
  });
}

// ---- elementwise unary -----------------------------------------------------------------

function unaryRaw(op: string, x: Tensor): Tensor {
  return wrap(native.unary(op, x.h));
}

/** @internal A unary op whose backward is the native unary_backward kernel. */
export function unaryOp(op: string, x: Tensor, publicName = op, saveOut = false): Tensor {
  const t = f32(x, publicName);
  const out = unaryRaw(op, t);
  return record(out, publicName, [t], (save) => {
    const sx = save(t), so = saveOut ? save(out) : null;
    return (g) => [wrap(native.unaryBackward(op, g.h, sx.h, so ? so.h : undefined))];
  });
}

export function neg(x: Tensor): Tensor {
  const t = f32(x, 'neg');
  return record(unaryRaw('neg', t), 'neg', [t], () => (g) => [unaryRaw('neg', g)]);
}
export const exp = (x: Tensor): Tensor => unaryOp('exp', x, 'exp', true);
export const log = (x: Tensor): Tensor => unaryOp('log', x);
export const sqrt = (x: Tensor): Tensor => unaryOp('sqrt', x, 'sqrt', true);
export const rsqrt = (x: Tensor): Tensor => unaryOp('rsqrt', x, 'rsqrt', true);
export const abs = (x: Tensor): Tensor => unaryOp('abs', x);
export const tanh = (x: Tensor): Tensor => unaryOp('tanh', x, 'tanh', true);
export const sigmoid = (x: Tensor): Tensor => unaryOp('sigmoid', x, 'sigmoid', true);
export const relu = (x: Tensor): Tensor => unaryOp('relu', x);
export const square = (x: Tensor): Tensor => unaryOp('square', x);
export const sin = (x: Tensor): Tensor => unaryOp('sin', x);
export const cos = (x: Tensor): Tensor => unaryOp('cos', x);

// ---- reductions ------------------------------------------------------------------------

function axesOf(axis: number | number[] | undefined, rank: number, op: string): number[] {
  if (axis === undefined || axis === null) return [];
  const list = Array.isArray(axis) ? axis : [axis];
  const out = list.map((a) => normAxis(a, rank, op));
  if (new Set(out).size !== out.length) throw new Error(`${op}: axes ${shapeStr(list)} repeat`);
  return out;
}

/** Shape of x reduced over axes with keepDim (empty axes: all). */
function keptShape(shape: readonly number[], axes: number[]): number[] {
  return shape.map((s, i) => (axes.length === 0 || axes.includes(i) ? 1 : s));
}

export function sum(x: Tensor, axis?: number | number[], keepDim = false): Tensor {
  const t = f32(x, 'sum');
  const axes = axesOf(axis, t.rank, 'sum');
  const out = wrap(native.reduce('sum', t.h, axes, keepDim));
  return record(out, 'sum', [t], () => (g) => [wrap(native.expand(g.reshape(keptShape(t.shape, axes)).h, t.shape as number[]))]);
}

export function mean(x: Tensor, axis?: number | number[], keepDim = false): Tensor {
  const t = f32(x, 'mean');
  const axes = axesOf(axis, t.rank, 'mean');
  const out = wrap(native.reduce('mean', t.h, axes, keepDim));
  const n = axes.length === 0 ? t.numel : axes.reduce((p, a) => p * t.shape[a], 1);
  return record(out, 'mean', [t], () => (g) => [
    wrap(native.expand(scalarRaw('mul', g, 1 / n).reshape(keptShape(t.shape, axes)).h, t.shape as number[])),
  ]);
}

function extremum(op: 'max' | 'min', x: Tensor, axis?: number | number[], keepDim = false): Tensor {
  const t = f32(x, op);
  const axes = axesOf(axis, t.rank, op);
  const out = wrap(native.reduce(op, t.h, axes, keepDim));
  // Gradient goes to the elements equal to the extremum, split evenly among ties.
  return record(out, op, [t], (save) => {
    const sx = save(t), so = save(out);
    return (g) => {
      const kept = keptShape(t.shape, axes);
      const mask = binaryRaw('eq', sx, so.reshape(kept));
      const count = wrap(native.reduce('sum', mask.h, axes, true));
      return [binaryRaw('mul', mask, binaryRaw('div', g.reshape(kept), count))];
    };
  });
}
export const max = (x: Tensor, axis?: number | number[], keepDim = false): Tensor => extremum('max', x, axis, keepDim);
export const min = (x: Tensor, axis?: number | number[], keepDim = false): Tensor => extremum('min', x, axis, keepDim);

// ---- matmul ----------------------------------------------------------------------------

export function matmul(a: Tensor, b: Tensor): Tensor {
  const x = f32(a, 'matmul', 'the first argument'), y = f32(b, 'matmul', 'the second argument');
  if (x.rank === 0 || y.rank === 0)
    throw new Error(`matmul: expected inputs of rank >= 1, got shapes ${shapeStr(x.shape)} and ${shapeStr(y.shape)}`);
  const out = wrap(native.matmul(x.h, y.h));
  return record(out, 'matmul', [x, y], (save, needs) => {
    const sx = needs[1] ? save(x) : null, sy = needs[0] ? save(y) : null;
    return (g) => {
      // Promote 1-D operands the way the forward did, then reduce broadcast batches.
      const x2 = x.rank === 1 ? [1, x.shape[0]] : (x.shape as number[]);
      const y2 = y.rank === 1 ? [y.shape[0], 1] : (y.shape as number[]);
      const gShape = [...g.shape];
      if (x.rank === 1) gShape.splice(gShape.length - (y.rank === 1 ? 0 : 1), 0, 1);
      if (y.rank === 1) gShape.push(1);
      const g2 = g.reshape(gShape);
      let gx: Tensor | null = null, gy: Tensor | null = null;
      if (sy) gx = sumTo(wrap(native.matmul(g2.h, sy.reshape(y2).transpose(-1, -2).h)), x2).reshape(x.shape as number[]);
      if (sx) gy = sumTo(wrap(native.matmul(sx.reshape(x2).transpose(-1, -2).h, g2.h)), y2).reshape(y.shape as number[]);
      return [gx, gy];
    };
  });
}

// ---- shape ops (views where possible) -------------------------------------------------

function checkInts(v: unknown, op: string, what: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x)))
    throw new TypeError(`${op}: expected ${what} to be an array of integers, got ${Array.isArray(v) ? `[${v.map(typeName).join(', ')}]` : typeName(v)}`);
  return v as number[];
}

export function reshape(x: Tensor, shape: number[]): Tensor {
  const t = live(x, 'reshape');
  const s = checkInts(shape, 'reshape', 'shape');
  const out = wrap(native.reshape(t.h, s));
  return record(out, 'reshape', [t], () => (g) => [g.reshape(t.shape as number[])]);
}

export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  const t = live(x, 'flatten');
  if (t.rank === 0) return reshape(t, [1]);
  const s = normAxis(start, t.rank, 'flatten'), e = normAxis(end, t.rank, 'flatten');
  if (e < s) throw new RangeError(`flatten: end axis ${end} comes before start axis ${start}`);
  const shape = [...t.shape.slice(0, s), t.shape.slice(s, e + 1).reduce((p, q) => p * q, 1), ...t.shape.slice(e + 1)];
  return reshape(t, shape);
}

export function permute(x: Tensor, dims: number[]): Tensor {
  const t = live(x, 'permute');
  const d = checkInts(dims, 'permute', 'dims');
  if (d.length !== t.rank)
    throw new Error(`permute: expected ${t.rank} dims for a tensor of shape ${shapeStr(t.shape)}, got ${shapeStr(d)}`);
  const norm = d.map((a) => normAxis(a, t.rank, 'permute'));
  if (new Set(norm).size !== norm.length) throw new Error(`permute: dims ${shapeStr(d)} repeat an axis`);
  const out = wrap(native.permute(t.h, norm));
  const inv: number[] = new Array(norm.length);
  norm.forEach((a, i) => (inv[a] = i));
  return record(out, 'permute', [t], () => (g) => [wrap(native.permute(g.h, inv))]);
}

export function transpose(x: Tensor, a: number, b: number): Tensor {
  const t = live(x, 'transpose');
  const i = normAxis(a, t.rank, 'transpose'), j = normAxis(b, t.rank, 'transpose');
  const out = wrap(native.transpose(t.h, i, j));
  return record(out, 'transpose', [t], () => (g) => [wrap(native.transpose(g.h, i, j))]);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const t = live(x, 'unsqueeze');
  const a = normAxis(axis, t.rank + 1, 'unsqueeze');
  const s = [...t.shape];
  s.splice(a, 0, 1);
  return reshape(t, s);
}

export function squeeze(x: Tensor, axis?: number): Tensor {
  const t = live(x, 'squeeze');
  if (axis === undefined) return reshape(t, t.shape.filter((s) => s !== 1));
  const a = normAxis(axis, t.rank, 'squeeze');
  if (t.shape[a] !== 1) throw new Error(`squeeze: axis ${axis} has size ${t.shape[a]}, expected 1`);
  return reshape(t, t.shape.filter((_, i) => i !== a));
}

export function expand(x: Tensor, shape: number[]): Tensor {
  const t = live(x, 'expand');
  const s = checkInts(shape, 'expand', 'shape');
  const out = wrap(native.expand(t.h, s));
  return record(out, 'expand', [t], () => (g) => [sumTo(g, t.shape)]);
}

export function contiguous(x: Tensor): Tensor {
  const t = live(x, 'contiguous');
  const out = wrap(native.contiguous(t.h));
  return record(out, 'contiguous', [t], () => (g) => [g]);
}

export function clone(x: Tensor): Tensor {
  const t = live(x, 'clone');
  const out = wrap(native.clone(t.h));
  return record(out, 'clone', [t], () => (g) => [g]);
}

export function detach(x: Tensor): Tensor {
  const t = live(x, 'detach');
  return wrap(native.alias(t.h));
}

/** Zeros of `shape` with the gradient written into one slice (backward of slice). */
function sliceBackward(g: Tensor, shape: readonly number[], axis: number, start: number, end: number, step: number): Tensor {
  const z = wrap(native.full(shape as number[], 0, 'float32', g.device));
  const view = wrap(native.slice(z.h, axis, start, end, step));
  native.copyInto(view.h, g.h);
  view.dispose();
  return z;
}

export function slice(x: Tensor, axis: number, start: number, end?: number, step = 1): Tensor {
  const t = live(x, 'slice');
  const a = normAxis(axis, t.rank, 'slice');
  const n = t.shape[a];
  const e = end === undefined ? n : end;
  for (const [v, name] of [[start, 'start'], [e, 'end'], [step, 'step']] as const)
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`slice: expected an integer ${name}, got ${String(v)}`);
  if (step <= 0) throw new RangeError(`slice: expected a positive step, got ${step}`);
  const out = wrap(native.slice(t.h, a, start, e, step));
  record(out, 'slice', [t], () => (g) => [sliceBackward(g, t.shape, a, start, e, step)]);
  // The engine gathers the gradients of slices of one tensor into one (engine.ts).
  if (out._node) out._node.sliceOf = { axis: a, start: Math.min(Math.max(start < 0 ? start + n : start, 0), n), count: out.shape[a], step };
  return out;
}

export function chunk(x: Tensor, n: number, axis = 0): Tensor[] {
  const t = live(x, 'chunk');
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`chunk: expected a positive integer count, got ${String(n)}`);
  const a = normAxis(axis, t.rank, 'chunk');
  const size = Math.ceil(t.shape[a] / n);
  const out: Tensor[] = [];
  for (let s = 0; s < t.shape[a]; s += size) out.push(slice(t, a, s, Math.min(s + size, t.shape[a])));
  return out;
}

export function cat(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0)
    throw new TypeError(`cat: expected a non-empty array of tensors, got ${Array.isArray(tensors) ? 'an empty array' : typeName(tensors)}`);
  const ts = tensors.map((t, i) => live(t, 'cat', `tensor ${i}`));
  const a = normAxis(axis, ts[0].rank, 'cat');
  const out = wrap(native.cat(ts.map((t) => t.h), a));
  return record(out, 'cat', ts, (_s, needs) => (g) => {
    let at = 0;
    return ts.map((t, i) => {
      const n = t.shape[a];
      const gi = needs[i] ? wrap(native.slice(g.h, a, at, at + n, 1)).contiguous() : null;
      at += n;
      return gi;
    });
  });
}

export function stack(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0)
    throw new TypeError(`stack: expected a non-empty array of tensors, got ${Array.isArray(tensors) ? 'an empty array' : typeName(tensors)}`);
  const ts = tensors.map((t, i) => live(t, 'stack', `tensor ${i}`));
  const s0 = ts[0].shape;
  ts.forEach((t, i) => {
    if (t.shape.length !== s0.length || t.shape.some((v, k) => v !== s0[k]))
      throw new Error(`stack: expected tensors of one shape, tensor 0 is ${shapeStr(s0)} and tensor ${i} is ${shapeStr(t.shape)}`);
  });
  const a = normAxis(axis, s0.length + 1, 'stack');
  return cat(ts.map((t) => unsqueeze(t, a)), a);
}

export function to(x: Tensor, target: DType | Device): Tensor {
  const t = live(x, 'to');
  if (typeof target !== 'string') throw new TypeError(`to: expected a dtype or device name, got ${typeName(target)}`);
  if ((DTYPES as readonly string[]).includes(target)) {
    const from = t.dtype;
    const out = wrap(native.toDtype(t.h, target));
    const diff = from.startsWith('float') && target.startsWith('float');
    return diff ? record(out, 'to', [t], () => (g) => [wrap(native.toDtype(g.h, from))]) : out;
  }
  if (isDeviceName(target)) {
    const from = t.device;
    const out = wrap(native.toDevice(t.h, target));
    return record(out, 'to', [t], () => (g) => [wrap(native.toDevice(g.h, from))]);
  }
  throw new Error(`to: unknown dtype or device '${target}' (dtypes: ${DTYPES.join(', ')}; devices: cpu, cpu:N, cuda, cuda:N)`);
}

export { backward } from '../autograd/engine';
