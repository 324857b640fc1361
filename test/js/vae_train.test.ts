// trainVAE / evaluateVAE: logs, exact resume, abort, NaN handling, bad data, EMA.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { VideoDataset, VideoVAE } from '../../lib';

const tiny = {
  inChannels: 1, latentChannels: 4, baseChannels: 4, channelMultipliers: [1, 2, 2], numResBlocks: 1, decoderResBlocks: 1,
  temporalCompression: 4, spatialCompression: 4, numGroups: 2,
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-vae-train-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const mm = ts.movingMnistDataset(new ts.MovingMNIST({ length: 64, frames: 9, size: 32 }));
const heldOut = ts.movingMnistDataset(new ts.MovingMNIST({ split: 'test', length: 4, frames: 9, size: 32 }));
const base = { data: mm, batchSize: 2, lr: 2e-3, warmup: 2, klWeight: 1e-6, crop: { frames: 5, size: 16 } };

function model(seed = 0): VideoVAE {
  ts.manualSeed(seed);
  return new VideoVAE(tiny);
}
function weights(m: VideoVAE): Float32Array[] {
  return m.parameters().map((p) => p.toFloat32Array());
}
function readLog(dir: string): Record<string, number | string>[] {
  return fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

describe('trainVAE', () => {
  test('logs every step, checkpoints, and resumes exactly where it stopped', async () => {
    const dirA = path.join(tmp, 'a'), dirB = path.join(tmp, 'b');
    const a = model();
    const ra = await ts.trainVAE({ ...base, model: a, steps: 6, checkpointDir: dirA, checkpointEvery: 3 });
    expect(ra).toMatchObject({ step: 6, stopReason: 'completed', resumedFrom: 0 });
    const log = readLog(dirA).filter((r) => r.event === undefined);
    expect(log.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const k of ['loss', 'l1', 'mse', 'kl', 'lr', 'gradNorm', 'samplesPerSec']) expect(Number.isFinite(log[0][k] as number)).toBe(true);
    expect(log[0].lr).toBeCloseTo(1e-3, 8); // warmup: (0 + 1) / 2 of lr
    expect(JSON.parse(fs.readFileSync(path.join(dirA, 'latest'), 'utf8')).step).toBe(6);

    // the same run in two pieces: 3 steps, then a fresh process-like restart to 6
    const b1 = model();
    const ac = new AbortController();
    const r1 = await ts.trainVAE({ ...base, model: b1, steps: 6, checkpointDir: dirB, checkpointEvery: 3, signal: ac.signal, onStep: (i) => i.step === 3 && ac.abort() });
    expect(r1).toMatchObject({ step: 3, stopReason: 'aborted' });
    const b2 = model(99); // different init: everything must come from the checkpoint
    const r2 = await ts.trainVAE({ ...base, model: b2, steps: 6, checkpointDir: dirB, checkpointEvery: 3 });
    expect(r2).toMatchObject({ step: 6, resumedFrom: 3, stopReason: 'completed' });
    const wa = weights(a), wb = weights(b2);
    wa.forEach((w, i) => expect(Buffer.from(wb[i].buffer).equals(Buffer.from(w.buffer))).toBe(true));
    expect(readLog(dirB).filter((r) => r.event === undefined).map((r) => r.loss)).toEqual(log.map((r) => r.loss));
    // a finished run resumed again does nothing and writes no new checkpoint
    const dirs = fs.readdirSync(dirB).filter((d) => d.startsWith('step-'));
    expect(await ts.trainVAE({ ...base, model: b2, steps: 6, checkpointDir: dirB })).toMatchObject({ step: 6, resumedFrom: 6, last: null });
    expect(fs.readdirSync(dirB).filter((d) => d.startsWith('step-'))).toEqual(dirs);
    for (const m of [a, b1, b2]) m.dispose();
  });

  test('an abort saves a checkpoint at the current step and stops', async () => {
    const dir = path.join(tmp, 'abort');
    const m = model();
    const ac = new AbortController();
    const r = await ts.trainVAE({ ...base, model: m, steps: 100, checkpointDir: dir, checkpointEvery: 50, onStep: (i) => i.step === 2 && ac.abort(), signal: ac.signal });
    expect(r).toMatchObject({ step: 2, stopReason: 'aborted' });
    expect(r.checkpoint).toMatch(/step-00000002$/);
    expect(readLog(dir).pop()).toEqual({ step: 2, event: 'aborted' });
    m.dispose();
  });

  test('a NaN loss stops with a message and keeps the last good checkpoint', async () => {
    const dir = path.join(tmp, 'nan');
    const m = model();
    const poison = (i: ts.VAEStepInfo): void => {
      if (i.step === 3) m.decoder.convOut.bias!.copy_(ts.tidy(() => ts.full([1], NaN)));
    };
    await expect(ts.trainVAE({ ...base, model: m, steps: 10, checkpointDir: dir, checkpointEvery: 2, onStep: poison })).rejects.toThrow(
      /loss became NaN at step 4 .*stopped without updating or saving.*last good checkpoint/,
    );
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'latest'), 'utf8')).step).toBe(2);
    expect(readLog(dir).pop()).toMatchObject({ step: 4, event: 'nan' });
    // the kept checkpoint is finite and resumable
    const fresh = model(5);
    const r = await ts.trainVAE({ ...base, model: fresh, steps: 3, checkpointDir: dir });
    expect(r).toMatchObject({ resumedFrom: 2, step: 3 });
    expect(Number.isFinite(r.last!.loss)).toBe(true);
    m.dispose();
    fresh.dispose();
  });

  test('bad data: NaN in a batch, wrong channel count, bad crops, bad options', async () => {
    const m = model();
    const nanData: VideoDataset = {
      length: 4, shape: [1, 5, 16, 16],
      get: (i) => {
        const v = new Float32Array(5 * 256).fill(0.5);
        if (i === 3) v[2 * 256 + 17] = NaN;
        return { video: v };
      },
    };
    const run = (o: object): Promise<unknown> => ts.trainVAE({ ...base, model: m, steps: 20, batchSize: 4, crop: undefined, ...o });
    await expect(run({ data: nanData })).rejects.toThrow(/dataset sample 3 holds NaN at \[c=0, t=2, y=1, x=1\]/);
    const rgb: VideoDataset = { length: 2, shape: [3, 5, 16, 16], get: () => ({ video: new Float32Array(3 * 5 * 256) }) };
    await expect(run({ data: rgb })).rejects.toThrow(/the dataset has 3 channels but the model expects 1/);
    await expect(run({ crop: { frames: 4 } })).rejects.toThrow(/crop frames to be 1 \+ k\*4 .*\(1, 5, 9\), got 4/);
    await expect(run({ crop: { size: 10 } })).rejects.toThrow(/crop height to be a multiple of 4/);
    await expect(run({ steps: 0 })).rejects.toThrow(/steps to be a positive integer/);
    await expect(run({ data: { length: 0 } })).rejects.toThrow(/expected a dataset/);
    const short: VideoDataset = { length: 1, shape: [1, 5, 16, 16], get: () => ({ video: new Float32Array(10) }) };
    await expect(run({ data: short })).rejects.toThrow(/sample \d has 10 values, expected 1280/);
    m.dispose();
  });

  test('training lowers the loss; EMA and evaluation work', async () => {
    const m = model(1);
    const before = ts.evaluateVAE(m, heldOut, { samples: 4 });
    const losses: number[] = [];
    // no output-bias init: every gain below comes from the gradient steps
    const r = await ts.trainVAE({ ...base, model: m, steps: 20, batchSize: 4, lr: 3e-3, ema: 0.9, initOutputBias: false, onStep: (i) => losses.push(i.loss) });
    expect(r.ema).toBeInstanceOf(ts.optim.EMA);
    expect(losses.slice(-5).reduce((p, q) => p + q) / 5).toBeLessThan(0.7 * losses[0]);
    const after = ts.evaluateVAE(m, heldOut, { samples: 4 });
    expect(after.samples).toBe(4);
    expect(after.psnr).toBeGreaterThan(before.psnr + 1);
    expect(after.mse).toBeLessThan(before.mse);
    expect(after.ssim).toBeGreaterThan(-1);
    expect(after.ssim).toBeLessThanOrEqual(1);
    r.ema!.dispose();
    m.dispose();
  });
});
