// Reruns and step counts through the CLI: --steps N gives the same model for a seed
// (byte-identical weights), a rerun on a finished folder extends it with a larger budget
// and otherwise says it is done (never quietly does nothing), a checkpoint of other
// settings is refused naming them, and the summaries count the whole run.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { manualSeed } from '../../lib/creation';
import { demoVAESettings } from '../../lib/demo/vae_stage';
import { VideoVAE } from '../../lib/models/vae';
import { runCli } from './cli_child';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cli-runs-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const at = (...p: string[]): string => path.join(tmp, ...p);
const read = (f: string): Buffer => fs.readFileSync(f);
const json = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

test('train-vae --steps N: the same seed and N give byte-identical weights; --steps and --minutes are exclusive', () => {
  for (const d of ['a', 'b']) expect(runCli(['train-vae', '--quick', '--steps', '15', '--seed', '3', '--out', at('vae-steps', d)]).status).toBe(0);
  const [a, b] = ['a', 'b'].map((d) => at('vae-steps', d));
  expect(read(path.join(b, 'vae.safetensors')).equals(read(path.join(a, 'vae.safetensors')))).toBe(true);
  expect(json(path.join(a, 'metrics.json'))).toMatchObject({ steps: 15, minutes: null, resumedFrom: 0 });
  // Another seed, another model.
  expect(runCli(['train-vae', '--quick', '--steps', '15', '--seed', '4', '--out', at('vae-steps', 'c')]).status).toBe(0);
  expect(read(at('vae-steps', 'c', 'vae.safetensors')).equals(read(path.join(a, 'vae.safetensors')))).toBe(false);
  const r = runCli(['train-vae', '--quick', '--steps', '15', '--minutes', '1', '--out', at('vae-steps', 'd')]);
  expect(r.status).toBe(1);
  expect(r.stderr).toBe('tessera: --minutes 1 and --steps 15 are exclusive: train for a time budget or for a number of steps\n');
}, 120000);

test('train-dit --steps N: the same seed and N give byte-identical weights', () => {
  for (const d of ['a', 'b']) {
    fs.mkdirSync(at('dit-steps', d), { recursive: true });
    manualSeed(0);
    const vae = new VideoVAE(demoVAESettings.quick.vae);
    vae.save(at('dit-steps', d, 'vae.safetensors'));
    vae.dispose();
    const r = runCli(['train-dit', '--quick', '--steps', '30', '--seed', '5', '--out', at('dit-steps', d)]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^trained 30 steps in \d+ s; wrote /m);
  }
  expect(read(at('dit-steps', 'b', 'dit.safetensors')).equals(read(at('dit-steps', 'a', 'dit.safetensors')))).toBe(true);
}, 120000);

