// nn family (ts.F.*) against PyTorch fixtures (test/fixtures/gen_nn.py), forward and
// input gradients, on both the optimized and the reference CPU kernels; then
// finite-difference gradient checks. Errors and dropout: ops_nn_api.test.ts.
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { expectClose, gradcheck, loadFixture, nmse } from './helpers';

const F = ts.F;
const fx = loadFixture('nn');
const T = fx.tensors;
const ints = (name: string): number[] => Array.from(T[name].dataSync() as Int32Array);
const REDUCTIONS = ['mean', 'sum', 'none'] as const;

// Bounds on the normalized error: EXACT for pure copies (and float ops PyTorch
// evaluates in the same order), CLOSE for ops with reductions.
const EXACT = 1e-12;
const CLOSE = 1e-10;

/**
 * Runs fn on fresh leaves made from the fixture inputs `names` (ids stay as they
 * are), compares the output and every input gradient with PyTorch's.
 */
function check(key: string, names: string[], fn: (...xs: Tensor[]) => Tensor, fwdTol: number, bwdTol = fwdTol): void {
  ts.tidy(() => {
    const xs = names.map((n) => {
      const t = T[`${key}.${n}`];
      return t.dtype === 'float32' ? t.clone().requiresGrad_() : t;
    });
    const out = fn(...xs);
    const want = T[`${key}.out`];
    expect(out.shape).toEqual(want.shape);
    expectClose(out, want, fwdTol);
    out.mul(T[`${key}.w`]).sum().backward();
    names.forEach((n, i) => {
      const g = T[`${key}.g${n}`];
      if (!g) return;
      try {
        expectClose(xs[i].grad!, g, bwdTol);
      } catch (e) {
        throw new Error(`${key}: gradient of ${n}: ${(e as Error).message}`);
      }
    });
  });
}

describe.each([
  ['optimized', false],
  ['reference', true],
])('nn ops match PyTorch (%s kernels)', (_name, reference) => {
  beforeAll(() => ts.setReferenceKernels(reference));
  afterAll(() => ts.setReferenceKernels(false));

  test('softmax and logSoftmax', () => {
    for (const [k, axis] of [[0, 1], [1, -1]]) {
      check(`softmax${k}`, ['x'], (x) => F.softmax(x, axis), CLOSE);
      check(`logSoftmax${k}`, ['x'], (x) => F.logSoftmax(x, axis), CLOSE);
    }
  });

  test('layerNorm (affine, weight only, none) ', () => {
    check('layerNorm0', ['x', 'weight', 'bias'], (x, w, b) => F.layerNorm(x, [13], w, b), CLOSE);
    check('layerNorm1', ['x', 'weight'], (x, w) => F.layerNorm(x, [4, 6], w), CLOSE);
    check('layerNorm2', ['x'], (x) => F.layerNorm(x, [9], null, null, 1e-5), CLOSE);
  });

  test('groupNorm on 4-D, 5-D and 3-D inputs', () => {
    check('groupNorm0', ['x', 'weight', 'bias'], (x, w, b) => F.groupNorm(x, 3, w, b), CLOSE);
    check('groupNorm1', ['x', 'weight', 'bias'], (x, w, b) => F.groupNorm(x, 2, w, b), CLOSE);
    check('groupNorm2', ['x'], (x) => F.groupNorm(x, 4), CLOSE);
  });

  test('rmsNorm', () => {
    check('rmsNorm0', ['x', 'weight'], (x, w) => F.rmsNorm(x, w), CLOSE);
    check('rmsNorm1', ['x'], (x) => F.rmsNorm(x), CLOSE);
  });

  test('modulate', () => {
    for (const k of [0, 1]) check(`modulate${k}`, ['x', 'shift', 'scale'], (x, s, c) => F.modulate(x, s, c), EXACT, CLOSE);
  });

  test('linear (folded leading dims, a K over one GEMM slab, no bias)', () => {
    check('linear0', ['x', 'weight', 'bias'], (x, w, b) => F.linear(x, w, b), CLOSE);
    check('linear1', ['x', 'weight', 'bias'], (x, w, b) => F.linear(x, w, b), CLOSE);
    check('linear2', ['x', 'weight'], (x, w) => F.linear(x, w), CLOSE);
  });

  test('embedding (int32 and int64 ids)', () => {
    expect(T['embedding0.ids'].dtype).toBe('int32');
    expect(T['embedding1.ids'].dtype).toBe('int64');
    for (const k of [0, 1]) check(`embedding${k}`, ['ids', 'weight'], (i, w) => F.embedding(i, w), EXACT, CLOSE);
  });

  test('mseLoss and l1Loss with each reduction', () => {
    for (const k of [0, 1, 2]) {
      const red = REDUCTIONS[ints(`mseLoss${k}.reduction`)[0]];
      check(`mseLoss${k}`, ['a', 'b'], (a, b) => F.mseLoss(a, b, red), CLOSE);
      check(`l1Loss${k}`, ['a', 'b'], (a, b) => F.l1Loss(a, b, red), CLOSE);
    }
  });

  test('gaussianKL', () => {
    for (const k of [0, 1]) check(`gaussianKL${k}`, ['mean', 'logvar'], (m, lv) => F.gaussianKL(m, lv), CLOSE);
  });

  test('interpolate (nearest, integer factors)', () => {
    for (const k of [0, 1]) {
      const scaleFactor = ints(`interpolate${k}.scale`);
      check(`interpolate${k}`, ['x'], (x) => F.interpolate(x, { scaleFactor, mode: 'nearest' }), EXACT);
    }
  });

  test('patchify and unpatchify', () => {
    for (const k of [0, 1]) {
      const patch = ints(`patchify${k}.patch`), grid = ints(`unpatchify${k}.grid`);
      const channels = T[`patchify${k}.x`].shape[1];
      check(`patchify${k}`, ['x'], (x) => F.patchify(x, patch), EXACT);
      check(`unpatchify${k}`, ['tokens'], (t) => F.unpatchify(t, { channels, grid, patch }), EXACT);
    }
  });
});

