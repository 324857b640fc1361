// Fused norms (ts.F.groupNormSiLU, ts.F.layerNormModulate) against PyTorch's unfused
// compositions (test/fixtures/gen_fused.py), forward and input gradients, on the
// optimized and the reference CPU kernels; against tessera's own unfused ops;
// finite-difference gradients; strided inputs; argument errors; no leaked tensors.
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { expectClose, gradcheck, loadFixture, nmse } from './helpers';

const F = ts.F;
const T = loadFixture('fused').tensors;
const CLOSE = 1e-10;

/** Frees the leaves' gradients (they outlive tidy by design). */
function dropGrads(...leaves: Tensor[]): void {
  for (const t of leaves) t.grad?.dispose(), (t.grad = null);
}

/** fn on fresh leaves made from the fixture inputs `names`; output and gradients vs PyTorch. */
function check(key: string, names: string[], fn: (...xs: Tensor[]) => Tensor): void {
  ts.tidy(() => {
    const xs = names.map((n) => T[`${key}.${n}`].clone().requiresGrad_());
    const out = fn(...xs);
    expect(out.shape).toEqual(T[`${key}.out`].shape);
    expectClose(out, T[`${key}.out`], CLOSE);
    out.mul(T[`${key}.w`]).sum().backward();
    names.forEach((n, i) => {
      try {
        expectClose(xs[i].grad!, T[`${key}.g${n}`], CLOSE);
      } catch (e) {
        throw new Error(`${key}: gradient of ${n}: ${(e as Error).message}`);
      }
    });
    dropGrads(...xs);
  });
}

describe.each([
  ['optimized', false],
  ['reference', true],
])('fused norms match PyTorch (%s kernels)', (_name, reference) => {
  beforeAll(() => ts.setReferenceKernels(reference));
  afterAll(() => ts.setReferenceKernels(false));

  test('groupNormSiLU on 5-D, 4-D and 3-D inputs', () => {
    check('groupNormSiLU0', ['x', 'weight', 'bias'], (x, w, b) => F.groupNormSiLU(x, 4, w, b));
    check('groupNormSiLU1', ['x', 'weight', 'bias'], (x, w, b) => F.groupNormSiLU(x, 3, w, b, 1e-5));
    check('groupNormSiLU2', ['x'], (x) => F.groupNormSiLU(x, 2));
  });

  test('groupNormSiLU per frame (groups per (b, t) of [B, C, T, H, W])', () => {
    check('groupNormSiLUFrames0', ['x', 'weight', 'bias'], (x, w, b) => F.groupNormSiLU(x, 4, w, b, 1e-5, { perFrame: true }));
    check('groupNormSiLUFrames1', ['x'], (x) => F.groupNormSiLU(x, 3, null, null, 1e-5, { perFrame: true }));
  });

  test('layerNormModulate', () => {
    for (const k of [0, 1]) check(`layerNormModulate${k}`, ['x', 'shift', 'scale'], (x, s, c) => F.layerNormModulate(x, s, c));
  });
});

