// Per-frame timesteps in DiT.forward (t [S, T]: conditioning frames at t = 0 for
// image-to-video): the modulation of every token follows its own frame's timestep.
import * as ts from '../../lib';
import { expectClose } from './helpers';

/** A small DiT with every weight random (adaLN-Zero would otherwise hide the timestep). */
function model(over: Partial<ts.DiTConfig> = {}): ts.DiT {
  ts.manualSeed(3);
  const m = new ts.DiT({ hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, learnSigma: false, condition: 'class', numClasses: 4, ...over });
  ts.noGrad(() => {
    for (const p of m.parameters()) p.copy_(ts.randn([...p.shape]).mul(0.3));
  });
  return m;
}

/** Zeroes the self-attention output projections: tokens then never see each other. */
function isolateTokens(m: ts.DiT): void {
  ts.noGrad(() => {
    for (const b of m.blocks) {
      b.attn.proj.weight.copy_(ts.zeros([...b.attn.proj.weight.shape]));
      b.attn.proj.bias!.copy_(ts.zeros([...b.attn.proj.bias!.shape]));
    }
  });
}

test('t [B, T] with equal frames equals t [B]', () => {
  const m = model();
  ts.tidy(() => {
    const x = ts.randn([2, 2, 3, 4, 4]);
    const a = m.forward(x, [300, 700], [1, 2]);
    const b = m.forward(x, ts.tensor([300, 300, 300, 700, 700, 700], { shape: [2, 3] }), [1, 2]);
    expectClose(b, a, 1e-6);
  });
});

test("each frame's tokens are modulated by that frame's timestep", () => {
  const m = model();
  isolateTokens(m);
  ts.tidy(() => {
    const x = ts.randn([2, 2, 3, 4, 4]);
    const t = [[0, 500, 900], [250, 250, 10]];
    const y = m.forward(x, t, [0, 3]); // [2, 2, 3, 4, 4]
    for (let b = 0; b < 2; b++)
      for (let k = 0; k < 3; k++) {
        const alone = m.forward(x.slice(0, b, b + 1), t[b][k], [[0, 3][b]]); // the whole clip at frame k's timestep
        expectClose(y.slice(0, b, b + 1).slice(2, k, k + 1), alone.slice(2, k, k + 1), 1e-5);
      }
    // With attention on, a clean first frame changes what the other frames predict.
    const full = model();
    const u = full.forward(x, [[500, 500, 500], [500, 500, 500]], [0, 3]);
    const c = full.forward(x, [[0, 500, 500], [0, 500, 500]], [0, 3]);
    expect(u.slice(2, 1, 3).sub(c.slice(2, 1, 3)).abs().max().item()).toBeGreaterThan(1e-4);
  });
});

test('packed per-frame timesteps equal the batch path; text conditioning repeats per frame', () => {
  const tok = ts.Tokenizer.fromCaptions(['the digit 3 moves left', 'the digit 5 moves up']);
  const m = model({ condition: 'text', text: { tokenizer: tok.state(), hiddenSize: 16, depth: 1, numHeads: 2 } });
  ts.tidy(() => {
    const x = ts.randn([2, 2, 2, 4, 6]);
    const t = [[0, 600], [400, 100]];
    const ids = { prompts: ['the digit 3 moves left', 'the digit 5 moves up'] };
    const batch = m.forward(x, ts.tensor(t.flat(), { shape: [2, 2] }), ids);
    const parts = m.forward([x.slice(0, 0, 1), x.slice(0, 1, 2)], t, ids);
    expectClose(parts[0], batch.slice(0, 0, 1), 1e-5);
    expectClose(parts[1], batch.slice(0, 1, 2), 1e-5);
    // Gradients reach the input and the timestep embedder.
    const xg = x.clone().requiresGrad_(true);
    m.forward(xg, t, ids).square().sum().backward();
    expect(xg.grad!.abs().max().item()).toBeGreaterThan(0);
    expect(m.tEmbedder.mlp.at(0).parameters()[0].grad!.abs().max().item()).toBeGreaterThan(0);
    m.zeroGrad();
  });
});

test('per-frame timesteps: a temporal patch needs one timestep; clear errors', () => {
  const m = model({ patchSize: [2, 2, 2] });
  ts.tidy(() => {
    const x = ts.randn([1, 2, 4, 4, 4]); // 2 token frames of 2 latent frames each
    const a = m.forward(x, [[0, 0, 700, 700]], [1]);
    expectClose(a, m.forward(x, [[0, 700]], [1]), 1e-6); // per latent frame or per token frame
    expect(() => m.forward(x, [[0, 500, 700, 700]], [1])).toThrow(/latent frames 0\.\.1 form one temporal patch \(pt = 2\) and need one timestep, got \[0, 500\]/);
    expect(() => m.forward(x, [[0, 0, 700]], [1])).toThrow(/expected 4 per-frame timesteps \(one per latent frame\), got 3/);
    expect(() => m.forward(x, ts.zeros([2, 4]), [1])).toThrow(/expected per-frame timesteps t \[1, T\]/);
    expect(() => m.forward(x, [[0, NaN]], [1])).toThrow(/must be finite numbers/);
  });
});