test('train-vae on a finished folder: a larger --minutes extends the run, the same one says it is done, another model is refused', () => {
  const dir = at('vae-rerun');
  const first = runCli(['train-vae', '--quick', '--minutes', '0.1', '--out', dir]);
  expect(first.status).toBe(0);
  const m1 = json(path.join(dir, 'metrics.json'));
  const weights = read(path.join(dir, 'vae.safetensors'));

  // The same budget: done, nothing trained, nothing written, and it says so.
  const same = runCli(['train-vae', '--quick', '--minutes', '0.1', '--out', dir]);
  expect(same.status).toBe(0);
  expect(same.stdout).toBe(`${dir} holds a finished run: ${m1.steps} steps in ${m1.trainSeconds.toFixed(0)} s (a 0.1 min budget), held-out PSNR ${m1.psnr.toFixed(2)} dB; nothing to train: a larger --minutes extends it, --fresh starts over\n`);
  expect(read(path.join(dir, 'vae.safetensors')).equals(weights)).toBe(true);
  // Another --eval: evaluated again, nothing trained.
  const evalAgain = runCli(['train-vae', '--quick', '--minutes', '0.1', '--eval', '4', '--out', dir]);
  expect(evalAgain.status).toBe(0);
  expect(evalAgain.stdout).toMatch(new RegExp(`VAE: the run is finished \\(${m1.steps} steps\\); evaluating 4 held-out clips \\(it had 8\\)`));
  expect(json(path.join(dir, 'metrics.json'))).toMatchObject({ steps: m1.steps, heldOutClips: 4, trainSeconds: m1.trainSeconds });

  // A larger budget: trained on from the checkpoint, and the summary counts the whole run.
  const more = runCli(['train-vae', '--quick', '--minutes', '0.2', '--out', dir]);
  expect(more.status).toBe(0);
  expect(more.stdout).toMatch(new RegExp(`VAE: extending the finished run of 0.1 min \\(${m1.steps} steps\\) to 0.2 min: \\d+ more steps`));
  const m2 = json(path.join(dir, 'metrics.json'));
  expect(m2.resumedFrom).toBe(m1.steps);
  expect(m2.steps).toBeGreaterThan(m1.steps);
  expect(m2.trainSeconds).toBeGreaterThan(m1.trainSeconds);
  expect(more.stdout).toMatch(new RegExp(`VAE: trained ${m2.steps} steps in \\d+ s \\(this run: ${m2.steps - m1.steps} steps in \\d+ s, from step ${m1.steps}\\)`));

  // By steps from here: more steps extend it, as many as it has are done.
  const steps = runCli(['train-vae', '--quick', '--steps', String(m2.steps + 5), '--out', dir]);
  expect(steps.status).toBe(0);
  expect(json(path.join(dir, 'metrics.json')).steps).toBe(m2.steps + 5);
  expect(runCli(['train-vae', '--quick', '--steps', String(m2.steps + 5), '--out', dir]).stdout).toMatch(/holds a finished run: .* a larger --steps extends it/);

  // The full VAE on this --quick run: refused, naming what differs.
  const full = runCli(['train-vae', '--minutes', '20', '--out', dir]);
  expect(full.status).toBe(1);
  expect(full.stderr).toMatch(new RegExp(`^tessera: --out ${dir} holds a --quick VAE run \\(step ${m2.steps + 5}\\); this run asks for a full VAE: baseChannels 8 \\(checkpoint\\) vs 16, .*; pass --fresh to replace it, or another --out\\n$`));
}, 180000);

test('train-dit reruns: more steps resume with an honest summary, as many are done, one latents line, bar totals never below the step', () => {
  const out = at('dit-rerun');
  fs.mkdirSync(out);
  manualSeed(0);
  const vae = new VideoVAE(demoVAESettings.quick.vae);
  vae.save(path.join(out, 'vae.safetensors'));
  vae.dispose();
  const a = runCli(['train-dit', '--quick', '--steps', '40', '--out', out]);
  expect(a.status).toBe(0);
  expect(a.stderr.match(/^latents \d+\/\d+/gm)).toEqual(['latents 16/16']); // once, not twice
  const t1 = Number(/trained 40 steps in (\d+) s/.exec(a.stdout)![1]);

  const b = runCli(['train-dit', '--quick', '--steps', '90', '--out', out]);
  expect(b.status).toBe(0);
  expect(b.stdout).toMatch(/DiT: resuming at step 40 of 90/);
  const m = /trained 90 steps in (\d+) s \(this run: 50 steps in (\d+) s, from step 40\)/.exec(b.stdout);
  expect(m).not.toBeNull();
  expect(Number(m![1])).toBeGreaterThanOrEqual(t1 + Number(m![2]) - 1); // the whole run's seconds (rounded)

  const c = runCli(['train-dit', '--quick', '--steps', '90', '--out', out]);
  expect(c.status).toBe(0);
  expect(c.stdout).toMatch(new RegExp(`${out} holds a finished DiT run: 90 steps in \\d+ s; nothing to train`));

  // By time: the bar's total follows the budget (never a step past its total).
  fs.mkdirSync(at('dit-time'), { recursive: true });
  fs.copyFileSync(path.join(out, 'vae.safetensors'), at('dit-time', 'vae.safetensors'));
  const e = runCli(['train-dit', '--quick', '--minutes', '0.15', '--out', at('dit-time')]);
  expect(e.status).toBe(0);
  const bars = [...e.stderr.matchAll(/^DiT (\d+)\/(\d+) /gm)].map((x) => [Number(x[1]), Number(x[2])]);
  expect(bars.length).toBeGreaterThanOrEqual(2);
  for (const [step, total] of bars) expect(step).toBeLessThanOrEqual(total);
  const [lastStep, lastTotal] = bars[bars.length - 1];
  expect(lastTotal).toBe(lastStep); // the end: the budget's steps are the steps done
  const done = runCli(['train-dit', '--quick', '--minutes', '0.15', '--out', at('dit-time')]);
  expect(done.stdout).toMatch(/holds a finished DiT run: \d+ steps in \d+ s; nothing to train/);
}, 180000);
