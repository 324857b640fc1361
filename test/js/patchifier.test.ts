// Patchifier: the projection is a Conv3d patch embedding, unembed inverts DiT's and
// patchify's feature orders, positions come from each grid, and bucketing and packing
// agree with embedding each sample alone.
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { expectClose } from './helpers';

const { F } = ts;

afterEach(() => ts.tidy(() => undefined));

test('embed = a Conv3d patch embedding with stride = patch; DiT Conv2d weights when pt = 1', () => {
  ts.tidy(() => {
    ts.manualSeed(0);
    const pf = new ts.Patchifier({ patchSize: [2, 2, 3], inChannels: 3, hiddenSize: 16 });
    expect(pf.namedParameters().map(([n, p]) => [n, p.shape])).toEqual([['proj.weight', [16, 3, 2, 2, 3]], ['proj.bias', [16]]]);
    const x = ts.randn([2, 3, 4, 6, 9]);
    const tokens = pf.embed(x); // [2, 2*3*3, 16]
    expect(tokens.shape).toEqual([2, 18, 16]);
    const conv = F.conv3d(x, pf.proj.weight, pf.proj.bias, { stride: [2, 2, 3] }); // [2, 16, 2, 3, 3]
    expectClose(tokens, conv.reshape([2, 16, 18]).transpose(1, 2).contiguous(), 1e-10);
    // an image patch embedding: Conv2d [D, C, p, p] is the [D, C, 1, p, p] weight
    const img = new ts.Patchifier({ patchSize: 2, inChannels: 3, hiddenSize: 8 });
    expect(img.patchSize).toEqual([1, 2, 2]);
    expect(img.proj.weight.shape).toEqual([8, 3, 1, 2, 2]);
    const im = ts.randn([1, 3, 1, 4, 4]);
    const byHand = ts.zeros([8]).toFloat32Array(); // token 0: patch rows 0-1, cols 0-1
    const w = img.proj.weight.toFloat32Array(), b = img.proj.bias!.toFloat32Array(), xv = im.toFloat32Array();
    for (let d = 0; d < 8; d++) {
      let s = b[d];
      for (let c = 0; c < 3; c++) for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) s += w[((d * 3 + c) * 2 + i) * 2 + j] * xv[(c * 4 + i) * 4 + j];
      byHand[d] = s;
    }
    expectClose(img.embed(im).slice(1, 0, 1), byHand, 1e-10);
  });
});

test("unembed reads DiT's (pt, ph, pw, c) order and patchify's (c, pt, ph, pw) order", () => {
  ts.tidy(() => {
    const pf = new ts.Patchifier({ patchSize: [2, 2, 1], inChannels: 2, hiddenSize: 8 });
    const grid: ts.Grid = [2, 3, 2];
    const [pt, ph, pw] = [2, 2, 1], C = 3, N = 12, P = 4;
    const tok = ts.randn([2, N, P * C]);
    const v = tok.toFloat32Array();
    // DiT's unpatchify, by hand: out[b, c, t*pt+i, h*ph+j, w*pw+k] = tok[b, n, ((i*ph + j)*pw + k)*C + c]
    const want = new Float32Array(2 * C * 4 * 6 * 2);
    for (let bb = 0; bb < 2; bb++)
      for (let t = 0; t < 2; t++) for (let h = 0; h < 3; h++) for (let w = 0; w < 2; w++)
        for (let i = 0; i < pt; i++) for (let j = 0; j < ph; j++) for (let k = 0; k < pw; k++)
          for (let c = 0; c < C; c++) {
            const n = (t * 3 + h) * 2 + w;
            const f = ((i * ph + j) * pw + k) * C + c;
            want[(((bb * C + c) * 4 + t * pt + i) * 6 + h * ph + j) * 2 + w * pw + k] = v[(bb * N + n) * P * C + f];
          }
    const out = pf.unembed(tok, grid);
    expect(out.shape).toEqual([2, C, 4, 6, 2]);
    expectClose(out, want, 0);
    // order 'patchify' inverts F.patchify exactly
    const x = ts.randn([2, C, 4, 6, 2]);
    expectClose(pf.unembed(F.patchify(x, [pt, ph, pw]), grid, { order: 'patchify' }), x, 0);
  });
});

test('positions from each grid: 3D sincos, DiT 2D sincos (repeated per frame), 3D RoPE', () => {
  ts.tidy(() => {
    const s3 = new ts.Patchifier({ patchSize: [1, 2, 2], inChannels: 4, hiddenSize: 32, positions: 'sincos3d' });
    expectClose(s3.positionalEmbedding([3, 2, 5])!, ts.sincos3d(32, 3, 2, 5), 0);
    expect(s3.rotary([3, 2, 5])).toBeNull();
    const s2 = new ts.Patchifier({ patchSize: 2, inChannels: 4, hiddenSize: 32, positions: 'sincos2d' });
    const tab = ts.sincos2dDiT(32, 3, 4);
    expectClose(s2.positionalEmbedding([1, 3, 4])!, tab, 0);
    expectClose(s2.positionalEmbedding([2, 3, 4])!, ts.cat([tab, tab], 0), 0);
    const r = new ts.Patchifier({ patchSize: 2, inChannels: 4, hiddenSize: 32, positions: 'rope3d', headDim: 16 });
    expect(r.positionalEmbedding([2, 3, 4])).toBeNull();
    const rot = r.rotary([2, 3, 4])!;
    expectClose(rot.cos, ts.rope3d(16, 2, 3, 4).cos, 0);
    expect(rot.sin.shape).toEqual([24, 8]);
    expect(() => new ts.Patchifier({ patchSize: 2, inChannels: 4, hiddenSize: 32, positions: 'rope3d' })).toThrow(/rope3d' needs the attention's headDim/);
  });
});