describe('strided inputs give the same results as contiguous ones', () => {
  test('each op on permuted views', () => {
    ts.tidy(() => {
      ts.manualSeed(3);
      /** f on the given (non-contiguous) views and on contiguous copies: equal values. */
      const same = (f: (...x: Tensor[]) => Tensor, ...views: Tensor[]): void => {
        for (const v of views) expect(v.isContiguous()).toBe(false);
        const a = f(...views).toFloat32Array(), b = f(...views.map((v) => v.contiguous())).toFloat32Array();
        expect(nmse(a, b)).toBe(0);
      };
      const x = ts.randn([6, 2, 5, 4, 3]).permute([1, 0, 4, 3, 2]); // [2, 6, 3, 4, 5]
      same((v) => F.groupNorm(v, 3), x);
      same((v) => F.layerNorm(v, [4, 5]), x);
      same((v) => F.rmsNorm(v), x);
      same((v) => F.softmax(v, 2), x);
      same((v) => F.logSoftmax(v, 0), x);
      same((v) => F.patchify(v, [3, 2, 5]), x);
      same((v) => F.interpolate(v, { scaleFactor: 2 }), x);
      same((a, b) => F.mseLoss(a, b), x, ts.randn([6, 2, 5, 4, 3]).permute([1, 0, 4, 3, 2]));
      const t = ts.randn([5, 7, 2]).permute([2, 1, 0]); // [2, 7, 5]
      const sh = ts.randn([5, 2]).transpose(0, 1), sc = ts.randn([5, 2]).transpose(0, 1);
      same((a, b, c) => F.modulate(a, b, c), t, sh, sc);
      same((a) => F.unpatchify(a, { channels: 1, grid: [1, 7, 1], patch: [1, 1, 5] }), t);
      same((a, b) => F.l1Loss(a, b, 'none'), t, ts.randn([5, 7, 2]).permute([2, 1, 0]));
      const ids = ts.tensor(new Int32Array([0, 1, 2, 2, 1, 0]), { shape: [2, 3] }).transpose(0, 1);
      same((w) => F.embedding(ids, w), ts.randn([3, 4]).transpose(0, 1));
    });
  });
});

describe('finite-difference gradient checks', () => {
  const r = (shape: number[], seed: number, scale = 1, shift = 0): Tensor => {
    ts.manualSeed(seed);
    return ts.keep(ts.randn(shape).mul(scale).add(shift).requiresGrad_());
  };
  test('softmax and logSoftmax over an inner and an outer axis', () => {
    gradcheck((x) => F.softmax(x, 1), [r([3, 5, 4], 1)]);
    gradcheck((x) => F.logSoftmax(x, 0), [r([5, 7], 2)]);
  });
  test('norms with affine parameters', () => {
    gradcheck((x, w, b) => F.layerNorm(x, [7], w, b), [r([5, 7], 3), r([7], 4, 1, 1), r([7], 5)]);
    gradcheck((x, w, b) => F.groupNorm(x, 2, w, b), [r([2, 4, 3, 5], 6), r([4], 7, 1, 1), r([4], 8)]);
    gradcheck((x, w) => F.rmsNorm(x, w), [r([4, 9], 9), r([9], 10, 1, 1)]);
  });
  test('linear with and without bias', () => {
    gradcheck((x, w, b) => F.linear(x, w, b), [r([2, 3, 5], 22), r([4, 5], 23), r([4], 24)]);
    gradcheck((x, w) => F.linear(x, w), [r([7, 3], 25), r([2, 3], 26)]);
  });
  test('modulate, embedding, losses and gaussianKL', () => {
    gradcheck((x, s, c) => F.modulate(x, s, c), [r([2, 5, 7], 11), r([2, 7], 12), r([2, 7], 13)]);
    const ids = ts.keep(ts.tensor(new Int32Array([0, 3, 3, 1, 4, 0]), { shape: [2, 3] }));
    gradcheck((w) => F.embedding(ids, w), [r([5, 4], 14)]);
    gradcheck((a, b) => F.mseLoss(a, b, 'sum'), [r([4, 5], 15), r([4, 5], 16)]);
    gradcheck((a, b) => F.l1Loss(a, b, 'none'), [r([4, 5], 17), r([4, 5], 18)]);
    gradcheck((m, lv) => F.gaussianKL(m, lv), [r([3, 2, 4], 19), r([3, 2, 4], 20, 0.5)]);
  });
  test('dropout with a replayed generator state', () => {
    ts.manualSeed(21);
    const state = ts.getRngState();
    gradcheck(
      (x) => {
        ts.setRngState(state);
        return F.dropout(x, 0.4);
      },
      [r([6, 7], 22)],
    );
  });
  test('interpolate, patchify and unpatchify', () => {
    gradcheck((x) => F.interpolate(x, { scaleFactor: [2, 1, 3] }), [r([1, 2, 2, 3, 2], 23)]);
    gradcheck((x) => F.patchify(x, [1, 2, 3]), [r([1, 2, 2, 4, 3], 24)]);
    gradcheck((t) => F.unpatchify(t, { channels: 2, grid: [2, 1, 2], patch: [1, 2, 2] }), [r([2, 4, 8], 25)]);
  });
});
