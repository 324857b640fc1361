// The demo's VAE stage on its quick settings: files, abort with a checkpoint, resume of
// the same plan, a complete stage skipped on rerun; VideoVAE.save/load round trip.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
// (the modules themselves rather than lib/index, which also loads the DiT stage)
import { manualSeed, randn } from '../../lib/creation';
import { demoVAEFiles, demoVAESettings, trainDemoVAE } from '../../lib/demo/vae_stage';
import { saveSafetensors } from '../../lib/io/safetensors';
import { loadVideo } from '../../lib/io/video';
import { VideoVAE } from '../../lib/models/vae';
import { setNumThreads } from '../../lib/runtime';
import { tidy } from '../../lib/tensor';
import { noGrad } from '../../lib/autograd/node';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-demo-vae-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(() => setNumThreads(1));

test('VideoVAE.save/load: same config, same outputs; a file without the config is refused', () => {
  manualSeed(1);
  const a = new VideoVAE(demoVAESettings.quick.vae);
  const file = path.join(tmp, 'vae.safetensors');
  a.save(file);
  const b = VideoVAE.load(file);
  expect(b.config).toEqual(a.config);
  tidy(() =>
    noGrad(() => {
      const x = randn([1, 1, 5, 16, 16]);
      const ya = a.decode(a.encode(x).mode()).toFloat32Array(), yb = b.decode(b.encode(x).mode()).toFloat32Array();
      expect(Array.from(yb)).toEqual(Array.from(ya));
    }),
  );
  const bare = path.join(tmp, 'bare.safetensors');
  saveSafetensors(bare, a.stateDict());
  expect(() => VideoVAE.load(bare)).toThrow(/VideoVAE.load: .*bare.safetensors has no 'tessera.vae.config' metadata/);
  a.dispose();
  b.dispose();
});

test('trainDemoVAE: aborted with a checkpoint, resumed to the same plan, then skipped as complete', async () => {
  const dir = path.join(tmp, 'vae');
  const files = demoVAEFiles(dir);
  const settings = { ...demoVAESettings.quick, evalClips: 4 };
  const ac = new AbortController();
  const seen: number[] = [];
  // A budget that outlasts the probe and five steps on a slow machine (0.05 min did not on
  // an AVX2-only 2-core machine: the budget ran out first and the stage completed).
  const first = await trainDemoVAE({
    dir, settings, minutes: 0.2, signal: ac.signal,
    onStep: (i) => {
      seen.push(i.step);
      if (i.step === 5) ac.abort();
    },
  });
  expect(first.stopped).toBe('aborted');
  expect(first.metrics).toBeNull();
  expect(first.checkpoint).toMatch(/step-0*5$/);
  expect(seen).toEqual([1, 2, 3, 4, 5]);
  expect(fs.existsSync(files.metrics)).toBe(false);
  const plan = JSON.parse(fs.readFileSync(files.plan, 'utf8'));
  expect(plan.steps).toBeGreaterThanOrEqual(20);
  first.vae.dispose();

  const again: number[] = [];
  const second = await trainDemoVAE({ dir, settings, minutes: 0.2, onStep: (i) => again.push(i.step) });
  expect(second.stopped).toBe('completed');
  expect(again[0]).toBe(6); // resumed after the checkpoint, not from scratch
  expect(again[again.length - 1]).toBe(plan.steps); // the plan of the first run, unchanged
  const m = second.metrics!;
  expect(m.steps).toBe(plan.steps);
  expect(m.resumedFrom).toBe(5);
  expect(m.heldOutClips).toBe(4);
  expect(m.psnr).toBeGreaterThan(5);
  expect(m.blackBaseline.psnr).toBeGreaterThan(5);
  expect(m.psnr).toBe(m.weights === 'ema' ? m.ema.psnr : m.raw.psnr);
  for (const f of [files.weights, files.recon, files.metrics, files.log]) expect(fs.existsSync(f)).toBe(true);
  const recon = loadVideo(files.recon, { color: 'gray' }); // 4 clips above their 4 reconstructions
  expect(recon.shape).toEqual([1, 17, 2 * 64 + 2, 4 * 64 + 3 * 2]);
  recon.dispose();

  // Complete: a rerun trains nothing and gives the saved weights and metrics.
  const steps: number[] = [];
  const third = await trainDemoVAE({ dir, settings, minutes: 0.05, onStep: (i) => steps.push(i.step) });
  expect(steps).toEqual([]);
  expect(third.metrics).toEqual(m);
  tidy(() => {
    const a = second.vae.stateDict(), b = third.vae.stateDict();
    for (const k of Object.keys(a)) expect(Array.from(b[k].toFloat32Array())).toEqual(Array.from(a[k].toFloat32Array()));
  });
  second.vae.dispose();
  third.vae.dispose();
  await expect(trainDemoVAE({ dir, settings, minutes: 0 })).rejects.toThrow(/trainDemoVAE: expected minutes > 0, got 0/);
});
