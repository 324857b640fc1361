// Faults in each training loop, through the CLI: kill -9 after a time-based checkpoint
// (the rerun resumes from it, and what was lost is at most the interval and a step),
// --fresh killed before its first checkpoint (the previous run is left as it was), and a
// full disk during a save (`ulimit -f` in a child shell: the previous checkpoint stays
// the latest and loads).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { manualSeed } from '../../lib/creation';
import { demoVAESettings } from '../../lib/demo/vae_stage';
import { VideoVAE } from '../../lib/models/vae';
import { disposeCheckpoint, loadCheckpoint } from '../../lib/train/checkpoint';
import { CLI, latestDir, latestStep, runCli, sleep, snapshot, start, stepDirs, waitFor, waitUntil } from './cli_child';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cli-faults-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const at = (...p: string[]): string => path.join(tmp, ...p);

/** A quick VAE in <dir>/vae.safetensors, for the DiT runs. */
function quickVAE(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  manualSeed(0);
  const vae = new VideoVAE(demoVAESettings.quick.vae);
  vae.save(path.join(dir, 'vae.safetensors'));
  vae.dispose();
}

/** Seconds between the latest checkpoint's write and the last write of log.jsonl (a step logged after it): the training a kill lost. */
function lostSeconds(ckDir: string): number {
  const saved = fs.statSync(path.join(latestDir(ckDir), 'checkpoint.json')).mtimeMs;
  return Math.max(0, fs.statSync(path.join(ckDir, 'log.jsonl')).mtimeMs - saved) / 1000;
}

test('train-vae (full VAE, checkpoints every 500 steps): kill -9 after a time-based checkpoint; the rerun resumes from it', async () => {
  const dir = at('vae-kill'), ckDir = path.join(dir, 'checkpoint');
  const interval = 0.05; // minutes: 3 s, a few steps of the full VAE
  const args = ['train-vae', '--steps', '2000', '--checkpoint-minutes', String(interval), '--out', dir];
  const a = start(args);
  const first = await waitUntil(() => latestStep(ckDir), (s) => s > 0, 90000, 'a first checkpoint');
  expect(first).toBeLessThan(500); // by time: the step-based one comes at 500
  await waitUntil(() => latestStep(ckDir), (s) => s > first, 60000, 'a second checkpoint');
  await sleep(2000); // between two checkpoints
  a.child.kill('SIGKILL');
  expect(await a.exited).toBe('SIGKILL');
  const step = latestStep(ckDir);
  expect(step % 500).not.toBe(0);
  expect(lostSeconds(ckDir)).toBeLessThanOrEqual(interval * 60 + 3); // the interval, a step (about 0.5 s here) and slack for a loaded machine

  const b = start(args);
  await waitFor(b, new RegExp(`VAE: resuming at step ${step} of 2000`));
  await waitFor(b, new RegExp(`VAE ${step + 1}/2000`));
  b.child.kill('SIGKILL');
  await b.exited;
}, 180000);

test('train-dit (quick DiT, checkpoints every 200 steps): kill -9 after a time-based checkpoint; the rerun resumes from it', async () => {
  const out = at('dit-kill'), ckDir = path.join(out, 'dit', 'checkpoint');
  quickVAE(out);
  const interval = 0.01; // minutes: 0.6 s, fewer than 200 steps of the quick DiT
  const args = ['train-dit', '--quick', '--steps', '100000', '--checkpoint-minutes', String(interval), '--out', out];
  const a = start(args);
  const first = await waitUntil(() => latestStep(ckDir), (s) => s > 0, 90000, 'a first checkpoint');
  expect(first).toBeLessThan(200); // by time: the step-based one comes at 200
  await waitUntil(() => latestStep(ckDir), (s) => s > first, 30000, 'a second checkpoint');
  await sleep(400); // between two checkpoints
  a.child.kill('SIGKILL');
  expect(await a.exited).toBe('SIGKILL');
  const step = latestStep(ckDir);
  expect(lostSeconds(ckDir)).toBeLessThanOrEqual(interval * 60 + 1.5);

  const b = start(args);
  await waitFor(b, new RegExp(`DiT: resuming at step ${step} of 100000`));
  await waitFor(b, /DiT \d+\/100000/);
  b.child.kill('SIGKILL');
  await b.exited;
}, 180000);

