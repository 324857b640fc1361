// F.scaledDotProductAttention: PyTorch fixtures (forward and q/k/v gradients),
// finite-difference checks, packing, strided inputs, O(N) memory and bad inputs.
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { expectClose, gradcheck, loadFixture, nmse } from './helpers';

const F = ts.F;
const sdpa = F.scaledDotProductAttention;

describe('scaledDotProductAttention matches PyTorch (torch 1.13, softmax(q k^T scale + mask) v in float64)', () => {
  const fx = loadFixture('attention');
  const T = fx.tensors;
  for (const name of Object.keys(fx.meta)) {
    test(`${name} (${fx.meta[name]})`, () => {
      const m = /causal=(\d),scale=(.*)/.exec(fx.meta[name])!;
      const opts: ts.F.AttentionOptions = { causal: m[1] === '1' };
      if (m[2] !== '') opts.scale = Number(m[2]);
      if (T[`${name}.cu_q`]) Object.assign(opts, { cuSeqlensQ: T[`${name}.cu_q`], cuSeqlensK: T[`${name}.cu_k`] });
      ts.tidy(() => {
        const [q, k, v] = ['q', 'k', 'v'].map((s) => T[`${name}.${s}`].clone().requiresGrad_());
        const out = sdpa(q, k, v, opts);
        expectClose(out, T[`${name}.out`], 1e-10);
        out.mul(T[`${name}.w`]).sum().backward();
        expectClose(q.grad!, T[`${name}.gq`], 1e-10);
        expectClose(k.grad!, T[`${name}.gk`], 1e-10);
        expectClose(v.grad!, T[`${name}.gv`], 1e-10);
        for (const x of [q, k, v]) x.grad!.dispose();
      });
    });
  }
});

const leaf = (shape: number[], seed: number): Tensor => {
  ts.manualSeed(seed);
  return ts.keep(ts.randn(shape).requiresGrad_());
};
const int32 = (xs: number[]): Tensor => ts.keep(ts.tensor(new Int32Array(xs)));

describe('finite-difference gradient checks', () => {
  test('self-attention, default scale', () => {
    gradcheck((q, k, v) => sdpa(q, k, v), [leaf([2, 5, 2, 4], 1), leaf([2, 5, 2, 4], 2), leaf([2, 5, 2, 4], 3)]);
  });
  test('causal cross-attention (Nq > Nk) with a scale', () => {
    gradcheck((q, k, v) => sdpa(q, k, v, { causal: true, scale: 0.7 }), [leaf([1, 6, 2, 3], 4), leaf([1, 4, 2, 3], 5), leaf([1, 4, 2, 3], 6)]);
  });
  test('packed sequences, causal', () => {
    const cuSeqlensQ = int32([0, 2, 5, 6]), cuSeqlensK = int32([0, 3, 4, 7]);
    gradcheck((q, k, v) => sdpa(q, k, v, { causal: true, cuSeqlensQ, cuSeqlensK }), [leaf([1, 6, 2, 3], 7), leaf([1, 7, 2, 3], 8), leaf([1, 7, 2, 3], 9)]);
  });
});

