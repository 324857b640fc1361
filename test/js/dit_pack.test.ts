// DiT on mixed shapes and text: a packed batch of different grids (an image among
// them) gives each sample the output it gets alone and in its bucket, for full and
// factorized attention with sincos or rotary positions; text conditioning (our encoder
// or the user's embeddings, with masks); one training step on a packed batch.
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import { expectClose } from './helpers';

afterEach(() => ts.tidy(() => undefined));

/** Random non-zero weights everywhere (adaLN-Zero would make every block the identity). */
function randomize(m: ts.nn.Module, scale = 0.2): void {
  ts.noGrad(() => m.parameters().forEach((p) => ts.tidy(() => p.copy_(ts.randn(p.shape as number[]).mul(scale)))));
}

const CONFIGS: [string, Partial<ts.DiTConfig>][] = [
  ['class, full, DiT 2D sincos', { condition: 'class', numClasses: 5, positions: 'sincos2d' }],
  ['class, factorized, 3D sincos', { condition: 'class', numClasses: 5, positions: 'sincos3d', attention: 'factorized' }],
  ['text, full, 3D RoPE', { condition: 'text', textDim: 16, positions: 'rope3d' }],
  ['text, factorized, 3D RoPE', { condition: 'text', textDim: 16, positions: 'rope3d', attention: 'factorized' }],
  ['none, factorized, patch 2x2x2', { condition: 'none', positions: 'sincos3d', attention: 'factorized', patchSize: [2, 2, 2] }],
];

describe.each(CONFIGS)('packing = alone = bucketed (%s)', (_name, cfg) => {
  test('per-sample outputs agree', () => {
    ts.tidy(() => {
      ts.manualSeed(11);
      const m = new ts.DiT({ hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 3, ...cfg });
      randomize(m);
      const pt = m.config.patchSize[0];
      // three grids: a video, an image (T = 1 latent frame... or one temporal patch), another video; plus a repeat of grid 0
      const xs = [ts.randn([3, 2 * pt, 4, 6]), ts.randn([3, pt, 6, 4]), ts.randn([3, 3 * pt, 2, 2]), ts.randn([3, 2 * pt, 4, 6])];
      const t = [10, 500, 900, 250];
      const emb = ts.randn([4, 5, 16]);
      const mask = ts.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [1, 0, 1, 0, 1]]);
      const cond = (idx: number[]): ts.DiTCondition => {
        if (cfg.condition === 'class') return idx.map((i) => [1, 4, 5, 0][i]);
        if (cfg.condition === 'text') {
          const pick = (x: Tensor): Tensor => ts.cat(idx.map((i) => x.slice(0, i, i + 1)), 0);
          return { textEmbeddings: pick(emb), mask: pick(mask) };
        }
        return undefined;
      };
      const packed = m.forward(xs, t, cond([0, 1, 2, 3])); // one sequence [1, 24+6+12+24... , D]
      expect(packed.map((p) => p.shape)).toEqual(xs.map((x) => [6, ...x.shape.slice(1)]));
      const alone = xs.map((x, i) => m.forward(x.unsqueeze(0), [t[i]], cond([i])).squeeze(0));
      packed.forEach((p, i) => expectClose(p, alone[i], 1e-10));
      for (const b of m.xEmbedder.bucket(xs)) {
        const out = m.forward(b.batch, b.indices.map((i) => t[i]), cond(b.indices)); // [b, Cout, T, H, W]
        b.indices.forEach((i, r) => expectClose(out.slice(0, r, r + 1).squeeze(0), alone[i], 1e-10));
      }
      // attention stays within each sample: changing sample 2 leaves the others alone
      const xs2 = [xs[0], xs[1], xs[2].mul(-3), xs[3]];
      const packed2 = m.forward(xs2, t, cond([0, 1, 2, 3]));
      [0, 1, 3].forEach((i) => expectClose(packed2[i], packed[i], 1e-12));
      expect(packed2[2].sub(packed[2]).abs().max().item()).toBeGreaterThan(1e-3);
      m.dispose();
    });
  });
});