test('applyRotary rotates pairs (2i, 2i+1); q.k then depends only on the position difference', () => {
  ts.tidy(() => {
    ts.manualSeed(3);
    const [B, N, H, Dh] = [2, 5, 3, 8];
    const x = ts.randn([B, N, H, Dh]);
    const ang = ts.randn([N, Dh / 2]);
    const cos = ts.cos(ang), sin = ts.sin(ang);
    const y = ts.applyRotary(x, cos, sin);
    const xv = x.toFloat32Array(), c = cos.toFloat32Array(), s = sin.toFloat32Array();
    const want = new Float32Array(xv.length);
    for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) for (let h = 0; h < H; h++)
      for (let i = 0; i < Dh / 2; i++) {
        const o = ((b * N + n) * H + h) * Dh + 2 * i;
        const a = xv[o], bb = xv[o + 1], cc = c[n * (Dh / 2) + i], ss = s[n * (Dh / 2) + i];
        want[o] = a * cc - bb * ss;
        want[o + 1] = a * ss + bb * cc;
      }
    expectClose(y, want, 1e-12);
    // relative positions: with the same vector at every position, q_m . k_n depends on m - n only
    const { cos: c1, sin: s1 } = ts.rope3d(8, 6, 1, 1); // positions along t
    const v = ts.randn([1, 1, 1, 8]).expand([1, 6, 1, 8]).contiguous();
    const r = ts.applyRotary(v, c1, s1).reshape([6, 8]);
    const dots = r.matmul(r.transpose(0, 1)).toArray() as number[][];
    expect(dots[1][3]).toBeCloseTo(dots[2][4], 4);
    expect(dots[0][2]).toBeCloseTo(dots[3][5], 4);
    // gradient flows through
    const xg = ts.randn([1, 6, 1, 8], { requiresGrad: true });
    ts.applyRotary(xg, c1, s1).square().sum().backward();
    expectClose(xg.grad!, xg.mul(2), 1e-10); // a rotation keeps the norm
    expect(() => ts.applyRotary(ts.randn([1, 5, 2, 8]), c1, s1)).toThrow(/applyRotary: expected cos of shape \[5, 4\]/);
  });
});

test('bucket groups equal grids; pack concatenates mixed grids (an image included) and unpack restores them', () => {
  ts.tidy(() => {
    ts.manualSeed(4);
    const pf = new ts.Patchifier({ patchSize: [1, 2, 2], inChannels: 3, hiddenSize: 16, positions: 'sincos3d' });
    const samples = [ts.randn([3, 2, 4, 6]), ts.randn([3, 1, 6, 4]), ts.randn([1, 3, 2, 4, 6]), ts.randn([3, 3, 2, 2])];
    const buckets = pf.bucket(samples);
    expect(buckets.map((b) => [b.grid, b.indices, b.batch.shape])).toEqual([
      [[2, 2, 3], [0, 2], [2, 3, 2, 4, 6]],
      [[1, 3, 2], [1], [1, 3, 1, 6, 4]],
      [[3, 1, 1], [3], [1, 3, 3, 2, 2]],
    ]);
    const p = pf.pack(samples);
    expect(p.tokens.shape).toEqual([1, 12 + 6 + 12 + 3, 16]);
    expect(p.cuSeqlens.toArray()).toEqual([0, 12, 18, 30, 33]);
    expect(p.cuSeqlens.dtype).toBe('int32');
    expect(p.sampleIndex.toArray()).toEqual([...Array(12).fill(0), ...Array(6).fill(1), ...Array(12).fill(2), ...Array(3).fill(3)]);
    expect(p.grids).toEqual([[2, 2, 3], [1, 3, 2], [2, 2, 3], [3, 1, 1]]);
    expect(p.positions!.shape).toEqual([1, 33, 16]);
    // per-sample slices equal embedding each sample alone, and its bucket row
    samples.forEach((s, i) => {
      const x = s.rank === 4 ? s.unsqueeze(0) : s;
      const [a, n] = [p.offsets[i], p.seqlens[i]];
      const alone = pf.embed(x);
      expectClose(p.tokens.slice(1, a, a + n), alone, 1e-12);
      expectClose(p.positions!.slice(1, a, a + n).squeeze(0), pf.positionalEmbedding(p.grids[i])!, 0);
      const bk = buckets.find((b) => b.indices.includes(i))!;
      const row = bk.indices.indexOf(i);
      expectClose(pf.embed(bk.batch).slice(0, row, row + 1), alone, 1e-12);
    });
    // unpack: packed patch tokens in patchify order come back as the samples, same ranks
    const patches = ts.cat(samples.map((s) => F.patchify(s.rank === 4 ? s.unsqueeze(0) : s, [1, 2, 2])), 1);
    const back = pf.unpack(patches, p, { order: 'patchify' });
    back.forEach((b, i) => {
      expect(b.shape).toEqual(samples[i].shape);
      expectClose(b, samples[i], 0);
    });
    // rope3d: per-token rotary tables instead of added positions
    const pr = new ts.Patchifier({ patchSize: [1, 2, 2], inChannels: 3, hiddenSize: 16, positions: 'rope3d', headDim: 8 });
    const q = pr.pack(samples.slice(0, 2));
    expect(q.positions).toBeNull();
    expectClose(q.rope!.cos, ts.cat([ts.rope3d(8, 2, 2, 3).cos, ts.rope3d(8, 1, 3, 2).cos], 0), 0);
  });
});

