// F.conv3d against PyTorch fixtures (forward and the gradients of x, weight, bias),
// finite-difference gradient checks for each variant, and bad-input messages.
import * as ts from '../../lib';
import { native } from '../../lib/native';
import { expectClose, gradcheck, loadFixture } from './helpers';

const F = ts.F;
const fx = loadFixture('conv');
const T = fx.tensors;
const leaf = (t: ts.Tensor): ts.Tensor => ts.keep(t.clone().requiresGrad_());

describe('conv3d matches PyTorch (forward and gradients of x, weight, bias)', () => {
  const cases = Object.keys(fx.meta).sort();
  test('the fixture holds the expected cases', () => expect(cases.length).toBeGreaterThanOrEqual(6));
  for (const reference of [false, true]) {
    for (const name of cases) {
      test(`${name} ${fx.meta[name]}${reference ? ' (reference loops)' : ''}`, () => {
        const m = JSON.parse(fx.meta[name]);
        const opts: ts.F.Conv3dOptions = { stride: m.stride, padding: m.padding, causal: m.causal, paddingMode: m.paddingMode };
        ts.setReferenceKernels(reference);
        try {
          const x = leaf(T[`${name}.x`]), w = leaf(T[`${name}.w`]);
          const b = m.bias ? leaf(T[`${name}.b`]) : null;
          ts.tidy(() => {
            const y = F.conv3d(x, w, b, opts);
            expect(y.shape).toEqual(T[`${name}.out`].shape);
            expectClose(y, T[`${name}.out`], 1e-9);
            y.mul(T[`${name}.g`]).sum().backward();
          });
          expectClose(x.grad!, T[`${name}.gx`], 1e-9);
          expectClose(w.grad!, T[`${name}.gw`], 1e-9);
          if (b) expectClose(b.grad!, T[`${name}.gb`], 1e-9);
          for (const t of [x, w, b]) if (t) t.grad!.dispose(), t.dispose();
        } finally {
          ts.setReferenceKernels(false);
        }
      });
    }
  }
});

describe('conv3d finite-difference gradient checks', () => {
  const r = (shape: number[], seed: number, scale = 1): ts.Tensor => {
    ts.manualSeed(seed);
    return ts.keep(ts.randn(shape).mul(scale).requiresGrad_());
  };
  const variants: [string, number[], ts.F.Conv3dOptions][] = [
    ['3x3x3, padding 1', [3, 3, 3], { padding: 1 }],
    ['3x3x3, stride 2, padding 1', [3, 3, 3], { stride: 2, padding: 1 }],
    ['3x3x3, padding [1, 2, 0]', [3, 3, 3], { padding: [1, 2, 0] }],
    ['1x1x1', [1, 1, 1], {}],
    ['1x1x1, stride 2', [1, 1, 1], { stride: 2 }],
    ['1x3x3, stride [1, 2, 2], padding [0, 1, 1]', [1, 3, 3], { stride: [1, 2, 2], padding: [0, 1, 1] }],
    ['3x1x1, padding [1, 0, 0]', [3, 1, 1], { padding: [1, 0, 0] }],
    ['causal zeros, padding 1 (spatial)', [3, 3, 3], { causal: true, padding: 1 }],
    ['causal replicate, padding [0, 1, 1]', [3, 3, 3], { causal: true, padding: [0, 1, 1], paddingMode: 'replicate' }],
    ['causal replicate, stride 2', [3, 3, 3], { causal: true, padding: 1, stride: 2, paddingMode: 'replicate' }],
    ['replicate, padding [1, 2, 0]', [3, 3, 3], { padding: [1, 2, 0], paddingMode: 'replicate' }],
  ];
  variants.forEach(([label, k, opts], i) => {
    test(label, () => {
      const x = r([1, 2, 4, 5, 6], 10 + i), w = r([3, 2, ...k], 40 + i, 0.3), b = r([3], 70 + i);
      gradcheck((a, c, d) => F.conv3d(a, c, d, opts), [x, w, b], { samples: 12 });
      for (const t of [x, w, b]) t.grad?.dispose(), t.dispose();
    });
  });
  test('strided input view (transposed H and W), causal, no bias', () => {
    const x = r([1, 2, 4, 6, 5], 100), w = r([3, 2, 3, 3, 3], 101, 0.3);
    gradcheck((a, c) => F.conv3d(a.transpose(3, 4), c, null, { causal: true, padding: [0, 1, 1] }), [x, w], { samples: 12 });
    for (const t of [x, w]) t.grad?.dispose(), t.dispose();
  });
});

