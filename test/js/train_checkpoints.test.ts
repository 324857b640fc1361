// The loops' checkpoint rules (trainVAE, trainDiT): a checkpoint by time as well as by
// steps, a resume refused when the checkpoint holds another model or run (naming what
// differs), and a run that starts over (resume: false) leaving the previous run's
// checkpoints and log until its own first checkpoint exists.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { CheckpointMismatchError, checkpointInfo } from '../../lib/train/checkpoint';
import { NonFiniteLossError } from '../../lib/train/vae';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-train-ck-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(() => ts.setNumThreads(1));

const vaeConfig = {
  inChannels: 1, latentChannels: 4, baseChannels: 8, channelMultipliers: [1, 1, 2], numResBlocks: 1, decoderResBlocks: 1,
  temporalCompression: 4, spatialCompression: 4, numGroups: 4,
};
const clips = ts.movingMnistDataset(new ts.MovingMNIST({ split: 'train', length: 4, frames: 5, size: 32, numDigits: 1, seed: 0 }));
const steps = (dir: string): number[] => fs.readdirSync(dir).filter((n) => n.startsWith('step-')).map((n) => Number(n.slice(5))).sort((a, b) => a - b);

function trainVAE(dir: string, o: Partial<ts.TrainVAEOptions> & { steps: number }): Promise<ts.TrainVAEResult> {
  ts.manualSeed(0);
  const model = new ts.VideoVAE(vaeConfig);
  return ts.trainVAE({ model, data: clips, batchSize: 2, lr: 1e-3, checkpointDir: dir, checkpointEvery: 1000, keepCheckpoints: 100, ...o }).finally(() => model.dispose());
}

test('trainVAE saves by time besides every checkpointEvery steps; checkpointMinutes is checked', async () => {
  const saved: number[] = [];
  const dir = path.join(tmp, 'vae-time');
  // Every step takes longer than 0.06 ms: a checkpoint after each one (none by steps: checkpointEvery 1000).
  await trainVAE(dir, { steps: 4, checkpointMinutes: 1e-6, onCheckpoint: (_, s) => saved.push(s) });
  expect(saved).toEqual([1, 2, 3, 4]);
  expect(steps(dir)).toEqual([1, 2, 3, 4]);
  const none: number[] = [];
  await trainVAE(path.join(tmp, 'vae-steps'), { steps: 4, checkpointMinutes: Infinity, onCheckpoint: (_, s) => none.push(s) });
  expect(none).toEqual([4]); // only the final one
  await expect(trainVAE(path.join(tmp, 'x'), { steps: 1, checkpointMinutes: 0 })).rejects.toThrow('trainVAE: expected checkpointMinutes > 0 (Infinity: by steps only), got 0');
});

test('trainVAE refuses to resume a checkpoint of another model or run, naming the differences', async () => {
  const dir = path.join(tmp, 'vae-other');
  await trainVAE(dir, { steps: 2 });
  ts.manualSeed(0);
  const wide = new ts.VideoVAE({ ...vaeConfig, baseChannels: 16 });
  const err = await ts.trainVAE({ model: wide, data: clips, steps: 4, batchSize: 4, lr: 1e-3, checkpointDir: dir }).catch((e) => e);
  wide.dispose();
  expect(err).toBeInstanceOf(CheckpointMismatchError);
  expect(err.message).toMatch(/^trainVAE: the checkpoint .*step-0*2 is of another model or run: vae.baseChannels 8 \(checkpoint\) vs 16, train.batchSize 2 \(checkpoint\) vs 4$/);
  // More steps of the same run resume (the plan may grow).
  const r = await trainVAE(dir, { steps: 4 });
  expect(r.resumedFrom).toBe(2);
  expect(r.step).toBe(4);
});

