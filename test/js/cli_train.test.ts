// The long CLI commands in child processes on tiny runs: Ctrl-C (SIGINT) saves a
// checkpoint, says where, exits with 130, and a rerun resumes from it, in the VAE and the
// DiT stage and the whole demo; sample and eval with a tiny model write their files.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadVideo, manualSeed, VideoVAE } from '../../lib';
import { createDemoDiT, demoDiTSettings, demoVAESettings, loadDemoModels, saveDemoDiT, savePretrained } from '../../lib/demo';
import { CLI, latestStep, start, waitFor } from './cli_child';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cli-train-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('train-vae: Ctrl-C saves a checkpoint, says where, exits 130; the rerun resumes from it', async () => {
  const dir = path.join(tmp, 'vae');
  const a = start(['train-vae', '--quick', '--minutes', '1', '--out', dir]);
  await waitFor(a, /VAE [1-9]\d*\/\d+/);
  a.child.kill('SIGINT');
  expect(await a.exited).toBe(130);
  const m = a.err().match(/tessera: interrupted during VAE training; checkpoint saved in (.*step-0*(\d+)); rerun the same command to resume\n$/);
  expect(m).not.toBeNull();
  const step = Number(m![2]);
  expect(step).toBeGreaterThan(0);
  expect(latestStep(path.join(dir, 'checkpoint'))).toBe(step);
  expect(fs.existsSync(m![1])).toBe(true);

  const b = start(['train-vae', '--quick', '--minutes', '1', '--out', dir]);
  await waitFor(b, new RegExp(`VAE: resuming at step ${step} of the \\d+ planned`));
  await waitFor(b, /VAE \d+\/\d+/);
  b.child.kill('SIGINT');
  expect(await b.exited).toBe(130);
  expect(latestStep(path.join(dir, 'checkpoint'))).toBeGreaterThan(step);
});

test('demo: prints its plan and ETA first; Ctrl-C in the VAE stage exits 130 naming the checkpoint', async () => {
  const out = path.join(tmp, 'demo');
  const a = start(['demo', '--quick', '--out', out]);
  await waitFor(a, /VAE [1-9]\d*\/\d+/);
  a.child.kill('SIGINT');
  expect(await a.exited).toBe(130);
  expect(a.out()).toMatch(/^plan \(quick smoke run: tiny models and data, not quality\):\n {2}1\. data: [^\n]*\n(.*\n){5}about \d+ min in all from the start; ETA \d\d:\d\d if starting now\n/);
  expect(a.err()).toMatch(/tessera: interrupted during the vae stage; checkpoint saved in .*vae\/checkpoint\/step-0*[1-9]\d*; rerun the same command to resume\n$/);
  const state = JSON.parse(fs.readFileSync(path.join(out, 'state.json'), 'utf8'));
  expect(Object.keys(state.stages)).toEqual(['data']);
});

test('train-dit: Ctrl-C stops the DiT loop at the next step with a checkpoint, exit 130', async () => {
  const out = path.join(tmp, 'dit');
  fs.mkdirSync(out);
  manualSeed(0);
  const vae = new VideoVAE(demoVAESettings.quick.vae);
  vae.save(path.join(out, 'vae.safetensors'));
  vae.dispose();
  const a = start(['train-dit', '--quick', '--minutes', '1', '--out', out]);
  await waitFor(a, /DiT [1-9]\d*\/\d+/);
  const t0 = Date.now();
  a.child.kill('SIGINT');
  expect(await a.exited).toBe(130);
  expect(Date.now() - t0).toBeLessThan(20000);
  expect(a.err()).toMatch(/tessera: interrupted during DiT training; checkpoint saved in .*step-0*[1-9]\d*; rerun the same command to resume\n$/);
});

test('sample and eval with a tiny model write a GIF of the asked size and an adherence report', () => {
  const dir = path.join(tmp, 'model');
  fs.mkdirSync(dir);
  manualSeed(0);
  const vae = new VideoVAE(demoVAESettings.quick.vae);
  const dit = createDemoDiT(demoDiTSettings.quick, 4);
  vae.save(path.join(dir, 'vae.safetensors'));
  saveDemoDiT(path.join(dir, 'dit.safetensors'), dit, { scalingFactor: 1, flow: demoDiTSettings.quick.flow, latentChannels: 4 });
  vae.dispose();
  dit.dispose();

  const gif = path.join(tmp, 'seven.gif');
  const s = spawnSync(process.execPath, [CLI, 'sample', '--checkpoint', dir, '--prompt', 'the digit 7 moves right', '--frames', '9', '--size', '32x48', '--steps', '2', '--cfg', '4', '--out', gif, '--threads', '1'], { encoding: 'utf8' });
  expect(s.stderr).toMatch(/^(sampling [12]\/2 [\d.]+ it\/s ETA (\d+ s|\?)\n)+$/); // progress, and nothing else
  expect(s.stderr).toMatch(/sampling 2\/2 .*\n$/);
  expect(s.status).toBe(0);
  expect(s.stdout).toContain(`wrote ${gif}`);
  const v = loadVideo(gif, { color: 'gray' });
  expect(v.shape).toEqual([1, 9, 32, 48]);
  v.dispose();

  // The shipped-model bundle (8-bit rows) through TESSERA_PRETRAINED, without --checkpoint.
  const bundle = path.join(tmp, 'bundle');
  const m = loadDemoModels(dir);
  savePretrained(bundle, { ...m, metrics: { note: 'test' } });
  [m.vae, m.dit].forEach((x) => x.dispose());
  const gif2 = path.join(tmp, 'bundle.gif');
  const b = spawnSync(process.execPath, [CLI, 'sample', '--prompt', 'the digit 2 moves up', '--frames', '5', '--size', '32', '--steps', '2', '--out', gif2, '--threads', '1'], {
    encoding: 'utf8', env: { ...process.env, TESSERA_PRETRAINED: bundle },
  });
  expect(b.stderr).toMatch(/^(sampling [12]\/2 .*\n)+$/);
  expect(b.status).toBe(0);
  const v2 = loadVideo(gif2, { color: 'gray' });
  expect(v2.shape).toEqual([1, 5, 32, 32]);
  v2.dispose();

  const evalDir = path.join(tmp, 'eval');
  const e = spawnSync(process.execPath, [CLI, 'eval', '--checkpoint', dir, '--prompt', 'the digit 7 moves right', '--prompt', 'the digit 2 moves up', '--steps', '2', '--out', evalDir, '--threads', '1'], { encoding: 'utf8' });
  expect(e.stderr).toMatch(/^(eval [0-2]\/2 .*\n)+$/); // progress by samples
  expect(e.stderr).toMatch(/eval 2\/2 .*\n$/);
  expect(e.status).toBe(0);
  const report = JSON.parse(fs.readFileSync(path.join(evalDir, 'eval.json'), 'utf8'));
  expect(report.samples).toBe(2);
  expect(report.perPrompt.map((p: { prompt: string }) => p.prompt)).toEqual(['the digit 7 moves right', 'the digit 2 moves up']);
  expect(e.stdout).toMatch(/2 samples: digit \d+\.\d% \(chance 10%\), direction \d+\.\d% \(chance 12.5%\)/);
  expect(fs.existsSync(path.join(evalDir, 'samples.gif'))).toBe(true);
});
