// The device paths on a simulated host device: TESSERA_HOST_DEVICES=2 (jest.config.js)
// exposes cpu:1, which runs the CPU kernels under its own identity. Every loop, model and
// sampler must make its tensors on its own device: on cpu:1 the results are bit-identical
// to cpu (same kernels, same seed), cpu's peak bytes do not move, and a training step
// reads one thing back (the loss, at the logging cadence).
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { Tensor } from '../../lib';

const ROOT = path.resolve(__dirname, '..', '..');
const D1 = 'cpu:1' as ts.Device;

/** Runs fn, returning what it returns and what it cost on cpu: peak bytes over the start, host reads. */
async function measured<T>(fn: () => T | Promise<T>): Promise<{ value: T; cpuPeak: number; reads: number }> {
  ts.resetPeakMemory();
  const m0 = ts.memory();
  const value = await fn();
  const m1 = ts.memory();
  return { value, cpuPeak: m1.devices.cpu.peakBytes - m0.devices.cpu.bytes, reads: m1.hostReads - m0.hostReads };
}

const values = (m: ts.nn.Module): Map<string, Float32Array> => new Map(m.namedParameters().map(([n, p]) => [n, p.toFloat32Array()]));
function expectSame(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...b.keys()]).toEqual([...a.keys()]);
  for (const [k, v] of a) expect({ k, same: Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer)) }).toEqual({ k, same: true });
}

describe('simulated host devices', () => {
  test('cpu:1 is its own device: mixing throws, memory and reads are per device', () => {
    expect(ts.info().hostDevices).toBe(2);
    const a = ts.randn([4, 4], { device: D1 });
    const b = ts.randn([4, 4]);
    expect(a.device).toBe('cpu:1');
    expect(() => a.add(b)).toThrow(/add: expected tensors on one device, got cpu:1 and cpu/);
    expect(() => a.matmul(b)).toThrow(/matmul: expected tensors on one device/);
    expect(() => ts.zeros([1], { device: 'cpu:2' as ts.Device })).toThrow(/full: device cpu:2 is not available \(TESSERA_HOST_DEVICES=2 exposes cpu:0 to cpu:1\)/);
    const m0 = ts.memory();
    const c = ts.zeros([1024], { device: D1 });
    expect(ts.memory().devices['cpu:1'].bytes - m0.devices['cpu:1'].bytes).toBe(4096);
    expect(ts.memory().devices.cpu.bytes).toBe(m0.devices.cpu.bytes);
    b.sum().item(); // cpu: not a device read
    expect(ts.memory().hostReads).toBe(m0.hostReads);
    a.sum().item();
    expect(ts.memory().hostReads).toBe(m0.hostReads + 1);
    const moved = a.to('cpu');
    expect(moved.device).toBe('cpu');
    expect(ts.memory().hostReads).toBe(m0.hostReads + 2);
    [a, b, c, moved].forEach((t) => t.dispose());
  });

  test('without TESSERA_HOST_DEVICES, cpu:1 is a clear error', () => {
    const env = { ...process.env };
    delete env.TESSERA_HOST_DEVICES;
    const script = `try { require(${JSON.stringify(ROOT)}).zeros([1], { device: 'cpu:1' }); console.log('no error'); } catch (e) { console.log(e.message); }`;
    const out = execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8' }).trim();
    expect(out).toMatch(/device cpu:1 is not available \(simulated host devices are off; TESSERA_HOST_DEVICES=N exposes cpu:0 to cpu:N-1\)/);
  });
});

