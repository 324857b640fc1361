// Argument checks shared by every layer of the library, with one argument order:
// (op, what, value, ...limits). op names the function the user called, what names the
// argument; each check returns the value (narrowed) or throws a TypeError/RangeError
// that says what was expected and what came. This module imports nothing at run time,
// so any file may use it without creating an import loop.
/** 'cpu' (the host), 'cpu:N' (a simulated host device, TESSERA_HOST_DEVICES), 'cuda', 'cuda:N'. */
export type Device = 'cpu' | `cpu:${number}` | 'cuda' | `cuda:${number}`;

/** [t, h, w] sizes (kernels, strides, patches, grids). */
export type Triple = [number, number, number];

/** A short description of a value's type for error messages ('Tensor', 'array', 'null', ...). */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object' && (v as { constructor?: { name?: string } }).constructor?.name === 'Tensor') return 'Tensor';
  return typeof v;
}

export function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

const got = (v: unknown): string => (typeof v === 'number' || typeof v === 'string' ? `${typeName(v)} ${String(v)}` : typeName(v));

/** An integer >= min (default 1: a positive integer). */
export function posInt(op: string, what: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new RangeError(`${op}: expected ${what} to be ${min === 1 ? 'a positive integer' : `an integer >= ${min}`}, got ${got(v)}`);
  return v;
}

/** An integer >= 0. */
export function nonNegInt(op: string, what: string, v: unknown): number {
  return posInt(op, what, v, 0);
}

/** A finite number in [lo, hi]. */
export function finiteNumber(op: string, what: string, v: unknown, lo = -Infinity, hi = Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi)
    throw new RangeError(`${op}: expected ${what} to be a number in [${lo}, ${hi}], got ${got(v)}`);
  return v;
}

/** One of the given strings. */
export function oneOf<T extends string>(op: string, what: string, v: unknown, choices: readonly T[]): T {
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v))
    throw new TypeError(`${op}: expected ${what} to be ${choices.map((c) => `'${c}'`).join(', ')}, got ${got(v)}`);
  return v as T;
}

/** A boolean. */
export function bool(op: string, what: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new TypeError(`${op}: expected ${what} to be a boolean, got ${got(v)}`);
  return v;
}

/** A function. */
export function fn<F extends (...args: never[]) => unknown>(op: string, what: string, v: unknown): F {
  if (typeof v !== 'function') throw new TypeError(`${op}: expected ${what} to be a function, got ${typeName(v)}`);
  return v as F;
}

/** Tensor sizes: at most 16 non-negative integers (the creation functions' shapes). */
export function sizes(op: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${op}: expected a shape (array of sizes), got ${typeName(shape)}`);
  for (const s of shape)
    if (typeof s !== 'number' || !Number.isInteger(s) || s < 0)
      throw new RangeError(`${op}: expected a shape of non-negative integers, got ${shapeStr(shape.map((v) => (typeof v === 'number' ? v : NaN)))}`);
  if (shape.length > 16) throw new RangeError(`${op}: expected at most 16 dimensions, got ${shape.length}`);
  return shape as number[];
}

/** A batch shape [B, C, ...] of positive integers (rank >= 2), as the diffusion processes take. */
export function batchShape(op: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || shape.length < 2 || !shape.every((s) => Number.isInteger(s) && s > 0))
    throw new TypeError(`${op}: expected shape [B, C, ...] of positive integers, got ${Array.isArray(shape) ? shapeStr(shape) : typeName(shape)}`);
  return shape as number[];
}

/** [t, h, w] of integers >= min, or one number n for [n, n, n]. */
export function triple(op: string, what: string, v: unknown, min = 1): Triple {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= min;
  const kind = min > 0 ? 'positive' : 'non-negative';
  if (ok(v)) return [v, v, v];
  if (Array.isArray(v) && v.length === 3 && v.every(ok)) return [v[0], v[1], v[2]];
  throw new RangeError(`${op}: expected ${what} to be a ${kind} integer or [t, h, w] of ${kind} integers, got ${Array.isArray(v) ? `[${v.map(String).join(', ')}]` : got(v)}`);
}

/** A patch size: [pt, ph, pw] of positive integers, or p for DiT's image patch [1, p, p]. */
export function patchTriple(op: string, v: unknown): Triple {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n > 0;
  if (ok(v)) return [1, v, v];
  if (Array.isArray(v) && v.length === 3 && v.every(ok)) return [v[0], v[1], v[2]];
  throw new TypeError(`${op}: expected patchSize [pt, ph, pw] of positive integers (or one integer p), got ${Array.isArray(v) ? shapeStr(v) : got(v)}`);
}

const DEVICE_RE = /^(cpu|cuda)(:\d+)?$/;

/** True for a device name's syntax: 'cpu', 'cpu:N' (a simulated host device), 'cuda', 'cuda:N'. */
export function isDeviceName(v: unknown): v is Device {
  return typeof v === 'string' && DEVICE_RE.test(v);
}

/**
 * A device name ('cpu', 'cpu:N', 'cuda' or 'cuda:N'), returned in the canonical form tensors
 * report ('cpu:0' -> 'cpu', 'cuda' -> 'cuda:0'); whether it exists is the runtime's to say.
 */
export function device(op: string, what: string, v: unknown): Device {
  if (!isDeviceName(v)) throw new TypeError(`${op}: expected ${what} to be 'cpu', 'cpu:N', 'cuda' or 'cuda:N', got ${got(v)}`);
  return canonicalDevice(v);
}

/** The canonical name of a device: 'cpu:0' is 'cpu', 'cuda' is 'cuda:0' (as tensors report them). */
export function canonicalDevice(d: Device): Device {
  if (d === 'cuda') return 'cuda:0';
  const m = /^(cpu|cuda):0*(\d+)$/.exec(d);
  if (!m) return d;
  return (m[1] === 'cpu' && Number(m[2]) === 0 ? 'cpu' : `${m[1]}:${Number(m[2])}`) as Device;
}
