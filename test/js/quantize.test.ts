// Weight-only 8-bit storage (lib/io/quantize.ts) and the pretrained bundle built on it.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { dequantizeStateDict, quantizeStateDict } from '../../lib/io/quantize';
import { loadPretrained, savePretrained } from '../../lib/demo/pretrained';

test('8-bit rows: error at most half a step per weight; small and non-float tensors untouched', () => {
  ts.tidy(() => {
    ts.manualSeed(1);
    const w = ts.randn([64, 96]).mul(ts.tensor(Float32Array.from({ length: 64 }, (_, r) => 0.01 + r), { shape: [64, 1] })); // rows of very different ranges
    const sd = { 'a.weight': w, 'a.bias': ts.randn([64]), small: ts.randn([4, 4]), ids: ts.tensor(Int32Array.from([1, 2, 3]), { dtype: 'int32' }) };
    const q = quantizeStateDict(sd);
    expect(q['a.weight'].dtype).toBe('uint8');
    expect(q['a.weight.q8_scale'].shape).toEqual([64]);
    expect(q['a.bias'].dtype).toBe('float32');
    expect(q.small.dtype).toBe('float32');
    const back = dequantizeStateDict(q);
    expect(Object.keys(back).sort()).toEqual(['a.bias', 'a.weight', 'ids', 'small']);
    const wv = w.toFloat32Array(), bv = back['a.weight'].toFloat32Array();
    for (let r = 0; r < 64; r++) {
      const row = wv.subarray(r * 96, (r + 1) * 96);
      const step = Math.max(...Array.from(row, Math.abs)) / 127;
      for (let k = 0; k < 96; k++) expect(Math.abs(bv[r * 96 + k] - row[k])).toBeLessThanOrEqual(step / 2 + 1e-7);
    }
    expect(Array.from(back.small.toFloat32Array())).toEqual(Array.from(sd.small.toFloat32Array()));
    expect(Array.from(back.ids.dataSync() as Int32Array)).toEqual([1, 2, 3]);
    expect(() => quantizeStateDict({ 'x.q8_scale': w })).toThrow(/reserved suffix/);
    expect(() => dequantizeStateDict({ w: ts.randn([2, 2]), 'w.q8_scale': ts.ones([2]) })).toThrow(/expected 'w' as uint8 codes/);
  });
});

test('savePretrained / loadPretrained: the loaded models predict what the saved ones did', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-pre-'));
  try {
    ts.manualSeed(2);
    const vae = new ts.VideoVAE({ ...ts.vaePresets.demo, baseChannels: 8, channelMultipliers: [1, 2, 2], numGroups: 4 });
    const tok = ts.Tokenizer.fromCaptions(['the digit 1 moves left']);
    const dit = new ts.DiT({ hiddenSize: 64, depth: 1, numHeads: 2, patchSize: [1, 2, 2], inChannels: 4, learnSigma: false, condition: 'text', text: { tokenizer: tok.state(), hiddenSize: 32, depth: 1, numHeads: 2 } });
    ts.noGrad(() => {
      for (const p of dit.parameters()) p.copy_(ts.randn([...p.shape]).mul(0.1));
    });
    const info = { scalingFactor: 0.7, flow: { timestepSampling: 'logit-normal' as const, shift: 1 }, latentChannels: 4 };
    savePretrained(dir, { vae, dit, info, metrics: { note: 'test' } });
    const p = loadPretrained(dir);
    expect(p.info).toEqual(info);
    expect(p.metrics).toEqual({ note: 'test' });
    ts.tidy(() => {
      const x = ts.randn([1, 4, 3, 4, 4]);
      const a = dit.forward(x, [500], { prompts: ['the digit 1 moves left'] }), b = p.dit.forward(x, [500], { prompts: ['the digit 1 moves left'] });
      const rel = a.sub(b).square().sum().item() / a.square().sum().item();
      expect(rel).toBeLessThan(1e-3);
      expect(rel).toBeGreaterThan(0); // really quantized
      const v = ts.rand([1, 1, 5, 16, 16]).mul(2).sub(1);
      const za = vae.encode(v).mode(), zb = p.vae.encode(v).mode();
      expect(za.sub(zb).square().sum().item() / za.square().sum().item()).toBeLessThan(1e-3);
    });
    expect(() => loadPretrained(path.join(dir, 'nope'))).toThrow(/vae.safetensors does not exist/);
    p.vae.dispose();
    p.dit.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