test('trainVAE resume: false keeps the previous run (checkpoints and log) until its own first checkpoint', async () => {
  const dir = path.join(tmp, 'vae-fresh');
  await trainVAE(dir, { steps: 3, checkpointMinutes: Infinity });
  const oldLog = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8');
  const during: { latest: number; log: string }[] = [];
  await trainVAE(dir, {
    steps: 2, resume: false, checkpointMinutes: Infinity,
    onStep: () => during.push({ latest: checkpointInfo(dir)!.step, log: fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8') }),
  });
  expect(during.map((d) => d.latest)).toEqual([3, 3]); // steps 1 and 2 of the new run: the old run still the latest
  for (const d of during) expect(d.log).toBe(oldLog);
  expect(steps(dir)).toEqual([2]); // then only the new run
  const log = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  expect(log.map((l) => l.step)).toEqual([1, 2, 2]); // its steps and its 'completed' event, none of the old run's
});

test('trainVAE: a NaN names the last good checkpoint, or says none was written yet (not "set checkpointDir" when it is set)', async () => {
  const dir = path.join(tmp, 'vae-nan');
  const e1 = await trainVAE(dir, { steps: 5, lr: 1e10 }).catch((e) => e);
  expect(e1).toBeInstanceOf(NonFiniteLossError);
  expect(e1.message).toMatch(/^trainVAE: the (loss|gradient norm) became \S+ at step \d+ .*; stopped without updating or saving\. /);
  expect(e1.message).toMatch(/No checkpoint was written yet\.$/);
  expect(e1.checkpoint).toBeNull();
  const e2 = await trainVAE(path.join(tmp, 'vae-nan-nodir'), { steps: 5, lr: 1e10, checkpointDir: undefined }).catch((e) => e);
  expect(e2.message).toMatch(/No checkpoint was written \(set checkpointDir to keep one\)\.$/);
});

const captions = ['the digit 1 moves left', 'the digit 7 moves up'];
const latents: ts.LatentDataset = { length: 4, get: (i) => ({ latent: ts.ones([2, 1, 4, 4]).mul(i % 2 ? 1 : -1), caption: captions[i % 2] }) };
function dit(hiddenSize = 32): ts.DiT {
  ts.manualSeed(0);
  return new ts.DiT({
    hiddenSize, depth: 1, numHeads: 2, patchSize: [1, 2, 2], inChannels: 2, learnSigma: false, condition: 'text',
    text: { tokenizer: ts.Tokenizer.fromCaptions(captions).state(), hiddenSize: 16, depth: 0, numHeads: 2 },
  });
}

test('trainDiT saves by time too, and refuses a checkpoint of another model or batch', async () => {
  const dir = path.join(tmp, 'dit');
  const a = dit();
  const r = await ts.trainDiT({ dit: a, diffusion: new ts.RectifiedFlow(), data: latents, steps: 3, batchSize: 2, ema: null, checkpointDir: dir, checkpointEvery: 1000, checkpointMinutes: 1e-6 });
  expect(r.steps).toBe(3);
  expect(steps(dir)).toEqual([1, 2, 3]);
  a.dispose();
  const b = dit(48);
  const err = await ts.trainDiT({ dit: b, diffusion: new ts.RectifiedFlow(), data: latents, steps: 5, batchSize: 4, ema: null, checkpointDir: dir }).catch((e) => e);
  b.dispose();
  expect(err).toBeInstanceOf(CheckpointMismatchError);
  expect(err.message).toMatch(/^trainDiT: the checkpoint .*step-0*3 is of another model or run: dit.hiddenSize 32 \(checkpoint\) vs 48, .*train.batchSize 2 \(checkpoint\) vs 4/);
  // With checkpoints by time, keepCheckpoints bounds the disk a long run takes.
  const c = dit();
  await ts.trainDiT({ dit: c, diffusion: new ts.RectifiedFlow(), data: latents, steps: 6, batchSize: 2, ema: null, checkpointDir: dir, checkpointMinutes: 1e-6, keepCheckpoints: 2 });
  c.dispose();
  expect(steps(dir)).toEqual([5, 6]);
});