describe('training steps on cpu:1 equal cpu, allocate nothing on cpu, read the loss once per logged step', () => {
  const vaeConfig: ts.VideoVAEConfig = {
    inChannels: 1, latentChannels: 4, baseChannels: 8, channelMultipliers: [1, 1, 2], numResBlocks: 1, decoderResBlocks: 1,
    temporalCompression: 4, spatialCompression: 4, numGroups: 4,
  };
  const clips = ts.movingMnistDataset(new ts.MovingMNIST({ split: 'train', length: 6, frames: 5, size: 32, numDigits: 1, seed: 1 }));

  test('VAE (with EMA)', async () => {
    const run = async (device: ts.Device) => {
      ts.manualSeed(3);
      const vae = new ts.VideoVAE(vaeConfig, { device });
      const r = await measured(() => ts.trainVAE({ model: vae, data: clips, steps: 4, batchSize: 2, lr: 1e-3, ema: 0.9, logEvery: 2, device }));
      const out = { params: values(vae), ema: r.value.ema!.stateDict().shadow['decoder.conv_out.weight'].toFloat32Array(), loss: r.value.last!.loss, r };
      r.value.ema!.dispose();
      vae.dispose();
      return out;
    };
    const a = await run('cpu'), b = await run(D1);
    expectSame(a.params, b.params);
    expect(Buffer.from(b.ema.buffer).equals(Buffer.from(a.ema.buffer))).toBe(true);
    expect(b.loss).toBe(a.loss);
    expect(b.r.cpuPeak).toBe(0);
    expect(b.r.reads).toBe(2); // steps 2 and 4
  });

  test('VAE chunked and tiled encode / decode', async () => {
    const run = async (device: ts.Device) => {
      ts.manualSeed(4);
      const vae = new ts.VideoVAE(vaeConfig, { device });
      const x = ts.randn([1, 1, 9, 32, 32], { device });
      const r = await measured(() => ts.tidy(() => ts.noGrad(() => {
        const z = vae.encode(x, { temporalChunk: 5, tile: { size: 16, overlap: 8 } }).mode();
        return [z, vae.decode(z, { temporalChunk: 5, tile: { size: 16, overlap: 8 } })];
      })));
      const out = r.value.map((t) => t.toFloat32Array());
      [...r.value, x].forEach((t) => t.dispose());
      vae.dispose();
      return { out, r };
    };
    const a = await run('cpu');
    const b = await run(D1);
    for (let i = 0; i < 2; i++) expect(Buffer.from(b.out[i].buffer).equals(Buffer.from(a.out[i].buffer))).toBe(true);
    expect(b.r.cpuPeak).toBe(0);
    expect(b.r.reads).toBe(0);
  });

  const captions = ['the digit 1 moves up', 'the digit 2 moves left', 'the digit 3 moves down', ''];
  const tokenizer = ts.Tokenizer.fromCaptions(captions);
  type Case = [string, ts.DiTConfig, Partial<ts.TrainDiTOptions>, number[][]];
  const cases: Case[] = [
    ['text, full attention, conditioning frames', {
      hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, learnSigma: false, condition: 'text',
      text: { tokenizer: tokenizer.state(), hiddenSize: 16, depth: 1, numHeads: 2 },
    }, { conditionFrameProb: 0.7 }, [[2, 3, 4, 4]]],
    ['class, factorized attention with rope, packed NaViT batch, learned sigma', {
      hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, learnSigma: true, condition: 'class', numClasses: 3,
      attention: 'factorized', positions: 'rope3d',
    }, { mixed: 'pack', conditionFrameProb: 0.5 }, [[2, 3, 4, 4], [2, 1, 4, 6], [2, 2, 2, 2]]],
  ];
  test.each(cases)('DiT: %s', async (_, config, extra, shapes) => {
    ts.manualSeed(9);
    const host = shapes.map((s) => ts.randn(s).toFloat32Array());
    const run = async (device: ts.Device) => {
      ts.manualSeed(5);
      const dit = new ts.DiT(config).to(device);
      const data: ts.LatentDataset = {
        length: 8,
        get: (i) => ({ latent: ts.tensor(host[i % host.length], { shape: shapes[i % shapes.length], device }), caption: captions[i % 3], label: i % 3 }),
      };
      const diffusion = config.learnSigma ? new ts.GaussianDiffusion({ learnSigma: true }) : new ts.RectifiedFlow();
      const r = await measured(() => ts.trainDiT({ dit, diffusion, data, steps: 4, batchSize: 3, lr: 1e-3, ema: 0.9, seed: 2, logEvery: 2, ...extra }));
      const out = { params: values(dit), loss: r.value.lastLoss, r };
      r.value.ema?.dispose();
      if (diffusion instanceof ts.GaussianDiffusion) diffusion.dispose();
      dit.dispose();
      return out;
    };
    const a = await run('cpu'), b = await run(D1);
    expectSame(a.params, b.params);
    expect(b.loss).toBe(a.loss);
    expect(Number.isFinite(b.loss)).toBe(true);
    expect(b.r.cpuPeak).toBe(0);
    expect(b.r.reads).toBe(2); // logged steps 2 and 4: one read each
  });
});

