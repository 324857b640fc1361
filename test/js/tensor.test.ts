// The tensor API of the foundation: creation, dtypes, views, reading values,
// memory accounting, tidy/dispose, RNG and runtime info.
import * as ts from '../../lib';

describe('creation and reading values', () => {
  test('tensor() from nested arrays and typed arrays', () => {
    const a = ts.tensor([[1, 2, 3], [4, 5, 6]]);
    expect(a.shape).toEqual([2, 3]);
    expect(a.dtype).toBe('float32');
    expect(a.device).toBe('cpu');
    expect(a.numel).toBe(6);
    expect(a.toArray()).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(Array.from(a.toFloat32Array())).toEqual([1, 2, 3, 4, 5, 6]);
    const b = ts.tensor(new Float32Array([1, 2, 3, 4]), { shape: [2, 2] });
    expect(b.toArray()).toEqual([[1, 2], [3, 4]]);
    const i = ts.tensor(new Int32Array([7, -8]));
    expect(i.dtype).toBe('int32');
    expect(i.toArray()).toEqual([7, -8]);
    const l = ts.tensor(new BigInt64Array([2n ** 40n]));
    expect(l.dtype).toBe('int64');
    expect(l.item()).toBe(2 ** 40);
    expect(ts.tensor(3.5).shape).toEqual([]);
    expect(ts.tensor(3.5).item()).toBe(3.5);
    expect(ts.tensor([true, false]).dtype).toBe('bool');
    expect(ts.tensor([1, 2], { dtype: 'int64' }).toArray()).toEqual([1, 2]);
  });

  test('zeros, ones, full, arange', () => {
    expect(ts.zeros([2, 2]).toArray()).toEqual([[0, 0], [0, 0]]);
    expect(ts.ones([3]).toArray()).toEqual([1, 1, 1]);
    expect(ts.full([2], 7, { dtype: 'int32' }).toArray()).toEqual([7, 7]);
    expect(ts.arange(4).toArray()).toEqual([0, 1, 2, 3]);
    expect(ts.arange(1, 2, 0.25).toArray()).toEqual([1, 1.25, 1.5, 1.75]);
    expect(ts.zeros([0, 3]).numel).toBe(0);
  });

  test('dtype conversion round trips', () => {
    const x = ts.tensor([1.5, -2.25, 3.0e4, 1e-3]);
    expect(x.to('bfloat16').dtype).toBe('bfloat16');
    const back = x.to('float16').to('float32').toFloat32Array();
    expect(back[0]).toBe(1.5);
    expect(back[1]).toBe(-2.25);
    expect(Math.abs(back[3] - 1e-3)).toBeLessThan(1e-6);
    expect(x.to('int32').toArray()).toEqual([1, -2, 30000, 0]);
    expect(x.to('float64').dtype).toBe('float64');
    expect(x.to('cpu')).toBeDefined();
  });

  test('manualSeed makes rand/randn reproducible; thread count does not matter', () => {
    ts.manualSeed(123);
    const a = ts.randn([1000]).toFloat32Array();
    const u = ts.rand([10]).toFloat32Array();
    const threads = ts.getNumThreads();
    ts.setNumThreads(1);
    ts.manualSeed(123);
    const b = ts.randn([1000]).toFloat32Array();
    ts.setNumThreads(threads);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(u.every((v) => v >= 0 && v < 1)).toBe(true);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.1);
    const state = ts.getRngState();
    const c1 = ts.rand([4]).toArray();
    ts.setRngState(state);
    expect(ts.rand([4]).toArray()).toEqual(c1);
  });
});

