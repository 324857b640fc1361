// runDemo on the quick settings with a few seconds of budget: the plan and its scaling,
// an interrupt mid-VAE (checkpoint, stage not recorded), the rerun resuming it and
// finishing every stage with its files, a third run skipping all, and a mode clash.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import * as demo from '../../lib/demo';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-demo-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(() => ts.setNumThreads(1));

const silent = { log: () => {}, progress: () => ({ update: () => {}, stop: () => {} }) };

test('planDemo: 20 + 60 minutes by default, --budget scales both, bad budgets refused', () => {
  const full = demo.planDemo();
  expect([full.mode, full.vaeMinutes, full.ditMinutes]).toEqual(['full', 20, 60]);
  expect(full.totalMinutes).toBeGreaterThan(80);
  const half = demo.planDemo({ budget: 40 });
  expect([half.vaeMinutes, half.ditMinutes]).toEqual([10, 30]);
  const quick = demo.planDemo({ quick: true });
  expect(quick.mode).toBe('quick');
  expect(quick.totalMinutes).toBeLessThan(3);
  expect(demo.planDemo({ quick: true, budget: 9 }).ditMinutes).toBeCloseTo(9 * (quick.ditMinutes / (quick.vaeMinutes + quick.ditMinutes)));
  expect(() => demo.planDemo({ budget: -1 })).toThrow(/planDemo: expected budget > 0 minutes, got -1/);
  expect(demo.describePlan(full, ['data', 'vae']).join('\n')).toMatch(/1\. data: .*\(done\)\n {2}2\. VAE: train 20 min.*\(done\)\n {2}3\. latents: encode the training clips\n/);
});

test('runDemo: interrupted in the VAE, resumed to the end with every file, then skipped; another mode refused', async () => {
  const out = path.join(tmp, 'out');
  const files = demo.demoFiles(out);
  const ac = new AbortController();
  let vaeSteps = 0;
  const lines: string[] = [];
  // poll() is called at each stage start and every step: "Ctrl-C" at about the 8th VAE step.
  // The budget (0.5 min: about 8 s for the VAE after its probe) leaves room for 8 steps
  // on a loaded machine; at 0.1 min the stage could end on its deadline first.
  const first = await demo.runDemo({ out, quick: true, budget: 0.5, signal: ac.signal, poll: () => vaeSteps++ === 8 && ac.abort(), ...silent });
  expect(first.stopped).toBe('aborted');
  expect(first.stage).toBe('vae');
  expect(first.checkpoint).toMatch(/vae\/checkpoint\/step-\d+$/);
  let state = JSON.parse(fs.readFileSync(files.state, 'utf8')) as demo.DemoState;
  expect(Object.keys(state.stages)).toEqual(['data']);
  expect(fs.existsSync(files.data)).toBe(true);
  const stoppedAt = JSON.parse(fs.readFileSync(path.join(out, 'vae', 'checkpoint', 'latest'), 'utf8')).step;

  const second = await demo.runDemo({ out, quick: true, budget: 0.5, ...silent, log: (l) => lines.push(l) });
  expect(second.stopped).toBe('done');
  expect(lines).toContain('resuming after: data');
  expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^VAE: resuming at step ${stoppedAt} of the \\d+ planned$`)));
  state = JSON.parse(fs.readFileSync(files.state, 'utf8'));
  expect(Object.keys(state.stages)).toEqual([...demo.DEMO_STAGES]);
  for (const f of [files.vae, files.dit, files.samples, files.grid, files.eval, files.metrics, files.report]) expect([f, fs.existsSync(f)]).toEqual([f, true]);
  const metrics = JSON.parse(fs.readFileSync(files.metrics, 'utf8')) as demo.DemoMetrics;
  expect(metrics.mode).toBe('quick');
  expect(metrics.vae!.resumedFrom).toBe(stoppedAt);
  expect(metrics.eval!.samples).toBe(demo.HELD_OUT_PROMPTS.length);
  expect((metrics.dit as { steps: number }).steps).toBeGreaterThan(0);
  expect(metrics.machine.cpu.threads).toBe(1);
  const html = fs.readFileSync(files.report, 'utf8');
  expect(html.match(/<img src="data:image\/gif;base64,/g)).toHaveLength(2);
  expect(html.match(/<path d="M/g)!.length).toBe(4); // raw + smoothed, VAE and DiT
  // The shipped-model layout: sample loads what the demo wrote.
  const m = demo.loadDemoModels(out);
  const v = demo.sampleVideos({ ...m, prompts: ['the digit 7 moves right'], frames: 5, height: 32, width: 32, steps: 2 });
  expect(v.shape).toEqual([1, 1, 5, 32, 32]);
  [v, m.vae, m.dit].forEach((x) => x.dispose());

  const third: string[] = [];
  const again = await demo.runDemo({ out, quick: true, ...silent, log: (l) => third.push(l) });
  expect(again.stopped).toBe('done');
  expect(third[third.length - 1]).toMatch(/^all stages are complete; results in .*out \(remove it to run again\)$/);
  await expect(demo.runDemo({ out, ...silent })).rejects.toThrow(/out holds a quick demo run with seed 0; use another --out or remove it to start a full run with seed 0/);
}, 300000);

test('encodeLatentsUntil stops after the shard in progress when asked, leaving no index; the next run completes', () => {
  const dir = path.join(tmp, 'enc');
  const settings = { ...demo.demoDiTSettings.quick, trainClips: 300, frames: 5, size: 32 };
  ts.manualSeed(0);
  const vae = new ts.VideoVAE(demo.demoVAESettings.quick.vae);
  const seen: number[] = [];
  const stopped = demo.encodeLatentsUntil({ vae, dir, settings, onProgress: (d) => seen.push(d), stop: () => true });
  expect(stopped).toBeNull();
  expect(seen).toEqual([256]); // one shard of 256, then stopped
  expect(fs.existsSync(path.join(dir, 'latents', 'index.json'))).toBe(false);
  const index = demo.encodeLatentsUntil({ vae, dir, settings, stop: () => false });
  expect(index!.count).toBe(300);
  expect(fs.existsSync(path.join(dir, 'latents', 'index.json'))).toBe(true);
  vae.dispose();
});
