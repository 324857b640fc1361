// Shared test helpers: normalized error, finite-difference gradient checks and
// the PyTorch fixture reader (safetensors files written by test/fixtures/gen.py).
import * as fs from 'fs';
import * as path from 'path';
import * as ts from '../../lib';
import { Tensor } from '../../lib';

/** sum((a-b)^2) / sum(b^2), in double. */
export function nmse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`nmse: lengths differ (${a.length} vs ${b.length})`);
  let err = 0, norm = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    err += d * d;
    norm += b[i] * b[i];
  }
  return err / (norm > 0 ? norm : 1);
}

export function expectClose(got: Tensor, want: Tensor | ArrayLike<number>, maxNmse = 1e-10): void {
  const w = want instanceof Tensor ? want.toFloat32Array() : want;
  const e = nmse(got.toFloat32Array(), w);
  if (!(e <= maxNmse)) throw new Error(`normalized error ${e.toExponential(3)} > ${maxNmse}`);
}

/**
 * Central-difference gradient check of fn at `inputs` (float32 tensors with
 * requiresGrad). The scalar checked is sum(fn(...) * w) for a fixed random w, so
 * every output element matters. Checks up to `samples` elements of each input.
 * Returns the worst relative error; throws when it exceeds `tol`.
 */
export function gradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  { eps = 1e-2, tol = 2e-2, samples = 24, seed = 1234 }: { eps?: number; tol?: number; samples?: number; seed?: number } = {},
): number {
  ts.manualSeed(seed);
  const out0 = ts.noGrad(() => fn(...inputs));
  const w = ts.randn(out0.shape as number[]);
  const wv = w.toFloat32Array();
  const objective = (): number =>
    ts.tidy(() => {
      const o = ts.noGrad(() => fn(...inputs)).toFloat32Array();
      let s = 0;
      for (let i = 0; i < o.length; i++) s += o[i] * wv[i];
      return s;
    });
  for (const x of inputs) x.grad?.dispose(), (x.grad = null);
  ts.tidy(() => fn(...inputs).mul(w).sum().backward());
  let worst = 0;
  inputs.forEach((x, xi) => {
    if (!x.requiresGrad) return;
    const analytic = x.grad!.toFloat32Array();
    const vals = x.toFloat32Array();
    const n = vals.length;
    const idx = n <= samples ? [...Array(n).keys()] : [...Array(samples).keys()].map((k) => Math.floor((k * n) / samples));
    let scale = 0;
    for (const a of analytic) scale = Math.max(scale, Math.abs(a));
    for (const i of idx) {
      const orig = vals[i];
      const set = (v: number): void => {
        vals[i] = v;
        ts.tidy(() => x.copy_(ts.tensor(vals, { shape: x.shape as number[] })));
      };
      set(orig + eps);
      const fp = objective();
      set(orig - eps);
      const fm = objective();
      set(orig);
      const numeric = (fp - fm) / (2 * eps);
      const err = Math.abs(numeric - analytic[i]) / Math.max(1e-3, scale);
      if (err > worst) worst = err;
      if (err > tol)
        throw new Error(`gradcheck: input ${xi} element ${i}: analytic ${analytic[i]} vs numeric ${numeric} (rel ${err.toExponential(2)})`);
    }
  });
  out0.dispose();
  w.dispose();
  return worst;
}

export interface Fixture {
  tensors: Record<string, Tensor>;
  meta: Record<string, string>;
}

/** Reads test/fixtures/<name>.safetensors (F32 / I32 / I64 tensors) into tensors. */
export function loadFixture(name: string): Fixture {
  const file = path.join(__dirname, '..', 'fixtures', `${name}.safetensors`);
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const base = 8 + n;
  const tensors: Record<string, Tensor> = {};
  let meta: Record<string, string> = {};
  for (const [k, v] of Object.entries<any>(header)) {
    if (k === '__metadata__') {
      meta = v;
      continue;
    }
    const [s, e] = v.data_offsets as [number, number];
    const bytes = buf.subarray(base + s, base + e);
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    let data: Float32Array | Int32Array | BigInt64Array;
    if (v.dtype === 'F32') data = new Float32Array(copy.buffer);
    else if (v.dtype === 'I32') data = new Int32Array(copy.buffer);
    else if (v.dtype === 'I64') data = new BigInt64Array(copy.buffer);
    else throw new Error(`loadFixture: unsupported dtype ${v.dtype} in ${name}`);
    tensors[k] = ts.keep(ts.tensor(data, { shape: v.shape }));
  }
  return { tensors, meta };
}
