// Image-first demo models: training adds the clips' first latent frames as images, and
// sampleVideos draws the first frame as an image, then the video conditioned on it, so
// the first decoded frame is exactly the decoded image sample (the VAE is causal).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import * as demo from '../../lib/demo';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-imgfirst-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(() => ts.setNumThreads(1));

const settings = { ...demo.demoDiTSettings.quick, trainClips: 6, frames: 5, size: 32, imageFirst: true };

function maxDiff(a: ts.Tensor, b: ts.Tensor): number {
  const x = a.toFloat32Array(), y = b.toFloat32Array();
  expect(x.length).toBe(y.length);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
}

test('trainDemoDiT with imageFirst trains on videos and first-frame images and records it for sampling', async () => {
  ts.manualSeed(0);
  const vae = new ts.VideoVAE(demo.demoVAESettings.quick.vae);
  demo.encodeDemoLatents({ vae, dir: tmp, settings });
  const seen = new Set<string>();
  const r = await demo.trainDemoDiT({ dir: tmp, settings, minutes: 0.05, onStep: (s) => seen.add(`${s.samples}x${s.tokens}`) });
  expect(r.model).not.toBeNull();
  // quick patches 1x2x2 on a 2x8x8 latent grid: 32 tokens a clip, 16 an image: batches of 2 clips or 4 images (64 tokens)
  expect([...seen].sort()).toEqual(['2x64', '4x64']);
  const { dit, info } = demo.loadDemoDiT(r.model!);
  expect(info.imageFirst).toBe(true);
  dit.dispose();
  vae.dispose();
}, 120000);

test('sampleVideos of an image-first model starts from the sampled image; without it the first frame differs', () => {
  ts.manualSeed(1);
  const vae = new ts.VideoVAE(demo.demoVAESettings.quick.vae);
  const dit = demo.createDemoDiT(settings, vae.config.latentChannels);
  dit.eval();
  const info = { scalingFactor: 0.8, flow: settings.flow, latentChannels: vae.config.latentChannels, imageFirst: true };
  const prompts = ['the digit 7 moves right', 'the digit 2 moves up'];
  const o = { vae, dit, prompts, frames: 5, height: 32, width: 32, steps: 2, cfgScale: 3, seed: 11 };
  const video = demo.sampleVideos({ ...o, info }); // [2, 1, 5, 32, 32]
  const flow = new ts.RectifiedFlow({ timestepSampling: info.flow.timestepSampling, shift: info.flow.shift });
  const grid = vae.latentShape([2, 1, 5, 32, 32]);
  const image = ts.sample({ dit, diffusion: flow, prompts, latentGrid: [1, grid[3], grid[4]], steps: 2, cfgScale: 3, seed: 11 }); // [2, C, 1, h, w]
  const decoded = ts.noGrad(() => vae.decode(image.div(info.scalingFactor)).add(1).mul(0.5).clamp(0, 1)); // [2, 1, 1, 32, 32]
  expect(maxDiff(video.slice(2, 0, 1).contiguous(), decoded)).toBeLessThan(1e-5);
  const plain = demo.sampleVideos({ ...o, info: { ...info, imageFirst: false } });
  expect(maxDiff(plain.slice(2, 0, 1).contiguous(), decoded)).toBeGreaterThan(1e-2);
  [video, image, decoded, plain, dit, vae].forEach((x) => x.dispose());
});
