// Autograd: leaves, accumulation, noGrad, detach, freed graphs, checkpoint.
import * as ts from '../../lib';
import { gradcheck } from './helpers';

test('gradients accumulate across backward calls until zeroed', () => {
  const x = ts.tensor([1, 2, 3], { requiresGrad: true });
  x.mul(x).sum().backward();
  expect(x.grad!.toArray()).toEqual([2, 4, 6]);
  x.mul(3).sum().backward();
  expect(x.grad!.toArray()).toEqual([5, 7, 9]);
  x.grad!.dispose();
  x.grad = null;
  x.sum().backward();
  expect(x.grad!.toArray()).toEqual([1, 1, 1]);
});

test('a value used twice gets both contributions; backward with an explicit grad', () => {
  const x = ts.tensor([[1, 2], [3, 4]], { requiresGrad: true });
  const y = x.add(x).mul(x); // 2x^2
  y.backward(ts.tensor([[1, 0], [0, 1]]));
  expect(x.grad!.toArray()).toEqual([[4, 0], [0, 16]]);
});

test('noGrad records nothing; detach cuts the graph', () => {
  const x = ts.tensor([1, 2], { requiresGrad: true });
  const y = ts.noGrad(() => x.mul(2));
  expect(y.requiresGrad).toBe(false);
  expect(() => y.sum().backward()).toThrow(/does not require grad/);
  const d = x.mul(2).detach();
  expect(d.requiresGrad).toBe(false);
  expect(ts.isGradEnabled()).toBe(true);
});

test('saved tensors are freed after backward; a second backward is a clear error', () => {
  const x = ts.randn([50, 50], { requiresGrad: true });
  const before = ts.memory().tensors;
  const loss = x.tanh().mul(x).sum();
  loss.backward();
  const after = ts.memory().tensors;
  expect(() => loss.backward()).toThrow(/graph was already freed.*retainGraph/);
  // retainGraph keeps it
  const l2 = x.exp().sum();
  l2.backward(undefined, { retainGraph: true });
  l2.backward();
  expect(after).toBeLessThanOrEqual(before + 6);
});

test('tidy around forward and backward leaves only leaf gradients', () => {
  const w = ts.keep(ts.randn([8, 8], { requiresGrad: true }));
  const m0 = ts.memory().tensors;
  for (let i = 0; i < 5; i++) {
    ts.tidy(() => {
      const y = ts.randn([4, 8]).matmul(w).tanh().sum();
      y.backward();
    });
  }
  expect(ts.memory().tensors).toBe(m0 + 1); // w.grad
  expect(w.grad!.shape).toEqual([8, 8]);
});

test('checkpoint recomputes in backward and gives the same gradients', () => {
  ts.manualSeed(5);
  const w1 = ts.randn([6, 6], { requiresGrad: true });
  const w2 = ts.randn([6, 6], { requiresGrad: true });
  const x = ts.randn([3, 6], { requiresGrad: true });
  const block = (h: ts.Tensor): ts.Tensor => h.matmul(w1).tanh().matmul(w2).sigmoid();
  block(x).sum().backward();
  const g = [x, w1, w2].map((t) => t.grad!.toArray());
  for (const t of [x, w1, w2]) (t.grad!.dispose(), (t.grad = null));
  const out = ts.checkpoint(block, x);
  expect(out.requiresGrad).toBe(true);
  out.sum().backward();
  expect([x, w1, w2].map((t) => t.grad!.toArray())).toEqual(g);
  // parameters inside fn still get gradients when the input needs none
  for (const t of [w1, w2]) (t.grad!.dispose(), (t.grad = null));
  ts.checkpoint(block, ts.randn([3, 6])).sum().backward();
  expect(w1.grad).not.toBeNull();
  gradcheck((a) => ts.checkpoint((h) => h.mul(h).tanh(), a), [ts.randn([4, 5], { requiresGrad: true })]);
});

test('gradcheck notices a wrong gradient (the check can fail)', () => {
  // sin with a deliberately wrong backward, recorded through the public pieces
  const wrongSin = (x: ts.Tensor): ts.Tensor => {
    const out = ts.sin(x.detach());
    return ts.add(out, x.mul(0)); // gradient 0 instead of cos(x)
  };
  expect(() => gradcheck(wrongSin, [ts.randn([5], { requiresGrad: true })])).toThrow(/gradcheck/);
});