describe('math and views', () => {
  test('broadcasting arithmetic and scalars', () => {
    const a = ts.tensor([[1, 2, 3], [4, 5, 6]]);
    const b = ts.tensor([10, 20, 30]);
    expect(a.add(b).toArray()).toEqual([[11, 22, 33], [14, 25, 36]]);
    expect(a.sub(1).toArray()).toEqual([[0, 1, 2], [3, 4, 5]]);
    expect(a.mul(2).div(4).toArray()).toEqual([[0.5, 1, 1.5], [2, 2.5, 3]]);
    expect(a.pow(2).toArray()).toEqual([[1, 4, 9], [16, 25, 36]]);
    expect(ts.sub(1, a).toArray()).toEqual([[0, -1, -2], [-3, -4, -5]]);
    expect((a.neg().abs().sqrt().pow(2).toArray() as number[][])[1]).toEqual([4, 5, 6].map((v) => expect.closeTo(v, 5)));
    expect(a.sum().item()).toBe(21);
    expect(a.sum(0).toArray()).toEqual([5, 7, 9]);
    expect(a.mean(1, true).toArray()).toEqual([[2], [5]]);
    expect(a.max(1).toArray()).toEqual([3, 6]);
    expect(a.matmul(ts.tensor([[1], [0], [1]])).toArray()).toEqual([[4], [10]]);
  });

  test('views share storage; contiguous copies', () => {
    const x = ts.arange(24).reshape([2, 3, 4]);
    const p = x.permute([2, 0, 1]);
    expect(p.shape).toEqual([4, 2, 3]);
    expect(p.isContiguous()).toBe(false);
    expect(p.strides).toEqual([1, 12, 4]);
    const before = ts.memory().storages;
    const v = x.transpose(0, 2).slice(0, 1, 3);
    expect(ts.memory().storages).toBe(before);
    expect(v.shape).toEqual([2, 3, 2]);
    expect(v.contiguous().isContiguous()).toBe(true);
    expect(x.slice(2, 0, 4, 2).toArray()).toEqual([[[0, 2], [4, 6], [8, 10]], [[12, 14], [16, 18], [20, 22]]]);
    expect(x.chunk(2, 2).map((c) => c.shape)).toEqual([[2, 3, 2], [2, 3, 2]]);
    expect(ts.cat([x, x], 1).shape).toEqual([2, 6, 4]);
    expect(ts.stack([x, x], 0).shape).toEqual([2, 2, 3, 4]);
    expect(x.reshape([-1, 4]).shape).toEqual([6, 4]);
    expect(x.clone().toArray()).toEqual(x.toArray());
  });
});

describe('memory', () => {
  test('tidy frees what it does not return; dispose frees now', () => {
    const m0 = ts.memory();
    const kept = ts.tidy(() => {
      const a = ts.randn([100, 100]);
      const b = a.mul(2).add(1);
      return { out: b.sum(), also: [a.slice(0, 0, 1)] };
    });
    const m1 = ts.memory();
    expect(m1.tensors).toBe(m0.tensors + 2);
    kept.out.dispose();
    kept.also[0].dispose();
    expect(ts.memory().tensors).toBe(m0.tensors);
    expect(ts.memory().bytes.cpu).toBe(m0.bytes.cpu);
    const t = ts.zeros([1000]);
    expect(ts.memory().bytes.cpu).toBe(m0.bytes.cpu + 4000);
    t.dispose();
    t.dispose(); // twice is fine
    expect(t.isDisposed).toBe(true);
    expect(ts.memory().bytes.cpu).toBe(m0.bytes.cpu);
    {
      using u = ts.ones([10]);
      expect(u.numel).toBe(10);
    }
    expect(ts.memory().tensors).toBe(m0.tensors);
  });

  test('nested tidy hands results to the outer scope; peakBytes tracks the maximum', () => {
    const m0 = ts.memory().tensors;
    ts.resetPeakMemory();
    const base = ts.memory().peakBytes;
    const r = ts.tidy(() => {
      const inner = ts.tidy(() => ts.zeros([1 << 20]));
      ts.zeros([10]);
      return inner;
    });
    expect(ts.memory().tensors).toBe(m0 + 1);
    expect(ts.memory().peakBytes).toBeGreaterThanOrEqual(base + 4 * (1 << 20));
    r.dispose();
    expect(ts.memory().tensors).toBe(m0);
  });
});

test('info reports CPU features and CUDA availability without crashing', () => {
  const i = ts.info();
  expect(i.version).toMatch(/^\d+\.\d+\.\d+/);
  expect(i.cpu.threads).toBeGreaterThanOrEqual(1);
  expect(Array.isArray(i.cpu.features)).toBe(true);
  expect(typeof i.cuda.available).toBe('boolean');
  if (!i.cuda.available) expect(i.cuda.reason).toMatch(/CUDA/);
  expect(i.backend).toBe(i.cuda.available ? 'cuda' : 'cpu');
});

test('matmul precision, autocast scope and CUDA helpers', () => {
  expect(ts.getFloat32MatmulPrecision()).toBe('highest');
  const inside = ts.autocast('bfloat16', () => ts.getFloat32MatmulPrecision());
  expect(inside).toBe('medium');
  expect(ts.getFloat32MatmulPrecision()).toBe('highest');
  expect(() => ts.autocast('bfloat16', () => { throw new Error('boom'); })).toThrow('boom');
  expect(ts.getFloat32MatmulPrecision()).toBe('highest'); // restored after a throw
  expect(() => ts.setFloat32MatmulPrecision('low' as any)).toThrow(/setFloat32MatmulPrecision: expected 'highest', 'high' or 'medium', got 'low'/);
  expect(typeof ts.cuda.isAvailable()).toBe('boolean');
  ts.cuda.emptyCache(); // a no-op without a device
  if (!ts.cuda.isAvailable()) expect(() => ts.zeros([2], { device: 'cuda' })).toThrow(/full: device cuda:0 is not available/);
});