test('grid arranges noise for sampling; bad inputs name the method', () => {
  ts.tidy(() => {
    const pf = new ts.Patchifier({ patchSize: [1, 2, 2], inChannels: 4, hiddenSize: 16 });
    ts.manualSeed(5);
    const z = pf.grid(3, 8, 6, { batch: 2 });
    expect(z.shape).toEqual([2, 4, 3, 8, 6]);
    ts.manualSeed(5);
    expectClose(z, ts.randn([2, 4, 3, 8, 6]), 0);
    const any = (v: unknown): any => v;
    const cases: [() => unknown, RegExp][] = [
      [() => pf.grid(3, 7, 6), /Patchifier.grid: latent size \[T, H, W\] = \[3, 7, 6\] is not a positive multiple of the patch \[1, 2, 2\]/],
      [() => pf.grid(0, 8, 8), /Patchifier.grid: expected frames to be a positive integer, got number 0/],
      [() => pf.embed(ts.zeros([1, 3, 1, 4, 4])), /Patchifier.embed: expected 4 latent channels, got 3/],
      [() => pf.embed(ts.zeros([4, 4, 4])), /Patchifier.embed: expected a latent \[B, C, T, H, W\], got \[4, 4, 4\]/],
      [() => pf.embed(any('x')), /Patchifier.embed: expected latent to be a Tensor, got string/],
      [() => pf.pack([]), /Patchifier.pack: expected a non-empty array of latents/],
      [() => pf.pack([ts.zeros([2, 4, 1, 2, 2])]), /Patchifier.pack: expected sample 0 to be a latent \[C, T, H, W\] or \[1, C, T, H, W\], got \[2, 4, 1, 2, 2\]/],
      [() => pf.bucket([ts.zeros([4, 1, 2, 2]), ts.zeros([4, 1, 3, 2])]), /Patchifier.bucket: sample 1: latent size .* \[1, 3, 2\] is not a positive multiple/],
      [() => pf.unembed(ts.zeros([1, 5, 8]), [1, 2, 2]), /Patchifier.unembed: expected tokens \[B, 4, 4\*Cout\] for grid \[1, 2, 2\]/],
      [() => pf.unembed(ts.zeros([1, 4, 8]), any([1, 2])), /Patchifier.unembed: expected grid \[T', H', W'\] of positive integers/],
      [() => pf.unpack(ts.zeros([1, 3, 8]), pf.pack([ts.zeros([4, 1, 2, 2])])), /Patchifier.unpack: expected tokens \[1, 1, F\] for the 1 packed samples, got \[1, 3, 8\]/],
      [() => new ts.Patchifier(any({ patchSize: [1, 2], inChannels: 4, hiddenSize: 8 })), /Patchifier: expected patchSize \[pt, ph, pw\] of positive integers/],
      [() => new ts.Patchifier(any({ patchSize: 2, inChannels: 4, hiddenSize: 8, positions: 'learned' })), /Patchifier: expected positions 'sincos3d', 'rope3d' or 'sincos2d', got learned/],
    ];
    for (const [fn, re] of cases) expect(fn).toThrow(re);
  });
});

test('no tensors leak from embed, pack and unpack inside tidy (inference: saved-for-backward tensors are freed by backward)', () => {
  const pf = new ts.Patchifier({ patchSize: [1, 2, 2], inChannels: 2, hiddenSize: 8, positions: 'sincos2d' });
  const x: Tensor[] = [ts.keep(ts.randn([2, 1, 4, 4])), ts.keep(ts.randn([2, 2, 2, 2]))];
  const run = (): void => ts.tidy(() => ts.noGrad(() => {
    const p = pf.pack(x);
    pf.unpack(ts.zeros([1, p.tokens.shape[1], 8]), p);
    pf.embed(x[0].unsqueeze(0));
  }));
  run(); // the first call makes the position tables the module keeps per grid
  const before = ts.memory().tensors;
  run();
  expect(ts.memory().tensors).toBe(before);
  pf.clearTables();
  run();
  pf.clearTables();
  expect(ts.memory().tensors).toBe(before - 2); // the two grids' tables, freed
  x.forEach((t) => t.dispose());
  pf.dispose();
});