describe('packing and layouts', () => {
  for (const causal of [false, true]) {
    test(`packed sequences equal each sequence run alone (causal=${causal})`, () => {
      const lq = [5, 70, 9], lk = [13, 64, 20];
      const cq = [0, 5, 75, 84], ck = [0, 13, 77, 97];
      const [H, D] = [2, 16];
      const q = leaf([1, 84, H, D], 11), k = leaf([1, 97, H, D], 12), v = leaf([1, 97, H, D], 13);
      const w = ts.keep(ts.randn([1, 84, H, D]));
      ts.tidy(() => {
        const out = sdpa(q, k, v, { causal, cuSeqlensQ: int32(cq), cuSeqlensK: int32(ck) });
        out.mul(w).sum().backward();
        for (let s = 0; s < 3; s++) {
          const qs = ts.detach(q.slice(1, cq[s], cq[s + 1])).requiresGrad_();
          const ks = ts.detach(k.slice(1, ck[s], ck[s + 1])).requiresGrad_();
          const vs = ts.detach(v.slice(1, ck[s], ck[s + 1])).requiresGrad_();
          expect([qs.shape[1], ks.shape[1]]).toEqual([lq[s], lk[s]]);
          const alone = sdpa(qs, ks, vs, { causal });
          alone.mul(w.slice(1, cq[s], cq[s + 1])).sum().backward();
          expectClose(out.slice(1, cq[s], cq[s + 1]), alone, 1e-12);
          expectClose(q.grad!.slice(1, cq[s], cq[s + 1]), qs.grad!, 1e-12);
          expectClose(k.grad!.slice(1, ck[s], ck[s + 1]), ks.grad!, 1e-12);
          expectClose(v.grad!.slice(1, ck[s], ck[s + 1]), vs.grad!, 1e-12);
        }
        for (const x of [q, k, v]) x.grad!.dispose(), (x.grad = null);
      });
    });
  }

  test('q, k, v as slices of a fused qkv [B, N, 3, H, D]: strided views, gradient flows back to qkv', () => {
    const [B, N, H, D] = [2, 37, 3, 16];
    const qkv = leaf([B, N, 3, H, D], 21);
    const g = ts.keep(ts.randn([B, N, H, D]));
    ts.tidy(() => {
      const [q, k, v] = [0, 1, 2].map((i) => qkv.slice(2, i, i + 1).squeeze(2));
      expect(q.isContiguous()).toBe(false);
      const out = sdpa(q, k, v, { causal: true });
      out.backward(g);
      // The same computation on contiguous copies.
      const [qc, kc, vc] = [0, 1, 2].map((i) => ts.detach(qkv.slice(2, i, i + 1).squeeze(2).contiguous()).requiresGrad_());
      const ref = sdpa(qc, kc, vc, { causal: true });
      ref.backward(g);
      expectClose(out, ref, 0);
      expectClose(qkv.grad!, ts.stack([qc.grad!, kc.grad!, vc.grad!], 2), 0);
      qkv.grad!.dispose();
      qkv.grad = null;
    });
  });

  test('no tensors leak from forward and backward', () => {
    const q = leaf([1, 9, 2, 8], 31), k = leaf([1, 11, 2, 8], 32), v = leaf([1, 11, 2, 8], 33);
    const before = ts.memory();
    ts.tidy(() => {
      sdpa(q, k, v, { causal: true }).sum().backward();
      ts.noGrad(() => sdpa(q, k, v));
    });
    for (const x of [q, k, v]) x.grad!.dispose(), (x.grad = null);
    const after = ts.memory();
    expect(after.tensors).toBe(before.tensors);
    expect(after.bytes.cpu).toBe(before.bytes.cpu);
  });
});

describe('O(N) memory', () => {
  test('N = 8192 (B = 1, H = 2, D = 64): forward + backward peak far below one N x N matrix', () => {
    const [B, N, H, D] = [1, 8192, 2, 64];
    const q = leaf([B, N, H, D], 41), k = leaf([B, N, H, D], 42), v = leaf([B, N, H, D], 43);
    const g = ts.keep(ts.randn([B, N, H, D]));
    const nxn = N * N * 4; // 256 MiB: one float32 score matrix for one head
    const io = 4 * B * N * H * D * 4; // out, dq, dk, dv: 4 MiB each
    ts.resetPeakMemory();
    const base = ts.memory().bytes.cpu;
    let outRows: Float32Array;
    ts.tidy(() => {
      const out = sdpa(q, k, v);
      out.backward(g);
      outRows = out.slice(1, N - 1, N).toFloat32Array(); // the last query row, both heads
    });
    const growth = ts.memory().peakBytes - base;
    // Above the outputs: per-thread tiles, row stats [B, H, N] and, on machines with more
    // threads than (b, h) pairs, up to 7 dq partials (4 MiB each). Measured 0.44 MiB on 2 threads.
    expect(growth).toBeLessThan(io + 48 * 2 ** 20);
    expect(growth).toBeLessThan(nxn / 4);
    // The big run is also right: the last query row recomputed in double.
    const [qa, ka, va] = [q, k, v].map((t) => t.toFloat32Array());
    const want = new Float64Array(H * D);
    for (let h = 0; h < H; h++) {
      const qi = ((N - 1) * H + h) * D, s = new Float64Array(N);
      let mx = -Infinity, l = 0;
      for (let j = 0; j < N; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += qa[qi + d] * ka[(j * H + h) * D + d];
        s[j] = dot / Math.sqrt(D);
        mx = Math.max(mx, s[j]);
      }
      for (let j = 0; j < N; j++) {
        const e = Math.exp(s[j] - mx);
        l += e;
        for (let d = 0; d < D; d++) want[h * D + d] += e * va[(j * H + h) * D + d];
      }
      for (let d = 0; d < D; d++) want[h * D + d] /= l;
    }
    expect(nmse(outRows!, want)).toBeLessThan(1e-10);
    for (const x of [q, k, v]) x.grad!.dispose(), (x.grad = null);
  });
});