// Strided copies with a short last dim (one inner block of the last two dims) and
// reductions over axes in several runs (reduced one run at a time): against index loops.
describe('strided copies and multi-run reductions against index loops', () => {
  const strides = (shape: number[]): number[] => shape.map((_, i) => shape.slice(i + 1).reduce((p, s) => p * s, 1));
  const at = (flat: Float32Array, shape: number[], idx: number[]): number => flat[idx.reduce((o, v, i) => o + v * strides(shape)[i], 0)];
  const each = (shape: number[], f: (idx: number[]) => void): void => {
    const n = shape.reduce((p, s) => p * s, 1);
    for (let k = 0; k < n; k++) f(shape.map((s, i) => Math.floor(k / strides(shape)[i]) % s));
  };
  test.each([
    [[3, 4, 5, 2], [0, 2, 1, 3]],
    [[2, 3, 2, 3], [3, 0, 2, 1]],
    [[5, 2, 7, 3, 2], [2, 0, 4, 1, 3]],
  ])('permute %j by %j, then contiguous', (shape, perm) => {
    const x = ts.randn(shape);
    const y = x.permute(perm).contiguous();
    const xs = x.toFloat32Array(), ys = y.toFloat32Array();
    each(y.shape as number[], (idx) => {
      const src = shape.map((_, d) => idx[perm.indexOf(d)]);
      expect(at(ys, y.shape as number[], idx)).toBe(at(xs, shape, src));
    });
    const i = x.to('int32').permute(perm).contiguous().to('float32').toFloat32Array();
    const ri = x.to('int32').to('float32').permute(perm).contiguous().toFloat32Array();
    expect(Array.from(i)).toEqual(Array.from(ri));
  });
  test('a stride-0 last dim (the gradient of a 2x2 mean): expand then reshape', () => {
    const g = ts.randn([2, 3, 4, 1, 5, 1]);
    const y = g.expand([2, 3, 4, 2, 5, 2]).reshape([2, 3, 8, 10]);
    const gs = g.toFloat32Array(), ys = y.toFloat32Array();
    each([2, 3, 8, 10], ([a, b, h, w]) => expect(ys[((a * 3 + b) * 8 + h) * 10 + w]).toBe(gs[((a * 3 + b) * 4 + (h >> 1)) * 5 + (w >> 1)]));
  });
  test.each([
    ['sum', [1, 3]], ['mean', [1, 3]], ['max', [0, 2, 4]], ['min', [0, 3, 4]], ['mean', [0, 1, 3]],
  ] as const)('%s over axes %j of [3, 4, 2, 5, 2] (several runs), keepDim and not', (op, axes) => {
    const shape = [3, 4, 2, 5, 2];
    const x = ts.randn(shape);
    const xs = x.toFloat32Array();
    const kept = shape.map((s, i) => ((axes as readonly number[]).includes(i) ? 1 : s));
    const acc = new Map<string, number[]>();
    each(shape, (idx) => {
      const key = idx.map((v, i) => ((axes as readonly number[]).includes(i) ? 0 : v)).join(',');
      (acc.get(key) ?? acc.set(key, []).get(key)!).push(at(xs, shape, idx));
    });
    const red = (v: number[]): number =>
      op === 'sum' ? v.reduce((p, q) => p + q, 0) : op === 'mean' ? v.reduce((p, q) => p + q, 0) / v.length : op === 'max' ? Math.max(...v) : Math.min(...v);
    const y = (x as any)[op](axes as unknown as number[], true) as ts.Tensor;
    expect(y.shape).toEqual(kept);
    const ys = y.toFloat32Array();
    each(kept, (idx) => {
      const want = red(acc.get(idx.join(','))!);
      if (op === 'max' || op === 'min') expect(at(ys, kept, idx)).toBe(Math.fround(want));
      else expect(Math.abs(at(ys, kept, idx) - want)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(want)));
    });
    expect(((x as any)[op](axes as unknown as number[]) as ts.Tensor).shape).toEqual(shape.filter((_, i) => !(axes as readonly number[]).includes(i)));
  });
});