describe('sampling, caches, files across devices', () => {
  const textDiT = (device: ts.Device): ts.DiT => {
    ts.manualSeed(21);
    const tok = ts.Tokenizer.fromCaptions(['the digit 7 moves right', 'a b c']);
    const dit = new ts.DiT({
      hiddenSize: 32, depth: 2, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, learnSigma: false, condition: 'text',
      text: { tokenizer: tok.state(), hiddenSize: 16, depth: 1, numHeads: 2 },
    });
    ts.noGrad(() => dit.parameters().forEach((p) => p.copy_(ts.randn([...p.shape]).mul(0.1)))); // no zero-init blind spots
    return dit.to(device);
  };
  const classDiT = (device: ts.Device): ts.DiT => {
    ts.manualSeed(22);
    const dit = new ts.DiT({ hiddenSize: 32, depth: 1, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, learnSigma: true, condition: 'class', numClasses: 4 });
    ts.noGrad(() => dit.parameters().forEach((p) => p.copy_(ts.randn([...p.shape]).mul(0.1))));
    return dit.to(device);
  };

  test.each([
    ['ddpm', 'gaussian'], ['ddim', 'gaussian'], ['dpm++2m', 'gaussian'], ['euler', 'flow'],
  ] as const)('sample with %s and classifier-free guidance', async (sampler, kind) => {
    const run = async (device: ts.Device) => {
      const dit = kind === 'flow' ? textDiT(device) : classDiT(device);
      const diffusion = kind === 'flow' ? new ts.RectifiedFlow({ shift: 2 }) : new ts.GaussianDiffusion({ learnSigma: true });
      const first = ts.randn([2, 2, 1, 4, 4], { device });
      const r = await measured(() =>
        ts.sample({
          dit, diffusion, latentGrid: [3, 4, 4], steps: 4, cfgScale: 3, seed: 7, sampler,
          ...(kind === 'flow' ? { prompts: ['the digit 7 moves right', 'a b'], conditionFrames: { latents: first, indices: [0] } } : { labels: [1, 2] }),
        }),
      );
      expect(r.value.device).toBe(device);
      const v = r.value.toFloat32Array();
      [r.value, first].forEach((t) => t.dispose());
      dit.dispose();
      return { v, r };
    };
    const a = await run('cpu'), b = await run(D1);
    expect(Buffer.from(b.v.buffer).equals(Buffer.from(a.v.buffer))).toBe(true);
    expect(b.r.cpuPeak).toBe(0);
    expect(b.r.reads).toBe(0);
  });

  test('encodeDataset then latentDataset read straight to the device', async () => {
    const dir0 = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-dev-')), dir1 = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-dev-'));
    try {
      const data = ts.movingMnistDataset(new ts.MovingMNIST({ split: 'train', length: 5, frames: 5, size: 32, numDigits: 1, seed: 3 }));
      const cfg: ts.VideoVAEConfig = {
        inChannels: 1, latentChannels: 4, baseChannels: 8, channelMultipliers: [1, 1, 2], numResBlocks: 1, decoderResBlocks: 1,
        temporalCompression: 4, spatialCompression: 4, numGroups: 4,
      };
      ts.manualSeed(1);
      const v0 = new ts.VideoVAE(cfg);
      ts.manualSeed(1);
      const v1 = new ts.VideoVAE(cfg, { device: D1 });
      ts.encodeDataset(v0, data, dir0, { batchSize: 2, shardSize: 3 });
      const r = await measured(() => ts.encodeDataset(v1, data, dir1, { batchSize: 2, shardSize: 3 }));
      expect(r.cpuPeak).toBe(0);
      const shards = fs.readdirSync(dir0).filter((n) => n.endsWith('.safetensors'));
      expect(shards.length).toBe(2);
      for (const f of shards) expect(fs.readFileSync(path.join(dir1, f)).equals(fs.readFileSync(path.join(dir0, f)))).toBe(true);
      const s = ts.latentDataset(ts.loadLatentCache(dir1, { device: D1 })).get(4);
      expect(s.latent.device).toBe('cpu:1');
      const ref = ts.latentDataset(ts.loadLatentCache(dir0)).get(4).latent;
      expect(ref.device).toBe('cpu');
      expect(Buffer.from(s.latent.toFloat32Array().buffer).equals(Buffer.from(ref.toFloat32Array().buffer))).toBe(true);
      [s.latent, ref, v0, v1].forEach((t) => t.dispose());
    } finally {
      [dir0, dir1].forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
    }
  });

  test('a model and a checkpoint saved on one device load on another', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-dev-'));
    try {
      const dit = textDiT(D1);
      const file = path.join(dir, 'dit.safetensors');
      dit.save(file);
      const back = ts.DiT.load(file); // onto the CPU
      expectSame(values(dit), values(back));
      const onDev = ts.DiT.load(file, { device: D1 });
      expect(onDev.device).toBe('cpu:1');
      // a checkpoint of a run on cpu:1 resumes on cpu, optimizer state and EMA included
      const data: ts.LatentDataset = { length: 2, get: (i) => ({ latent: ts.randn([2, 1, 4, 4], { device: D1 }), caption: i ? 'a b c' : '' }) };
      const r = await ts.trainDiT({ dit, diffusion: new ts.RectifiedFlow(), data, steps: 2, batchSize: 2, checkpointDir: path.join(dir, 'ck'), seed: 1 });
      r.ema?.dispose();
      const cpuDiT = textDiT('cpu');
      const data0: ts.LatentDataset = { length: 2, get: (i) => ({ latent: ts.randn([2, 1, 4, 4]), caption: i ? 'a b c' : '' }) };
      const r2 = await ts.trainDiT({ dit: cpuDiT, diffusion: new ts.RectifiedFlow(), data: data0, steps: 3, batchSize: 2, checkpointDir: path.join(dir, 'ck'), seed: 1 });
      expect(r2.steps).toBe(3);
      expect(cpuDiT.device).toBe('cpu');
      expect(Number.isFinite(r2.lastLoss)).toBe(true);
      r2.ema?.dispose();
      [dit, back, onDev, cpuDiT].forEach((m) => m.dispose());
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("precision 'bf16' is refused off CUDA; devices are checked up front", async () => {
    const dit = classDiT('cpu');
    const data: ts.LatentDataset = { length: 1, get: () => ({ latent: ts.randn([2, 1, 4, 4]), label: 0 }) };
    await expect(ts.trainDiT({ dit, diffusion: new ts.RectifiedFlow(), data, steps: 1, batchSize: 1, precision: 'bf16' })).rejects.toThrow(
      /trainDiT: precision 'bf16' runs on CUDA tensor cores; cpu computes in float32/,
    );
    await expect(ts.trainDiT({ dit, diffusion: new ts.RectifiedFlow(), data, steps: 1, batchSize: 1, device: 'tpu' as ts.Device })).rejects.toThrow(
      /trainDiT: expected device to be 'cpu', 'cpu:N', 'cuda' or 'cuda:N', got string tpu/,
    );
    // latents on another device than the model are named, not mixed
    await expect(ts.trainDiT({ dit, diffusion: new ts.RectifiedFlow(), data, steps: 1, batchSize: 1, device: D1 })).rejects.toThrow(
      /trainDiT: the dataset gives latents on cpu, the model is on cpu:1/,
    );
    dit.dispose();
  });
});

export type { Tensor };
