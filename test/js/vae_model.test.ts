// VideoVAE: shapes, frame-count rules, causality, PyTorch parity, posterior, presets.
import * as ts from '../../lib';
import { Tensor, VideoVAE } from '../../lib';
import { loadFixture } from './helpers';

const tiny = {
  inChannels: 1, latentChannels: 4, baseChannels: 4, channelMultipliers: [1, 2, 2], numResBlocks: 1, decoderResBlocks: 1,
  temporalCompression: 4, spatialCompression: 4, numGroups: 2,
};

function maxDiff(a: Tensor, b: Tensor | Float32Array): number {
  const x = a.toFloat32Array(), y = b instanceof Tensor ? b.toFloat32Array() : b;
  expect(x.length).toBe(y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

describe('VideoVAE shapes and frame counts', () => {
  test('demo preset: 17x64x64 -> 5x16x16x4 and back; images round-trip', () => {
    ts.manualSeed(0);
    const vae = new VideoVAE(ts.vaePresets.demo);
    ts.tidy(() =>
      ts.noGrad(() => {
        const x = ts.rand([2, 1, 17, 64, 64]).mul(2).sub(1);
        const post = vae.encode(x);
        expect(post.mean.shape).toEqual([2, 4, 5, 16, 16]);
        expect(post.logvar.shape).toEqual([2, 4, 5, 16, 16]);
        expect(vae.latentShape([2, 1, 17, 64, 64])).toEqual([2, 4, 5, 16, 16]);
        expect(vae.decode(post.sample()).shape).toEqual([2, 1, 17, 64, 64]);
        const img = ts.rand([3, 1, 1, 64, 64]);
        const z = vae.encode(img).mode();
        expect(z.shape).toEqual([3, 4, 1, 16, 16]);
        expect(vae.decode(z).shape).toEqual([3, 1, 1, 64, 64]);
      }),
    );
    vae.dispose();
  });

  test.each([
    [1, 4, [9, 32, 32], [9, 8, 8]],
    [2, 4, [9, 32, 32], [5, 8, 8]],
    [4, 8, [9, 32, 32], [3, 4, 4]],
  ])('temporal %ix, spatial %ix: %j -> %j', (ft, fs, inShape, latent) => {
    const vae = new VideoVAE({ ...tiny, temporalCompression: ft, spatialCompression: fs, channelMultipliers: fs === 8 ? [1, 1, 2, 2] : [1, 2, 2] });
    ts.tidy(() =>
      ts.noGrad(() => {
        const z = vae.encode(ts.rand([1, 1, ...inShape])).mean;
        expect(z.shape).toEqual([1, 4, ...latent]);
        expect(vae.decode(z).shape).toEqual([1, 1, ...inShape]);
      }),
    );
    vae.dispose();
  });

  test('bad input: channels, frame counts, sizes, ranks and configs give clear errors', () => {
    const vae = new VideoVAE(tiny);
    ts.tidy(() => {
      expect(() => vae.encode(ts.zeros([1, 3, 5, 16, 16]))).toThrow(/expected 1 channel, got 3/);
      expect(() => vae.encode(ts.zeros([1, 1, 8, 16, 16]))).toThrow(/expected 1 \+ k\*4 frames \(1, 5, 9, 13, 17, .*got 8 frames/);
      expect(() => vae.encode(ts.zeros([1, 1, 5, 18, 16]))).toThrow(/multiples of 4, got 18x16/);
      expect(() => vae.encode(ts.zeros([1, 5, 16, 16]))).toThrow(/expected a video \[B, C, T, H, W\]/);
      expect(() => vae.decode(ts.zeros([1, 3, 2, 4, 4]))).toThrow(/expected a latent \[B, 4, T', H', W'\]/);
      expect(() => vae.encode('x' as unknown as Tensor)).toThrow(/expected a Tensor/);
    });
    expect(() => new VideoVAE({ ...tiny, latentChannels: 5 })).toThrow(/latentChannels to be one of 4, 8, 16, got 5/);
    expect(() => new VideoVAE({ ...tiny, temporalCompression: 3 })).toThrow(/temporalCompression to be one of 1, 2, 4/);
    expect(() => new VideoVAE({ ...tiny, spatialCompression: 8 })).toThrow(/channelMultipliers to be 4 positive integers/);
    vae.dispose();
  });
});

describe('causality', () => {
  test('frame 0 is encoded alone and the latents of earlier frames ignore later ones', () => {
    ts.manualSeed(1);
    const vae = new VideoVAE({ ...tiny, midAttention: true });
    ts.tidy(() =>
      ts.noGrad(() => {
        const x = ts.rand([1, 1, 17, 16, 16]).mul(2).sub(1);
        const z = vae.encode(x).mean; // [1, 4, 5, 4, 4]
        const z0 = vae.encode(x.slice(2, 0, 1)).mean; // the image of frame 0
        expect(maxDiff(z.slice(2, 0, 1).contiguous(), z0)).toBeLessThan(1e-5);
        // change frame 9: latent frame j covers frames up to 4j, so latents 0..2 stay
        const v = x.toFloat32Array();
        for (let i = 9 * 256; i < 10 * 256; i++) v[i] = -v[i];
        const z2 = vae.encode(ts.tensor(v, { shape: [1, 1, 17, 16, 16] })).mean;
        expect(maxDiff(z.slice(2, 0, 3).contiguous(), z2.slice(2, 0, 3).contiguous())).toBeLessThan(1e-6);
        expect(maxDiff(z.slice(2, 3, 4).contiguous(), z2.slice(2, 3, 4).contiguous())).toBeGreaterThan(1e-4);
        // decoder: latent frame 2 feeds frames 5..8 and later, not frames 0..4
        const y = vae.decode(z);
        const zv = z.toFloat32Array();
        for (let c = 0; c < 4; c++) for (let i = 0; i < 16; i++) zv[(c * 5 + 2) * 16 + i] += 1;
        const y2 = vae.decode(ts.tensor(zv, { shape: [1, 4, 5, 4, 4] }));
        expect(maxDiff(y.slice(2, 0, 5).contiguous(), y2.slice(2, 0, 5).contiguous())).toBeLessThan(1e-6);
        expect(maxDiff(y.slice(2, 5, 9).contiguous(), y2.slice(2, 5, 9).contiguous())).toBeGreaterThan(1e-4);
      }),
    );
    vae.dispose();
  });
});

describe('PyTorch parity', () => {
  test('same names, outputs and gradients as the PyTorch twin (benchmarks/torch_vae.py)', () => {
    const fx = loadFixture('vae');
    const cfg = JSON.parse(fx.meta.config);
    const vae = new VideoVAE(cfg);
    const sd: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(fx.tensors)) if (k.startsWith('sd.')) sd[k.slice(3)] = v;
    expect(Object.keys(vae.stateDict()).sort()).toEqual(Object.keys(sd).sort());
    vae.loadStateDict(sd);
    const t = fx.tensors;
    ts.tidy(() => {
      const post = vae.encode(t.x);
      expect(maxDiff(post.mean, t.mean)).toBeLessThan(1e-4);
      expect(maxDiff(post.logvar, t.logvar)).toBeLessThan(1e-4);
      const recon = vae.decode(post.mean);
      expect(maxDiff(recon, t.recon)).toBeLessThan(1e-4);
      const loss = ts.F.l1Loss(recon, t.x).add(post.kl().mul(1e-3));
      expect(Math.abs(loss.item() - t.loss.item())).toBeLessThan(1e-5);
      loss.backward();
      for (const [name, p] of vae.namedParameters()) {
        const want = t[`grad.${name}`];
        if (!want) continue;
        const scale = Math.max(...Array.from(want.toFloat32Array(), Math.abs));
        expect(maxDiff(p.grad!, want) / scale).toBeLessThan(1e-3);
      }
    });
    vae.dispose();
    for (const v of Object.values(fx.tensors)) v.dispose();
  });

  test('parameter names follow the LDM/diffusers VAE', () => {
    const vae = new VideoVAE({ ...ts.vaePresets.demo, midAttention: true });
    const names = vae.namedParameters().map(([n]) => n);
    for (const n of [
      'encoder.conv_in.weight', 'encoder.down.0.block.0.norm1.weight', 'encoder.down.0.block.0.conv1.weight',
      'encoder.down.1.block.0.nin_shortcut.weight', 'encoder.down.0.downsample.conv.weight', 'encoder.mid.block_1.conv2.bias',
      'encoder.mid.attn_1.qkv.weight', 'encoder.mid.attn_1.proj_out.weight', 'encoder.norm_out.weight', 'encoder.conv_out.weight',
      'decoder.conv_in.weight', 'decoder.up.2.block.0.conv1.weight', 'decoder.up.1.upsample.conv.weight', 'decoder.conv_out.bias',
    ])
      expect(names).toContain(n);
    expect(names.some((n) => n.startsWith('encoder.down.2.downsample'))).toBe(false);
    vae.dispose();
  });
});

describe('posterior and value ranges', () => {
  test('sample, mode, kl and the logvar clamp', () => {
    ts.manualSeed(2);
    const vae = new VideoVAE(tiny);
    ts.tidy(() =>
      ts.noGrad(() => {
        const post = vae.encode(ts.rand([2, 1, 5, 16, 16]));
        expect(post.mode()).toBe(post.mean);
        const m = post.mean.toFloat32Array(), lv = post.logvar.toFloat32Array();
        let kl = 0;
        for (let i = 0; i < m.length; i++) kl += 0.5 * (m[i] * m[i] + Math.exp(lv[i]) - 1 - lv[i]);
        expect(post.kl().item()).toBeCloseTo(kl / 2, 3);
        ts.manualSeed(5);
        const s = post.sample().toFloat32Array();
        ts.manualSeed(5);
        const eps = ts.randn([2, 4, 2, 4, 4]).toFloat32Array();
        for (let i = 0; i < s.length; i += 7) expect(s[i]).toBeCloseTo(m[i] + Math.exp(lv[i] / 2) * eps[i], 4);
        // push logvar far out: clamped to [-30, 20]
        const bias = vae.encoder.convOut.bias!;
        const b = bias.toFloat32Array();
        bias.copy_(ts.tensor(b.map((v, i) => (i < 4 ? v : i % 2 ? 1e4 : -1e4))));
        const lv2 = vae.encode(ts.rand([1, 1, 1, 16, 16])).logvar.toFloat32Array();
        expect(Math.max(...lv2)).toBe(20);
        expect(Math.min(...lv2)).toBe(-30);
      }),
    );
    vae.dispose();
  });

  test('toModelRange / fromModelRange / uint8 helpers', () => {
    ts.tidy(() => {
      const x = ts.tensor([0, 0.25, 1]);
      expect(Array.from(ts.toModelRange(x).toFloat32Array())).toEqual([-1, -0.5, 1]);
      expect(Array.from(ts.fromModelRange(ts.tensor([-2, -1, 0, 1, 3])).toFloat32Array())).toEqual([0, 0, 0.5, 1, 1]);
      const u = ts.toUint8(ts.tensor([-1, 0, 1, 5]));
      expect(u.dtype).toBe('uint8');
      expect(Array.from(u.dataSync() as Uint8Array)).toEqual([0, 128, 255, 255]);
      const back = ts.fromUint8(u).toFloat32Array();
      expect(back[0]).toBe(-1);
      expect(back[2]).toBe(1);
      expect(ts.fromUint8(new Uint8Array([0, 255]), [2, 1]).shape).toEqual([2, 1]);
    });
  });
});

describe('presets', () => {
  test('sora: a 3x17x128x128 clip and a single image round-trip; two training steps lower the loss', () => {
    ts.manualSeed(3);
    const vae = new VideoVAE(ts.vaePresets.sora);
    expect(vae.config).toMatchObject({ inChannels: 3, latentChannels: 16, temporalCompression: 4, spatialCompression: 8 });
    ts.tidy(() =>
      ts.noGrad(() => {
        const z = vae.encode(ts.rand([1, 3, 17, 128, 128])).mean;
        expect(z.shape).toEqual([1, 16, 5, 16, 16]);
        expect(vae.decode(z).shape).toEqual([1, 3, 17, 128, 128]);
        const zi = vae.encode(ts.rand([1, 3, 1, 128, 128])).mean;
        expect(zi.shape).toEqual([1, 16, 1, 16, 16]);
        expect(vae.decode(zi).shape).toEqual([1, 3, 1, 128, 128]);
      }),
    );
    const opt = new ts.optim.AdamW(vae, { lr: 1e-3 });
    const x = ts.rand([1, 3, 5, 32, 32]).mul(2).sub(1);
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) {
      ts.tidy(() => {
        const { recon } = vae.forward(x, { sample: false });
        const loss = ts.F.l1Loss(recon, x);
        losses.push(loss.item());
        loss.backward();
      });
      opt.step();
      opt.zeroGrad();
    }
    expect(losses[2]).toBeLessThan(losses[0]);
    x.dispose();
    opt.dispose();
    vae.dispose();
  });
});