describe('conv3d behaviour', () => {
  test('causal: output frame i depends only on input frames <= i; T is kept', () => {
    ts.manualSeed(5);
    const x = ts.randn([1, 2, 5, 4, 4]), w = ts.randn([3, 2, 3, 3, 3]);
    const y = F.conv3d(x, w, null, { causal: true, padding: 1 });
    expect(y.shape).toEqual([1, 3, 5, 4, 4]);
    // Change the last two frames: outputs for frames 0..2 must not move.
    const x2 = ts.cat([x.slice(2, 0, 3), ts.randn([1, 2, 2, 4, 4])], 2);
    const y2 = F.conv3d(x2, w, null, { causal: true, padding: 1 });
    expectClose(y2.slice(2, 0, 3).contiguous(), y.slice(2, 0, 3).contiguous(), 0);
    for (const t of [x, w, y, x2, y2]) t.dispose();
  });
  test('causal replicate equals zero-free padding by repeating the first frame', () => {
    ts.manualSeed(6);
    const x = ts.randn([1, 2, 3, 4, 4]), w = ts.randn([3, 2, 3, 1, 1]);
    const y = F.conv3d(x, w, null, { causal: true, paddingMode: 'replicate' });
    const first = x.slice(2, 0, 1);
    const xp = ts.cat([first, first, x], 2);
    const want = F.conv3d(xp, w);
    expectClose(y, want, 1e-12);
    for (const t of [x, w, y, first, xp, want]) t.dispose();
  });
  test('only the gradients asked for are computed; no tensors leak', () => {
    const before = ts.memory().tensors;
    ts.manualSeed(7);
    const x = ts.randn([2, 3, 4, 5, 6]), w = ts.randn([4, 3, 3, 3, 3]).requiresGrad_(), b = ts.randn([4]);
    ts.tidy(() => F.conv3d(x, w, b, { padding: 1 }).sum().backward());
    expect(x.grad).toBeNull();
    expect(b.grad).toBeNull();
    expect(w.grad!.shape).toEqual([4, 3, 3, 3, 3]);
    for (const t of [w.grad!, x, w, b]) t.dispose();
    expect(ts.memory().tensors).toBe(before);
  });
  test('batch of zero items', () => {
    const x = ts.zeros([0, 2, 3, 4, 4]), w = ts.ones([3, 2, 3, 3, 3]).requiresGrad_();
    const y = F.conv3d(x, w, null, { padding: 1 });
    expect(y.shape).toEqual([0, 3, 3, 4, 4]);
    y.sum().backward();
    expect(Array.from(w.grad!.toFloat32Array()).every((v) => v === 0)).toBe(true);
    for (const t of [x, w, y, w.grad!]) t.dispose();
  });
});

describe('conv3d bad inputs name conv3d and what was expected', () => {
  const x = ts.keep(ts.zeros([1, 3, 4, 5, 6]));
  const w = ts.keep(ts.zeros([2, 3, 3, 3, 3]));
  const cases: [string, () => unknown, RegExp][] = [
    ['input rank', () => F.conv3d(ts.zeros([3, 4, 5, 6]), w), /^conv3d: expected input of rank 5 \[B, Cin, T, H, W\], got shape \[3, 4, 5, 6\]/],
    ['weight rank', () => F.conv3d(x, ts.zeros([2, 3, 3, 3])), /^conv3d: expected weight of rank 5 \[Cout, Cin, kt, kh, kw\], got shape \[2, 3, 3, 3\]/],
    ['channel mismatch', () => F.conv3d(x, ts.zeros([2, 4, 3, 3, 3])), /^conv3d: input has 3 channels \(shape \[1, 3, 4, 5, 6\]\) but weight \[2, 4, 3, 3, 3\] expects Cin = 4/],
    ['kernel larger than the padded input', () => F.conv3d(x, ts.zeros([2, 3, 5, 3, 3])), /^conv3d: kernel \[5, 3, 3\] is larger than the padded input \[T, H, W\] = \[4, 5, 6\]/],
    ['negative padding', () => F.conv3d(x, w, null, { padding: [0, -1, 0] }), /^conv3d: expected padding to be a non-negative integer or \[t, h, w\] of non-negative integers, got \[0, -1, 0\]/],
    ['zero stride', () => F.conv3d(x, w, null, { stride: 0 }), /^conv3d: expected stride to be a positive integer or \[t, h, w\] of positive integers, got number 0/],
    ['fractional stride', () => F.conv3d(x, w, null, { stride: [1, 1.5, 1] as any }), /^conv3d: expected stride to be a positive integer or \[t, h, w\] of positive integers, got \[1, 1.5, 1\]/],
    ['input dtype', () => F.conv3d(x.to('float64'), w), /^conv3d: expected input of dtype float32, got float64/],
    ['weight dtype', () => F.conv3d(x, w.to('int32')), /^conv3d: expected weight of dtype float32, got int32/],
    ['bias shape', () => F.conv3d(x, w, ts.zeros([3])), /^conv3d: expected bias of shape \[2\] \(Cout\), got \[3\]/],
    ['causal with temporal padding', () => F.conv3d(x, w, null, { causal: true, padding: [1, 1, 1] }), /^conv3d: causal pads kt - 1 = 2 frames before the input by itself; expected temporal padding 0, got \[1, 1, 1\]/],
    ['padding mode', () => F.conv3d(x, w, null, { paddingMode: 'reflect' as any }), /^conv3d: expected paddingMode 'zeros' or 'replicate', got 'reflect'/],
    ['causal not a boolean', () => F.conv3d(x, w, null, { causal: 1 as any }), /^conv3d: expected causal to be a boolean, got number/],
    ['weight not a tensor', () => F.conv3d(x, [1, 2] as any), /^conv3d: expected weight to be a Tensor, got array/],
    ['options not an object', () => F.conv3d(x, w, null, 3 as any), /^conv3d: expected options to be an object, got number/],
    // the native entry points validate on their own too
    ['native negative padding', () => native.conv3d(x.h, w.h, undefined, [1, 1, 1], [-1, 0, 0], false, 'zeros'), /^conv3d: expected non-negative padding, got \[-1, 0, 0\]/],
    ['native zero stride', () => native.conv3d(x.h, w.h, undefined, [1, 0, 1], [0, 0, 0], false, 'zeros'), /^conv3d: expected strides >= 1, got \[1, 0, 1\]/],
    ['native backward gradient shape', () => native.conv3dBackward(x.h, x.h, w.h, [1, 1, 1], [1, 1, 1], false, 'zeros', [true, true, true]), /^conv3d: backward expected a gradient of shape \[1, 2, 4, 5, 6\] \(the output's\), got \[1, 3, 4, 5, 6\]/],
  ];
  for (const [label, fn, re] of cases) test(label, () => expect(() => ts.tidy(() => fn())).toThrow(re));
});
