// nn family (ts.F.*): dropout behaviour, memory, and bad inputs (each message names
// the op and what it expected). Values against PyTorch: ops_nn.test.ts.
import * as ts from '../../lib';
import { Tensor } from '../../lib';

const F = ts.F;

describe('dropout', () => {
  test('keeps about 1-p of the elements, scaled by 1/(1-p), and the backward uses the same mask', () => {
    ts.tidy(() => {
      ts.manualSeed(7);
      const x = ts.ones([200, 500]).requiresGrad_();
      const y = F.dropout(x, 0.3);
      const v = y.toFloat32Array();
      let kept = 0, worst = 0;
      for (const e of v) {
        if (e === 0) continue;
        kept++;
        worst = Math.max(worst, Math.abs(e - 1 / 0.7));
      }
      expect(worst).toBeLessThan(1e-6);
      expect(Math.abs(kept / v.length - 0.7)).toBeLessThan(0.01);
      y.sum().backward();
      expect(Array.from(x.grad!.toFloat32Array())).toEqual(Array.from(v)); // d(sum)/dx = mask / (1-p) = y
    });
  });

  test('is reproducible from the global seed and advances the generator', () => {
    ts.tidy(() => {
      const x = ts.randn([3, 1001]);
      ts.manualSeed(11);
      const a = F.dropout(x, 0.5).toFloat32Array();
      expect(ts.getRngState().offset).toBe(Math.ceil(3003 / 4)); // one Philox block per 4 elements
      const c = F.dropout(x, 0.5).toFloat32Array();
      ts.manualSeed(11);
      const b = F.dropout(x, 0.5).toFloat32Array();
      expect(Array.from(b)).toEqual(Array.from(a));
      expect(Array.from(c)).not.toEqual(Array.from(a));
    });
  });

  test('is the identity when not training or p = 0 (no draw, gradient passes through)', () => {
    ts.tidy(() => {
      const x = ts.randn([4, 5]).requiresGrad_();
      ts.manualSeed(1);
      for (const y of [F.dropout(x, 0.5, false), F.dropout(x, 0)]) {
        expect(Array.from(y.toFloat32Array())).toEqual(Array.from(x.toFloat32Array()));
        y.sum().backward();
      }
      expect(ts.getRngState().offset).toBe(0);
      expect(Array.from(x.grad!.toFloat32Array()).every((g) => g === 2)).toBe(true);
    });
  });
});

describe('memory', () => {
  test('forward + backward of every op leaves no live tensors behind', () => {
    const ids = ts.tensor(new Int32Array([0, 2, 1, 2]), { shape: [2, 2] });
    const before = ts.memory();
    ts.tidy(() => {
      ts.manualSeed(2);
      const x = ts.randn([2, 4, 2, 4, 6]).requiresGrad_();
      const w = ts.randn([4]).requiresGrad_(), b = ts.randn([4]).requiresGrad_();
      const tok = F.patchify(F.groupNorm(x, 2, w, b), [2, 2, 2]); // [2, 6, 32]
      const s = ts.randn([2, 32]).requiresGrad_();
      let h = F.modulate(F.layerNorm(tok, [32], null, s.slice(0, 0, 1).reshape([32])), s, s.mul(0.1));
      h = F.dropout(F.softmax(F.rmsNorm(h), -1), 0.2).add(F.logSoftmax(h, 1).mul(0.01));
      const img = F.unpatchify(h, { channels: 4, grid: [1, 2, 3], patch: [2, 2, 2] });
      const up = F.interpolate(img, { scaleFactor: [1, 2, 2] });
      const table = ts.randn([3, 5]).requiresGrad_();
      const e = F.embedding(ids, table);
      const loss = F.mseLoss(up, up.detach().mul(0.5))
        .add(F.l1Loss(x, x.detach().mul(2), 'sum'))
        .add(F.gaussianKL(x, x.mul(0.1)))
        .add(e.sum());
      loss.backward();
      expect(x.grad!.shape).toEqual([2, 4, 2, 4, 6]);
      expect(w.grad!.shape).toEqual([4]);
      expect(s.grad!.shape).toEqual([2, 32]);
      expect(table.grad!.shape).toEqual([3, 5]);
      for (const leaf of [x, w, b, s, table]) leaf.grad!.dispose(); // grads outlive tidy by design
    });
    const after = ts.memory();
    expect([after.tensors, after.storages, after.bytes.cpu]).toEqual([before.tensors, before.storages, before.bytes.cpu]);
    ids.dispose();
  });
});