test('a forward in tidy without noGrad frees its saved tensors at tidy exit', () => {
  const w = ts.keep(ts.randn([16, 16], { requiresGrad: true }));
  const before = ts.memory();
  ts.tidy(() => {
    ts.randn([4, 16]).matmul(w).tanh().exp().sum();
  });
  const after = ts.memory();
  expect(after.tensors).toBe(before.tensors);
  expect(after.bytes.cpu).toBe(before.bytes.cpu);
  // a returned result keeps its graph alive and can still be backpropagated
  const y = ts.tidy(() => ts.randn([4, 16]).matmul(w).tanh().sum());
  y.backward();
  expect(w.grad!.shape).toEqual([16, 16]);
});

test('backward works after a tidy disposed the intermediates of the graph', () => {
  // A loss returned from tidy: its graph's intermediate inputs (here the output of
  // embedding, then reshaped) are disposed before backward runs.
  const w = ts.randn([4, 3], { requiresGrad: true });
  const loss = ts.tidy(() => ts.F.embedding(ts.tensor(Int32Array.from([1, 3])), w).reshape([2, 3, 1]).mul(2).sum());
  loss.backward();
  expect(w.grad!.toArray()).toEqual([[0, 0, 0], [2, 2, 2], [0, 0, 0], [2, 2, 2]]);
});

test('clamp passes the gradient only inside the range', () => {
  const x = ts.tensor([-2, -0.25, 0.5, 3], { requiresGrad: true });
  const y = x.clamp(-1, 1);
  expect(y.toArray()).toEqual([-1, -0.25, 0.5, 1]);
  y.mul(ts.tensor([1, 2, 3, 4])).sum().backward();
  expect(x.grad!.toArray()).toEqual([0, 2, 3, 0]);
  expect(x.clamp(0).toArray()).toEqual([0, 0, 0.5, 3]);
  expect(() => x.clamp(2, 1)).toThrow(/clamp: expected lo <= hi, got 2 > 1/);
});

describe('gradients of slices of one tensor are gathered', () => {
  // Each case slices y = x * w (a non-leaf: the engine gathers its slices' gradients)
  // and weighs every slice differently; the same graph on the leaf x (whose slices
  // take the per-slice backward) gives the reference gradient, times w.
  const shape = [2, 6, 3];
  const cases: [string, (t: ts.Tensor) => ts.Tensor[]][] = [
    ['slices that tile an axis in order (cat)', (t) => [t.slice(1, 0, 2), t.slice(1, 2, 3), t.slice(1, 3, 6)]],
    ['tiling slices taken out of order, negative start', (t) => [t.slice(1, -2), t.slice(1, 0, 4)]],
    ['chunks of the last axis', (t) => t.chunk(3, 2)],
    ['disjoint strided slices with a gap (zeros + copies)', (t) => [t.slice(1, 0, 6, 2), t.slice(1, 3, 4)]],
    ['overlapping slices (summed)', (t) => [t.slice(1, 0, 4), t.slice(1, 2, 6), t.slice(1, 1, 2)]],
    ['slices along two axes', (t) => [t.slice(1, 0, 3), t.slice(2, 1, 3)]],
    ['one slice', (t) => [t.slice(0, 1, 2)]],
  ];
  for (const [name, cut] of cases) {
    test(name, () => {
      ts.manualSeed(3);
      const x = ts.randn(shape, { requiresGrad: true });
      const w = ts.randn(shape);
      const loss = (parts: ts.Tensor[], extra: ts.Tensor | null) => {
        let total = extra ? extra.square().sum() : ts.zeros([]);
        parts.forEach((p, i) => (total = total.add(p.square().mul(i + 1).sum())));
        return total;
      };
      // Reference: slices of the leaf x, then the chain rule through y = x * w by hand.
      const xr = x.detach().mul(w).requiresGrad_();
      loss(cut(xr), null).backward();
      const expected = xr.grad!.mul(w).toArray();
      const y = x.mul(w);
      loss(cut(y), null).backward();
      expect(x.grad!.toArray()).toEqual(expected);
      // With another consumer of y besides the slices, the contributions add up.
      x.grad = null;
      xr.grad = null;
      loss(cut(xr), xr).backward();
      const expected2 = xr.grad!.mul(w).toArray();
      const y2 = x.mul(w);
      loss(cut(y2), y2).backward();
      const got = x.grad!.toArray() as number[][][];
      (expected2 as number[][][]).forEach((a, i) => a.forEach((b, j) => b.forEach((v, k) => expect(got[i][j][k]).toBeCloseTo(v, 5))));
    });
  }
});