describe('fused norms', () => {
  test('equal the unfused ops they replace, values and gradients', () => {
    ts.tidy(() => {
      ts.manualSeed(5);
      const x = ts.randn([2, 8, 3, 4, 5]).mul(2).requiresGrad_(), w = ts.randn([8]).requiresGrad_(), b = ts.randn([8]).requiresGrad_();
      const g = ts.randn([2, 8, 3, 4, 5]);
      const grads = (f: () => Tensor): Float32Array[] => {
        dropGrads(x, w, b);
        const y = f();
        y.backward(g);
        return [y.toFloat32Array(), ...[x, w, b].map((t) => t.grad!.toFloat32Array())];
      };
      const fused = grads(() => F.groupNormSiLU(x, 4, w, b));
      const plain = grads(() => F.silu(F.groupNorm(x, 4, w, b)));
      fused.forEach((v, i) => expect(nmse(v, plain[i])).toBeLessThan(CLOSE));

      const t = ts.randn([2, 33, 24]).requiresGrad_(), sh = ts.randn([2, 24]).requiresGrad_(), sc = ts.randn([2, 24]).requiresGrad_();
      const gt = ts.randn([2, 33, 24]);
      const grads2 = (f: () => Tensor): Float32Array[] => {
        dropGrads(t, sh, sc);
        const y = f();
        y.backward(gt);
        return [y.toFloat32Array(), ...[t, sh, sc].map((u) => u.grad!.toFloat32Array())];
      };
      const fused2 = grads2(() => F.layerNormModulate(t, sh, sc));
      const plain2 = grads2(() => F.modulate(F.layerNorm(t, [24], null, null, 1e-6), sh, sc));
      fused2.forEach((v, i) => expect(nmse(v, plain2[i])).toBeLessThan(CLOSE));
      dropGrads(x, w, b, t, sh, sc);
    });
  });

  test('gradcheck', () => {
    ts.tidy(() => {
      ts.manualSeed(7);
      const x = ts.randn([2, 4, 3, 5]).requiresGrad_(), w = ts.randn([4]).add(1).requiresGrad_(), b = ts.randn([4]).requiresGrad_();
      gradcheck((a, c, d) => F.groupNormSiLU(a, 2, c, d), [x, w, b]);
      const xf = ts.randn([2, 4, 3, 2, 3]).requiresGrad_();
      gradcheck((a, c, d) => F.groupNormSiLU(a, 2, c, d, 1e-5, { perFrame: true }), [xf, w, b]);
      dropGrads(xf);
      const t = ts.randn([2, 3, 7]).requiresGrad_(), sh = ts.randn([2, 7]).requiresGrad_(), sc = ts.randn([2, 7]).mul(0.5).requiresGrad_();
      gradcheck((a, c, d) => F.layerNormModulate(a, c, d), [t, sh, sc]);
      dropGrads(x, w, b, t, sh, sc);
    });
  });

  test('strided inputs give the results of contiguous copies', () => {
    ts.tidy(() => {
      ts.manualSeed(9);
      const x = ts.randn([6, 2, 5, 4]).permute([1, 0, 3, 2]); // [2, 6, 4, 5]
      const t = ts.randn([24, 9, 2]).permute([2, 1, 0]); // [2, 9, 24]
      const sh = ts.randn([24, 2]).transpose(0, 1), sc = ts.randn([24, 2]).transpose(0, 1);
      expect(x.isContiguous() || t.isContiguous() || sh.isContiguous()).toBe(false);
      expect(nmse(F.groupNormSiLU(x, 3).toFloat32Array(), F.groupNormSiLU(x.contiguous(), 3).toFloat32Array())).toBe(0);
      const a = F.layerNormModulate(t, sh, sc).toFloat32Array();
      const c = F.layerNormModulate(t.contiguous(), sh.contiguous(), sc.contiguous()).toFloat32Array();
      expect(nmse(a, c)).toBe(0);
    });
  });

  test('bad arguments name the op and what was expected', () => {
    ts.tidy(() => {
      const x = ts.randn([2, 6, 4]);
      expect(() => F.groupNormSiLU(x, 4)).toThrow('groupNormSiLU: expected channels C = 6 to be divisible by numGroups = 4');
      expect(() => F.groupNormSiLU(x, 1.5)).toThrow('groupNormSiLU: expected numGroups to be an integer');
      expect(() => F.groupNormSiLU(x, 3, ts.randn([5]))).toThrow('groupNormSiLU: expected weight of shape [6], got [5]');
      expect(() => F.groupNormSiLU('x' as unknown as Tensor, 3)).toThrow('groupNormSiLU: expected input to be a Tensor');
      expect(() => F.groupNormSiLU(x, 3, null, null, NaN)).toThrow('groupNormSiLU: expected eps to be a finite number');
      expect(() => F.layerNormModulate(x, ts.randn([2, 4]), ts.randn([3, 4]))).toThrow(
        'layerNormModulate: expected scale of shape [2, 4] ([B, D]), got [3, 4]',
      );
      expect(() => F.layerNormModulate(ts.randn([2, 4]), ts.randn([2, 4]), ts.randn([2, 4]))).toThrow(
        'layerNormModulate: expected x of shape [B, N, D], got [2, 4]',
      );
      expect(() => F.layerNormModulate(x, ts.randn([2, 4]).to('int32'), ts.randn([2, 4]))).toThrow(
        'layerNormModulate: expected shift of dtype float32',
      );
    });
  });

  test('forward and backward leave no tensors behind', () => {
    const before = ts.memory();
    ts.tidy(() => {
      const x = ts.randn([2, 4, 6]).requiresGrad_(), w = ts.randn([4]).requiresGrad_(), b = ts.randn([4]).requiresGrad_();
      F.groupNormSiLU(x, 2, w, b).sum().backward();
      const t = ts.randn([2, 3, 5]).requiresGrad_(), sh = ts.randn([2, 5]).requiresGrad_(), sc = ts.randn([2, 5]).requiresGrad_();
      F.layerNormModulate(t, sh, sc).sum().backward();
      expect(x.grad!.shape).toEqual([2, 4, 6]);
      expect(sc.grad!.shape).toEqual([2, 5]);
      dropGrads(x, w, b, t, sh, sc);
    });
    const after = ts.memory();
    expect([after.tensors, after.storages, after.bytes.cpu]).toEqual([before.tensors, before.storages, before.bytes.cpu]);
  });
});