describe('bad inputs name scaledDotProductAttention', () => {
  const q = ts.keep(ts.randn([1, 5, 2, 8])), k = ts.keep(ts.randn([1, 6, 2, 8])), v = ts.keep(ts.randn([1, 6, 2, 8]));
  const bad = (fn: () => unknown, msg: RegExp | string): void => {
    expect(fn).toThrow(/^scaledDotProductAttention: /);
    expect(fn).toThrow(msg);
  };
  test('ranks, shapes and dtypes', () => {
    bad(() => sdpa(q.reshape([5, 2, 8]), k, v), 'expected q of shape [B, Nq, H, D], got [5, 2, 8]');
    bad(() => sdpa(q, k, ts.randn([1, 7, 2, 8])), 'expected k and v of one shape');
    bad(() => sdpa(q, ts.randn([1, 6, 3, 8]), ts.randn([1, 6, 3, 8])), 'to match q [B, Nq, H, D] in B, H and D');
    bad(() => sdpa(q, ts.randn([1, 6, 2, 4]), ts.randn([1, 6, 2, 4])), 'in B, H and D');
    bad(() => sdpa(q.to('float64'), k, v), 'expected q of dtype float32, got float64');
    bad(() => sdpa(q, 3 as unknown as Tensor, v), 'expected k to be a Tensor, got number');
    const dead = ts.randn([1, 5, 2, 8]);
    dead.dispose();
    bad(() => sdpa(dead, k, v), 'q is a disposed tensor');
  });
  test('options', () => {
    bad(() => sdpa(q, k, v, { scale: NaN }), 'expected scale to be a finite number');
    bad(() => sdpa(q, k, v, { causal: 1 as unknown as boolean }), 'expected causal to be a boolean');
    bad(() => sdpa(q, k, v, { isCausal: true } as unknown as ts.F.AttentionOptions), "unknown option 'isCausal'");
    bad(() => sdpa(q, k, v, null as unknown as ts.F.AttentionOptions), 'expected options to be an object');
  });
  test('packed sequences (cuSeqlensQ / cuSeqlensK)', () => {
    const p = (cq: number[], ck: number[]) => ({ cuSeqlensQ: int32(cq), cuSeqlensK: int32(ck) });
    bad(() => sdpa(q, k, v, { cuSeqlensQ: int32([0, 5]) }), 'expected cuSeqlensQ and cuSeqlensK together');
    bad(() => sdpa(q, k, v, { cuSeqlensQ: ts.tensor([0, 5]), cuSeqlensK: int32([0, 6]) }), 'expected cuSeqlensQ of dtype int32, got float32');
    bad(() => sdpa(q, k, v, p([0, 2, 5], [0, 6])), 'the same number of sequences, got 2 and 1');
    bad(() => sdpa(q, k, v, p([0, 3, 2, 5], [0, 1, 2, 6])), 'non-decreasing prefix sums, got 3 then 2');
    bad(() => sdpa(q, k, v, p([1, 5], [0, 6])), 'cuSeqlensQ to start at 0, got 1');
    bad(() => sdpa(q, k, v, p([0, 4], [0, 6])), 'last entry of cuSeqlensQ to equal the token count 5, got 4');
    bad(() => sdpa(ts.randn([2, 5, 2, 8]), ts.randn([2, 6, 2, 8]), ts.randn([2, 6, 2, 8]), p([0, 5], [0, 6])),
      'expected B = 1 with packed sequences');
  });
});
