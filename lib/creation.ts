// Tensor creation: from JS data, constants, ranges and the seeded Philox RNG.
import { native, TypedArrayData } from './native';
import { live, shapeStr } from './ops/basic';
import { isDeviceName, sizes } from './checks';
import { DType, Device, DTYPES, NestedArray, Tensor, TensorData, TensorOptions, typeName } from './tensor';

/** @internal Validates the options object shared by the creation functions. */
export function checkOptions(op: string, opts: unknown): TensorOptions {
  if (opts === undefined) return {};
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new TypeError(`${op}: expected an options object, got ${typeName(opts)}`);
  const o = opts as TensorOptions;
  if (o.dtype !== undefined && !(DTYPES as readonly string[]).includes(o.dtype))
    throw new TypeError(`${op}: unknown dtype '${String(o.dtype)}' (expected one of ${DTYPES.join(', ')})`);
  if (o.device !== undefined && !isDeviceName(o.device))
    throw new TypeError(`${op}: unknown device '${String(o.device)}' (expected 'cpu', 'cpu:N', 'cuda' or 'cuda:N')`);
  if (o.requiresGrad !== undefined && typeof o.requiresGrad !== 'boolean')
    throw new TypeError(`${op}: expected requiresGrad to be a boolean, got ${typeName(o.requiresGrad)}`);
  return o;
}


function finish(t: Tensor, o: TensorOptions, op: string): Tensor {
  if (o.requiresGrad) {
    if (!t.dtype.startsWith('float')) throw new TypeError(`${op}: requiresGrad needs a floating dtype, got ${t.dtype}`);
    t.requiresGrad = true;
  }
  return t;
}

function inferShape(data: NestedArray, op: string): number[] {
  const shape: number[] = [];
  let cur: NestedArray = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  return shape;
}

function flattenInto(data: NestedArray, shape: number[], d: number, out: number[], op: string, path: string): void {
  if (d === shape.length) {
    if (typeof data === 'boolean') out.push(data ? 1 : 0);
    else if (typeof data === 'number') out.push(data);
    else throw new TypeError(`${op}: expected a number at ${path || 'the top level'}, got ${typeName(data)}`);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[d])
    throw new TypeError(
      `${op}: ragged nested array: expected ${shape[d]} elements at ${path || 'the top level'}, got ${Array.isArray(data) ? data.length : typeName(data)}`,
    );
  data.forEach((x, i) => flattenInto(x, shape, d + 1, out, op, `${path}[${i}]`));
}

/**
 * A tensor from JS data: numbers, nested arrays, or a typed array (with `shape`).
 * Default dtype: float32 for numbers, Float32Array and Float64Array; int32 for
 * Int32Array; int64 for BigInt64Array; uint8 for Uint8Array; bool for booleans.
 */
export function tensor(data: TensorData, opts?: TensorOptions): Tensor {
  const o = checkOptions('tensor', opts);
  const device = o.device ?? 'cpu';
  let arr: TypedArrayData;
  let shape: number[];
  let dtype: DType;
  if (ArrayBuffer.isView(data)) {
    // By tag, not instanceof: typed arrays may come from another realm (vm, jest).
    const kind = (data as unknown as { [Symbol.toStringTag]: string })[Symbol.toStringTag];
    const defaults: Record<string, DType> = {
      Float32Array: 'float32', Float64Array: 'float32', Int32Array: 'int32', BigInt64Array: 'int64', Uint8Array: 'uint8',
    };
    if (!(kind in defaults))
      throw new TypeError(`tensor: unsupported typed array ${kind} (use Float32Array, Float64Array, Int32Array, BigInt64Array or Uint8Array)`);
    arr = data as TypedArrayData;
    shape = o.shape ? sizes('tensor', o.shape) : [arr.length];
    dtype = o.dtype ?? defaults[kind];
  } else if (typeof data === 'number' || typeof data === 'boolean' || Array.isArray(data)) {
    const inferred = inferShape(data, 'tensor');
    const flat: number[] = [];
    flattenInto(data, inferred, 0, flat, 'tensor', '');
    shape = o.shape ? sizes('tensor', o.shape) : inferred;
    let isBool = typeof data === 'boolean';
    if (Array.isArray(data)) {
      let cur: NestedArray = data;
      while (Array.isArray(cur) && cur.length) cur = cur[0];
      isBool = typeof cur === 'boolean';
    }
    dtype = o.dtype ?? (isBool ? 'bool' : 'float32');
    arr = dtype === 'float32' ? Float32Array.from(flat) : Float64Array.from(flat);
  } else {
    throw new TypeError(`tensor: expected a number, nested array or typed array, got ${typeName(data)}`);
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel !== arr.length)
    throw new RangeError(`tensor: shape ${shapeStr(shape)} needs ${numel} values, got ${arr.length}`);
  return finish(new Tensor(native.fromData(arr, shape, dtype, device)), o, 'tensor');
}