test('factorized attention: spatial blocks mix within a frame only, temporal blocks across frames', () => {
  ts.tidy(() => {
    ts.manualSeed(12);
    const m = new ts.DiT({ hiddenSize: 32, depth: 1, numHeads: 2, patchSize: [1, 2, 2], inChannels: 3, condition: 'none', attention: 'factorized', learnSigma: false });
    randomize(m);
    const x = ts.randn([1, 3, 3, 4, 4]);
    const y = m.forward(x, [5]);
    // with one (spatial) block, changing frame 2 changes only frame 2 of the output
    const x2 = ts.cat([x.slice(2, 0, 2), x.slice(2, 2, 3).mul(2)], 2);
    const y2 = m.forward(x2, [5]);
    expectClose(y2.slice(2, 0, 2), y.slice(2, 0, 2), 1e-12);
    // a second (temporal) block lets it reach the other frames at the same place
    const m2 = new ts.DiT({ ...m.config, depth: 2 });
    randomize(m2);
    expect(m2.forward(x2, [5]).slice(2, 0, 1).sub(m2.forward(x, [5]).slice(2, 0, 1)).abs().max().item()).toBeGreaterThan(1e-4);
    [m, m2].forEach((k) => k.dispose());
  });
});

test('factorized attention with RoPE equals attention run per frame / per place with the natural-order tables', () => {
  ts.tidy(() => {
    ts.manualSeed(16);
    const [T, H, W, D] = [3, 2, 3, 16];
    const HW = H * W, N = T * HW;
    const attn = new ts.SpacetimeAttention(D, 2);
    const rope = ts.rope3d(8, T, H, W); // [N, 4], rows in (t, h, w) order
    const layout = ts.TokenLayout.batch(1, [T, H, W], rope);
    const x = ts.randn([1, N, D]);
    const rows = (idx: number[]): Tensor => ts.cat(idx.map((i) => x.slice(1, i, i + 1)), 1); // [1, n, D]
    const tab = (t: Tensor, idx: number[]): Tensor => ts.cat(idx.map((i) => t.slice(0, i, i + 1)), 0); // [n, 4]
    const run = (idx: number[]): Tensor => {
      const c = tab(rope.cos, idx), s = tab(rope.sin, idx);
      return attn.forward(rows(idx), null, { rotary: (q) => ts.applyRotary(q, c, s) });
    };
    const spatial = attn.attend(x, layout, 'spatial');
    for (let t = 0; t < T; t++) {
      const idx = [...Array(HW).keys()].map((s) => t * HW + s);
      expectClose(ts.cat(idx.map((i) => spatial.slice(1, i, i + 1)), 1), run(idx), 1e-10);
    }
    const temporal = attn.attend(x, layout, 'temporal');
    for (let s = 0; s < HW; s++) {
      const idx = [...Array(T).keys()].map((t) => t * HW + s);
      expectClose(ts.cat(idx.map((i) => temporal.slice(1, i, i + 1)), 1), run(idx), 1e-10);
    }
    attn.dispose();
  });
});