describe('bad inputs name the op and what was expected', () => {
  const x2 = ts.keep(ts.randn([3, 4]));
  const x3 = ts.keep(ts.randn([2, 6, 4]));
  const x5 = ts.keep(ts.randn([1, 2, 5, 4, 4]));
  const i32 = ts.keep(ts.tensor(new Int32Array([0, 1, 2]), { shape: [3] }));
  const bad = (fn: () => unknown, msg: string | RegExp): void => expect(fn).toThrow(msg);

  test('wrong dtype', () => {
    bad(() => F.softmax(i32, 0), 'softmax: expected input of dtype float32, got int32');
    bad(() => F.layerNorm(x2, [4], i32 as Tensor), 'layerNorm: expected weight of dtype float32, got int32');
    bad(() => F.embedding(x2, x2), 'embedding: expected ids of dtype int32 or int64, got float32');
    bad(() => F.mseLoss(x2, 3 as unknown as Tensor), 'mseLoss: expected target to be a Tensor, got number');
    bad(() => F.gaussianKL(i32, i32), 'gaussianKL: expected mean of dtype float32, got int32');
  });

  test('bad axis and wrong ranks', () => {
    bad(() => F.softmax(x2, 2), 'softmax: axis 2 is out of range for a tensor of rank 2');
    bad(() => F.logSoftmax(x2, -3), 'logSoftmax: axis -3 is out of range for a tensor of rank 2');
    bad(() => F.softmax(x2, 0.5), 'softmax: expected an integer axis');
    bad(() => F.groupNorm(i32.to('float32'), 1), 'groupNorm: expected input of shape [B, C, ...] (rank >= 2), got [3]');
    bad(() => F.modulate(x2, x2, x2), 'modulate: expected x of shape [B, N, D], got [3, 4]');
    bad(() => F.embedding(i32, x3), 'embedding: expected weight of shape [V, D], got [2, 6, 4]');
    bad(() => F.interpolate(x3, { scaleFactor: 2 }), 'interpolate: expected input of shape [B, C, T, H, W], got [2, 6, 4]');
    bad(() => F.patchify(x2, [1, 1, 1]), 'patchify: expected input of shape [B, C, T, H, W], got [3, 4]');
    bad(() => F.gaussianKL(ts.tensor(1), ts.tensor(1)), 'gaussianKL: expected mean of shape [B, ...] with B >= 1, got []');
  });

  test('mismatched shapes', () => {
    bad(() => F.layerNorm(x3, [6]), 'layerNorm: expected input whose trailing dims are normalizedShape [6], got input of shape [2, 6, 4]');
    bad(() => F.layerNorm(x3, [4], ts.randn([5])), 'layerNorm: expected weight of shape [4], got [5]');
    bad(() => F.groupNorm(x3, 4), 'groupNorm: expected channels C = 6 to be divisible by numGroups = 4');
    bad(() => F.groupNorm(x3, 3, ts.randn([4])), 'groupNorm: expected weight of shape [6], got [4]');
    bad(() => F.rmsNorm(x3, ts.randn([6])), 'rmsNorm: expected weight of shape [4], got [6]');
    bad(() => F.modulate(x3, ts.randn([2, 6]), ts.randn([2, 4])), 'modulate: expected shift of shape [2, 4] ([B, D]), got [2, 6]');
    bad(() => F.mseLoss(x3, x2), 'mseLoss: expected input and target of one shape, got [2, 6, 4] and [3, 4]');
    bad(() => F.l1Loss(x2, x3, 'sum'), 'l1Loss: expected input and target of one shape, got [3, 4] and [2, 6, 4]');
    bad(() => F.gaussianKL(x3, x2), 'gaussianKL: expected mean and logvar of one shape, got [2, 6, 4] and [3, 4]');
  });

  test('patch sizes and token shapes', () => {
    bad(() => F.patchify(x5, [2, 2, 2]), 'patchify: expected T, H, W divisible by the patch [2, 2, 2], got input [1, 2, 5, 4, 4] (T = 5 is not divisible by pt = 2)');
    bad(() => F.patchify(x5, [1, 3, 1]), '(H = 4 is not divisible by ph = 3)');
    bad(() => F.patchify(x5, [2, 2]), 'patchify: expected patch to be 3 positive integers [pt, ph, pw], got [2, 2]');
    bad(() => F.patchify(x5, [1, 0, 1]), 'patchify: expected patch to be 3 positive integers [pt, ph, pw], got [1, 0, 1]');
    const tok = ts.randn([1, 10, 16]);
    bad(() => F.unpatchify(tok, { channels: 2, grid: [2, 2, 2], patch: [2, 2, 2] }),
      "unpatchify: expected tokens of shape [B, 8, 16] (N = T'H'W' = 2*2*2, features = channels*pt*ph*pw = 2*2*2*2), got [1, 10, 16]");
    bad(() => F.unpatchify(tok, { channels: 2.5, grid: [2, 5, 1], patch: [2, 2, 2] }), 'unpatchify: expected channels to be an integer, got number 2.5');
    bad(() => F.unpatchify(tok, { channels: 2, grid: [10], patch: [2, 2, 2] }), "unpatchify: expected grid to be 3 positive integers [T', H', W'], got [10]");
    bad(() => F.unpatchify(tok, undefined as never), 'unpatchify: expected options { channels, grid');
  });

  test('interpolate options', () => {
    bad(() => F.interpolate(x5, { scaleFactor: [2, 2] }), 'interpolate: expected scaleFactor to be 3 positive integers [t, h, w], got [2, 2]');
    bad(() => F.interpolate(x5, { scaleFactor: 1.5 }), 'interpolate: expected scaleFactor to be 3 positive integers [t, h, w], got number 1.5');
    bad(() => F.interpolate(x5, { scaleFactor: 2, mode: 'trilinear' as 'nearest' }), "interpolate: expected mode 'nearest' (the only mode supported), got 'trilinear'");
  });

  test('p out of range, reductions and eps', () => {
    bad(() => F.dropout(x2, 1), 'dropout: expected p in [0, 1), got 1');
    bad(() => F.dropout(x2, -0.1, false), 'dropout: expected p in [0, 1), got -0.1');
    bad(() => F.dropout(x2, NaN), 'dropout: expected p in [0, 1), got NaN');
    bad(() => F.dropout(x2, 0.1, 'yes' as unknown as boolean), 'dropout: expected training to be a boolean, got string');
    bad(() => F.mseLoss(x2, x2, 'avg' as 'mean'), "mseLoss: expected reduction 'mean', 'sum' or 'none', got string avg");
    bad(() => F.layerNorm(x2, [4], null, null, -1), 'layerNorm: expected a finite eps >= 0, got -1');
    bad(() => F.rmsNorm(x2, null, Infinity), 'rmsNorm: expected eps to be a finite number, got number Infinity');
    bad(() => F.groupNorm(x3, 0), 'groupNorm: expected numGroups >= 1, got 0');
    bad(() => F.layerNorm(x2, 'x' as unknown as number[]), 'layerNorm: expected normalizedShape to be an array of integers, got string');
  });

  test('ids out of range', () => {
    const w = ts.randn([5, 3]);
    bad(() => F.embedding(ts.tensor(new Int32Array([0, 4, 7]), { shape: [3] }), w),
      'embedding: id 7 (at flat position 2) is out of range for 5 embeddings (expected 0 <= id < 5)');
    bad(() => F.embedding(ts.tensor(new BigInt64Array([-1n]), { shape: [1] }), w), 'embedding: id -1 (at flat position 0) is out of range for 5 embeddings');
  });
});