export function full(shape: number[], value: number, opts?: TensorOptions): Tensor {
  const s = sizes('full', shape);
  if (typeof value !== 'number') throw new TypeError(`full: expected a number fill value, got ${typeName(value)}`);
  const o = checkOptions('full', opts);
  return finish(new Tensor(native.full(s, value, o.dtype ?? 'float32', o.device ?? 'cpu')), o, 'full');
}
export const zeros = (shape: number[], opts?: TensorOptions): Tensor => full(shape, 0, opts);
export const ones = (shape: number[], opts?: TensorOptions): Tensor => full(shape, 1, opts);

export function zerosLike(t: Tensor, opts?: TensorOptions): Tensor {
  const x = live(t, 'zerosLike');
  return zeros(x.shape as number[], { dtype: x.dtype, device: x.device, ...opts });
}
export function onesLike(t: Tensor, opts?: TensorOptions): Tensor {
  const x = live(t, 'onesLike');
  return ones(x.shape as number[], { dtype: x.dtype, device: x.device, ...opts });
}

/** arange(n) = [0, n); arange(start, end, step?). */
export function arange(a: number, b?: number, step = 1, opts?: TensorOptions): Tensor {
  const [start, end] = b === undefined ? [0, a] : [a, b];
  for (const [v, n] of [[start, 'start'], [end, 'end'], [step, 'step']] as const)
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`arange: expected a finite ${n}, got ${String(v)}`);
  if (step === 0) throw new RangeError('arange: step must not be 0');
  const o = checkOptions('arange', opts);
  return finish(new Tensor(native.arange(start, end, step, o.dtype ?? 'float32', o.device ?? 'cpu')), o, 'arange');
}

/** Uniform [0, 1) from the seeded Philox generator (same numbers on every backend). */
export function rand(shape: number[], opts?: TensorOptions): Tensor {
  const s = sizes('rand', shape);
  const o = checkOptions('rand', opts);
  return finish(new Tensor(native.rand(s, o.dtype ?? 'float32', o.device ?? 'cpu')), o, 'rand');
}
/** Standard normal from the seeded Philox generator. */
export function randn(shape: number[], opts?: TensorOptions): Tensor {
  const s = sizes('randn', shape);
  const o = checkOptions('randn', opts);
  return finish(new Tensor(native.randn(s, o.dtype ?? 'float32', o.device ?? 'cpu')), o, 'randn');
}

/**
 * An int32 index tensor [n] on `device` that remembers its host values (for ops that need
 * the indices on the host, such as attention's segment table, without reading a device).
 */
export function indexTensor(values: ArrayLike<number>, device: Device = 'cpu'): Tensor {
  const host = Int32Array.from(values);
  const t = new Tensor(native.fromData(host, [host.length], 'int32', device));
  t.hostValues = host;
  return t;
}

/** Seeds the global generator (resets its counter). */
export function manualSeed(seed: number): void {
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER)
    throw new RangeError(`manualSeed: expected an integer seed in [0, 2^53), got ${String(seed)}`);
  native.manualSeed(seed);
}

/** The generator's state, for checkpoints. */
export function getRngState(): { seed: number; offset: number } {
  const [seed, offset] = native.rngState();
  return { seed, offset };
}
export function setRngState(state: { seed: number; offset: number }): void {
  if (!state || typeof state.seed !== 'number' || typeof state.offset !== 'number')
    throw new TypeError(`setRngState: expected { seed, offset }, got ${typeName(state)}`);
  native.setRngState(state.seed, state.offset);
}

export type { Device };