test('text: our encoder (empty prompt = null), masks hide padding, own embeddings accepted', () => {
  ts.tidy(() => {
    ts.manualSeed(13);
    const captions = ['the digit 3 moves up', 'the digit 7 moves left', 'a red square'];
    const enc = ts.TextEncoder.fromCaptions(captions, { hiddenSize: 16, depth: 2, numHeads: 2 });
    const e = enc.encode(['', 'the digit 7 moves', 'the unknownword']);
    expect(e.tokens.shape).toEqual([3, 5, 16]);
    expect(e.mask.toArray()).toEqual([[0, 0, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]);
    expect(e.tokens.slice(0, 0, 1).abs().max().item()).toBe(0); // null condition: no tokens
    expect(e.pooled.slice(0, 0, 1).abs().max().item()).toBe(0); // pooled of no tokens = 0
    expect(e.tokens.slice(1, 4, 5).abs().max().item()).toBe(0); // padding rows are zero
    expectClose(e.pooled, ts.maskedTokenMean(e.tokens, e.mask), 1e-12);
    // a prompt's encoding does not depend on the other prompts of its batch
    expectClose(enc.encode(['the digit 7 moves']).tokens, e.tokens.slice(0, 1, 2), 1e-10);
    expect(enc.namedParameters().map(([n]) => n).slice(0, 4)).toEqual(['position_embedding', 'token_embedding.weight', 'blocks.0.norm1.weight', 'blocks.0.norm1.bias']);

    const m = new ts.DiT({ hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 3, condition: 'text', text: enc.config, learnSigma: false });
    expect(m.config.textDim).toBe(16);
    expect(m.config.text!.tokenizer.vocab).toEqual(enc.tokenizer.vocab); // the tokenizer travels with the config (DiT.save writes it)
    randomize(m);
    const x = ts.randn([2, 3, 2, 4, 4]);
    const byPrompts = m.forward(x, [3, 4], { prompts: ['a red square', ''] });
    const te = m.textEncoder!.encode(['a red square', '']);
    expectClose(m.forward(x, [3, 4], te), byPrompts, 1e-12);
    // own embeddings: values at padding positions do not matter
    const own = ts.randn([2, 4, 16]);
    const mask = ts.tensor([[1, 1, 0, 0], [1, 0, 0, 0]]);
    const a = m.forward(x, [3, 4], { textEmbeddings: own, mask });
    const noisy = ts.cat([own.slice(1, 0, 2), ts.randn([2, 2, 16])], 1);
    expectClose(m.forward(x, [3, 4], { textEmbeddings: noisy, mask }), a, 1e-12);
    expect(a.sub(m.forward(x, [3, 4], { textEmbeddings: own })).abs().max().item()).toBeGreaterThan(1e-4);
    const any = (v: unknown): any => v;
    expect(() => m.forward(x, [3, 4], { textEmbeddings: ts.zeros([2, 4, 8]) })).toThrow(/DiT.forward: expected textEmbeddings \[S, L, 16\], got \[2, 4, 8\]/);
    expect(() => m.forward(x, [3, 4], { textEmbeddings: own, mask: ts.ones([2, 3]) })).toThrow(/DiT.forward: expected a mask \[2, 4\]/);
    expect(() => m.forward(x, [3, 4], { prompts: ['a'] })).toThrow(/DiT.forward: expected 2 prompts \(one per sample\), got 1/);
    expect(() => m.forward(x, [3, 4], any([1, 2]))).toThrow(/DiT.forward: condition 'text' expects \{ prompts \}/);
    const bare = new ts.DiT({ ...m.config, text: null });
    expect(() => bare.forward(x, [3, 4], { prompts: ['a', 'b'] })).toThrow(/DiT.forward: this model has no text encoder \(config.text\); pass \{ textEmbeddings, mask \} instead/);
    [m, bare, enc].forEach((k) => k.dispose());
  });
});

test('text encoder of depth 0: a bag of words (each token its own embedding, position and norm)', () => {
  ts.tidy(() => {
    ts.manualSeed(14);
    const enc = ts.TextEncoder.fromCaptions(['the digit 3 moves up', 'the digit 7 moves left'], { hiddenSize: 16, depth: 0, numHeads: 2 });
    randomize(enc);
    expect(enc.blocks.length).toBe(0);
    const e = enc.encode(['the digit 3 moves left', 'the digit 7 moves left', 'the digit 3 moves up']);
    // a word's vector does not depend on the other words: 'left' is the same after 3 and 7,
    // '3' the same before 'left' and 'up' (a transformer block would mix them)
    expectClose(e.tokens.slice(0, 0, 1).slice(1, 4, 5), e.tokens.slice(0, 1, 2).slice(1, 4, 5), 1e-12);
    expectClose(e.tokens.slice(0, 0, 1).slice(1, 2, 3), e.tokens.slice(0, 2, 3).slice(1, 2, 3), 1e-12);
    expect(e.tokens.slice(0, 0, 1).slice(1, 2, 3).sub(e.tokens.slice(0, 1, 2).slice(1, 2, 3)).abs().max().item()).toBeGreaterThan(1e-3);
    const two = ts.TextEncoder.fromCaptions(['the digit 3 moves up', 'the digit 7 moves left'], { hiddenSize: 16, depth: 1, numHeads: 2 });
    randomize(two);
    const f = two.encode(['the digit 3 moves left', 'the digit 7 moves left']);
    expect(f.tokens.slice(0, 0, 1).slice(1, 4, 5).sub(f.tokens.slice(0, 1, 2).slice(1, 4, 5)).abs().max().item()).toBeGreaterThan(1e-4);
    expect(() => ts.TextEncoder.fromCaptions(['a'], { hiddenSize: 16, depth: -1, numHeads: 2 })).toThrow(/TextEncoder: expected depth to be an integer >= 0, got number -1/);
    [enc, two].forEach((k) => k.dispose());
  });
});

test('one training step on a packed batch of mixed grids: finite gradients for every parameter', () => {
  ts.manualSeed(14);
  const enc = ts.TextEncoder.fromCaptions(['the digit 3 moves up', 'the digit 7 moves left'], { hiddenSize: 16, depth: 1, numHeads: 2 });
  const m = new ts.DiT({ hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 3, condition: 'text', text: enc.config, positions: 'rope3d', attention: 'factorized', learnSigma: false });
  enc.dispose();
  randomize(m, 0.1); // adaLN-Zero would leave most gradients exactly zero at step 0
  const opt = new ts.optim.AdamW(m.parameters(), { lr: 1e-3 });
  const x0 = [ts.randn([3, 2, 4, 6]), ts.randn([3, 1, 6, 4]), ts.randn([3, 3, 2, 2])].map(ts.keep);
  const before = m.getParameter('blocks.1.attn.qkv.weight').clone();
  const loss = ts.tidy(() => {
    const noise = x0.map((x) => ts.randn(x.shape as number[]));
    const xt = x0.map((x, i) => x.mul(0.6).add(noise[i].mul(0.8)));
    const pred = m.forward(xt, [100, 400, 800], { prompts: ['the digit 3 moves up', '', 'the digit 7'] });
    const l = pred.map((p, i) => ts.F.mseLoss(p, noise[i])).reduce((a, b) => a.add(b)).div(3);
    l.backward();
    return l;
  });
  expect(Number.isFinite(loss.item())).toBe(true);
  for (const [name, p] of m.namedParameters()) {
    expect([name, p.grad !== null]).toEqual([name, true]);
    const g = p.grad!.toFloat32Array();
    expect([name, g.every(Number.isFinite)]).toEqual([name, true]);
  }
  const zero = m.namedParameters().filter(([, p]) => !(p.grad!.abs().max().item() > 0)).map(([n]) => n);
  expect(zero).toEqual([]); // the text encoder trains jointly: its gradients arrive too
  opt.step();
  expect(m.getParameter('blocks.1.attn.qkv.weight').sub(before).abs().max().item()).toBeGreaterThan(0);
  [loss, before, ...x0].forEach((t) => t.dispose());
  m.dispose();
});

test('inference inside tidy + noGrad leaves no tensors behind (packed, factorized, rope, text)', () => {
  ts.manualSeed(15);
  const m = new ts.DiT({ hiddenSize: 16, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, condition: 'text', textDim: 8, positions: 'rope3d', attention: 'factorized' });
  const xs = [ts.keep(ts.randn([2, 2, 4, 4])), ts.keep(ts.randn([2, 1, 2, 6]))];
  const emb = ts.keep(ts.randn([2, 3, 8]));
  const mask = ts.keep(ts.tensor([[1, 1, 0], [0, 0, 0]]));
  const run = (): void => ts.tidy(() => ts.noGrad(() => void m.forward(xs, [1, 2], { textEmbeddings: emb, mask })));
  run();
  const before = ts.memory().tensors;
  run();
  expect(ts.memory().tensors).toBe(before);
  [...xs, emb, mask].forEach((t) => t.dispose());
  m.dispose();
});