test('train-vae --fresh killed before its first checkpoint leaves the previous run as it was; after it, the previous run is gone', async () => {
  const dir = at('vae-fresh'), ckDir = path.join(dir, 'checkpoint');
  const done = runCli(['train-vae', '--quick', '--steps', '12', '--out', dir]);
  expect(done.status).toBe(0);
  const before = snapshot(dir);
  expect(Object.keys(before)).toEqual(expect.arrayContaining(['metrics.json', 'vae.safetensors', 'recon.gif', 'plan.json', 'checkpoint/latest', 'checkpoint/log.jsonl']));

  // Killed as it starts (its first checkpoint would come at step 10).
  const a = start(['train-vae', '--quick', '--steps', '40', '--fresh', '--out', dir]);
  await waitFor(a, /VAE: \d+ parameters/);
  a.child.kill('SIGKILL');
  await a.exited;
  expect(latestStep(ckDir)).toBe(12);
  expect(snapshot(dir)).toEqual(before); // every file, byte for byte
  const again = runCli(['train-vae', '--quick', '--steps', '12', '--out', dir]);
  expect(again.status).toBe(0);
  expect(again.stdout).toMatch(/holds a finished run: 12 steps in \d+ s, held-out PSNR [\d.]+ dB; nothing to train/);

  // Killed after its first checkpoint: the new run is the one in dir now, and a rerun resumes it.
  const b = start(['train-vae', '--quick', '--steps', '400', '--fresh', '--out', dir]);
  await waitUntil(() => stepDirs(ckDir).steps, (s) => !s.some((n) => /^step-0*12$/.test(n)) && latestStep(ckDir) >= 10, 60000, 'the new run\'s first checkpoint');
  b.child.kill('SIGKILL');
  await b.exited;
  const step = latestStep(ckDir);
  for (const f of ['metrics.json', 'vae.safetensors', 'recon.gif']) expect([f, fs.existsSync(path.join(dir, f))]).toEqual([f, false]);
  expect(JSON.parse(fs.readFileSync(path.join(dir, 'plan.json'), 'utf8')).steps).toBe(400);
  const log = fs.readFileSync(path.join(ckDir, 'log.jsonl'), 'utf8').split('\n').filter((l) => l.startsWith('{'));
  expect(JSON.parse(log[0]).step).toBe(1); // this run's log alone
  expect(log.length).toBeGreaterThanOrEqual(step);
  const c = start(['train-vae', '--quick', '--steps', '400', '--out', dir]);
  await waitFor(c, new RegExp(`VAE: resuming at step ${step} of 400`));
  c.child.kill('SIGKILL');
  await c.exited;
}, 180000);

/** Runs the CLI in a shell whose files may grow to `kb` KiB (ulimit -f): a disk that fills up. */
function runWithFileLimit(kb: number, args: string[]): { status: number | null; stderr: string; stdout: string } {
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const r = spawnSync('bash', ['-c', `ulimit -f ${kb}; exec ${[process.execPath, CLI, ...args, '--threads', '1'].map(quote).join(' ')}`], { encoding: 'utf8', timeout: 300000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

/** The latest checkpoint loads, at `step`, and no save left anything behind. */
function expectIntact(ckDir: string, step: number): void {
  expect(latestStep(ckDir)).toBe(step);
  expect(stepDirs(ckDir).hidden).toEqual([]);
  const ck = loadCheckpoint(ckDir);
  expect(ck.step).toBe(step);
  disposeCheckpoint(ck);
}

test('train-vae: a full disk during a save leaves the previous checkpoint the latest, and loadable', () => {
  const dir = at('vae-full'), ckDir = path.join(dir, 'checkpoint');
  expect(runCli(['train-vae', '--quick', '--steps', '10', '--out', dir]).status).toBe(0);
  const before = snapshot(ckDir);
  // The quick VAE's model.safetensors is 444 KB, its optimizer.safetensors 885 KB: the save at step 20 stops in the optimizer's file.
  const r = runWithFileLimit(600, ['train-vae', '--quick', '--steps', '40', '--out', dir]);
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/VAE: resuming at step 10 of 40/);
  expect(r.stderr).toMatch(/\ntessera: could not save a checkpoint in .*checkpoint: EFBIG: file too large \(the disk is full or a file size limit was reached; the previous checkpoint is kept\)\n$/);
  expectIntact(ckDir, 10);
  for (const f of Object.keys(before).filter((f) => f.startsWith('step-'))) expect(snapshot(ckDir)[f]).toBe(before[f]);
  // With room again, the run goes on from it.
  const again = runCli(['train-vae', '--quick', '--steps', '40', '--out', dir]);
  expect(again.status).toBe(0);
  expect(again.stdout).toMatch(/trained 40 steps in \d+ s \(this run: 30 steps in \d+ s, from step 10\)/);
}, 180000);

test('train-dit: a full disk during a save leaves the previous checkpoint the latest, and loadable', () => {
  const out = at('dit-full'), ckDir = path.join(out, 'dit', 'checkpoint');
  quickVAE(out);
  expect(runCli(['train-dit', '--quick', '--steps', '20', '--out', out]).status).toBe(0);
  // The quick DiT's model.safetensors is 165 KB, its optimizer.safetensors 328 KB.
  const r = runWithFileLimit(256, ['train-dit', '--quick', '--steps', '400', '--checkpoint-minutes', '0.005', '--out', out]);
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/DiT: resuming at step 20 of 400/);
  expect(r.stderr).toMatch(/\ntessera: could not save a checkpoint in .*checkpoint: EFBIG: file too large \(the disk is full or a file size limit was reached; the previous checkpoint is kept\)\n$/);
  expectIntact(ckDir, 20);
}, 180000);
