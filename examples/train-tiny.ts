// A whole text-to-video model in under a minute on a CPU, with the API directly:
// Moving MNIST clips -> a VideoVAE -> a latent cache -> a text-conditioned DiT trained
// with rectified flow -> sampled clips for prompts, decoded by the VAE into a GIF.
// Tiny settings: it shows the path, not quality (`npx tessera demo` trains for real).
// Everything runs on one device: the CPU by default, or --device cuda (cuda:N).
//   npx tsc -p examples && node examples/train-tiny.js [outDir] [--device cuda]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '..';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf('--device');
  const device = (at >= 0 ? args.splice(at, 2)[1] : 'cpu') as ts.Device;
  const out = args[0] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-tiny-'));
  const t0 = Date.now();
  const seconds = (): string => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
  ts.manualSeed(0);

  // 1. Data: 9-frame 32x32 clips of one MNIST digit moving, each with its caption.
  const data = ts.movingMnistDataset(new ts.MovingMNIST({ split: 'train', length: 64, frames: 9, size: 32, numDigits: 1, seed: 0 }));
  console.log(`data: ${data.length} clips of [${data.shape.join(', ')}], e.g. '${data.get(0).caption}'`);

  // 2. A small causal video VAE: [1, 9, 32, 32] -> latents [4, 3, 8, 8].
  const vae = new ts.VideoVAE({
    inChannels: 1, latentChannels: 4, baseChannels: 8, channelMultipliers: [1, 1, 2], numResBlocks: 1, decoderResBlocks: 1,
    temporalCompression: 4, spatialCompression: 4, numGroups: 4,
  }, { device });
  await ts.trainVAE({ model: vae, data, steps: 120, batchSize: 4, lr: 3e-3, mseWeight: 1, crop: { frames: 5 }, device });
  const q = ts.evaluateVAE(vae, data, { samples: 8 });
  console.log(`VAE: 120 steps, reconstruction PSNR ${q.psnr.toFixed(1)} dB (${seconds()})`);

  // 3. Encode every clip once into a latent cache (scaled to unit variance for the DiT).
  const cacheDir = path.join(out, 'latents');
  const index = ts.encodeDataset(vae, data, cacheDir);
  const latents = ts.latentDataset(ts.loadLatentCache(cacheDir, { device })); // read straight to the device
  console.log(`latents: ${index.count} x [${index.latentShape.join(', ')}], scaling factor ${index.scalingFactor.toFixed(2)}`);

  // 4. A text-conditioned DiT on spacetime patches [1, 2, 2], with its own text encoder.
  const captions: string[] = [];
  for (let d = 0; d < 10; d++) for (const dir of ts.DIRECTIONS) captions.push(ts.captionFor([d], [dir]));
  const tokenizer = ts.Tokenizer.fromCaptions(captions);
  const dit = new ts.DiT({
    hiddenSize: 64, depth: 2, numHeads: 4, patchSize: [1, 2, 2], inChannels: 4, learnSigma: false, condition: 'text',
    text: { tokenizer: tokenizer.state(), hiddenSize: 32, depth: 1, numHeads: 2 },
  }).to(device);
  const flow = new ts.RectifiedFlow();
  const trained = await ts.trainDiT({ dit, diffusion: flow, data: latents, steps: 150, batchSize: 8, lr: 1e-3, seed: 0 });
  console.log(`DiT: ${trained.steps} steps on ${device}, last loss ${trained.lastLoss.toFixed(3)} (${seconds()})`);

  // 5. Sample prompts with the EMA weights and classifier-free guidance; decode; save.
  const prompts = ['the digit 7 moves right', 'the digit 3 moves up'];
  const decoder = { decode: (z: ts.Tensor) => vae.decode(z.div(index.scalingFactor)) };
  const video = ts.sample({ dit, diffusion: flow, vae: decoder, prompts, latentGrid: [3, 8, 8], steps: 20, cfgScale: 3, seed: 0, ema: trained.ema });
  const gif = path.join(out, 'tiny-samples.gif');
  ts.saveVideo(video, gif, { fps: 8 }); // [2, 1, 9, 32, 32] in [0, 1]
  console.log(`samples for ${prompts.map((p) => `'${p}'`).join(', ')}: ${gif} (${seconds()})`);
  [video, vae, dit].forEach((x) => x.dispose());
  trained.ema?.dispose();
}

main().catch((e) => {
  console.error(`train-tiny: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
