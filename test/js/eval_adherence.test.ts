// lib/eval: the shipped digit classifier, the motion estimator and prompt adherence,
// checked on real Moving MNIST test videos (ground truth must score >= 95%) and on
// mismatched videos (must score near chance).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from '../../lib';
import { Tensor } from '../../lib';
import {
  DIGIT_CLASSIFIER_FILE, DigitClassifier, classifyVideoDigits, digitTestAccuracy, estimateDirection, estimateDirections, estimateMotionRaw,
  evaluatePromptAdherence, loadDigitClassifier, parsePrompt,
} from '../../lib/demo';

const N = 300; // real test videos
let classifier: DigitClassifier;
let data: ts.MovingMNIST;
let tmp: string;

let threads: number;
beforeAll(() => {
  // one thread: on this shared 2-core machine OpenMP's two threads mostly wait on each other
  threads = ts.getNumThreads();
  ts.setNumThreads(1);
  classifier = loadDigitClassifier();
  data = new ts.MovingMNIST({ split: 'test', length: N, seed: 3 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-eval-'));
});
afterAll(() => {
  ts.setNumThreads(threads);
  classifier.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Videos [B, 1, T, H, W] of samples. */
function videosOf(idx: number[]): Tensor {
  const s0 = data.get(0);
  const n = s0.frames * s0.height * s0.width;
  const flat = new Float32Array(idx.length * n);
  idx.forEach((i, k) => flat.set(data.get(i).video, k * n));
  return ts.tensor(flat, { shape: [idx.length, 1, s0.frames, s0.height, s0.width] });
}

describe('the shipped digit classifier', () => {
  test('loads in one call, is small, and scores its recorded >= 97% on the held-out digits', () => {
    expect(fs.statSync(DIGIT_CLASSIFIER_FILE).size).toBeLessThan(1 << 20);
    const report = JSON.parse(fs.readFileSync(DIGIT_CLASSIFIER_FILE.replace(/\.safetensors$/, '.json'), 'utf8'));
    const acc = digitTestAccuracy(classifier);
    expect(acc).toBeGreaterThanOrEqual(0.97);
    expect(acc).toBeCloseTo(report.testAccuracy, 6);
    expect(classifier.training).toBe(false);
  });

  test('clear errors', () => {
    expect(() => loadDigitClassifier(path.join(tmp, 'none.safetensors'))).toThrow(/does not exist.*train-digit-classifier/);
    expect(() => classifier.forward(ts.zeros([2, 32, 32]))).toThrow(/expected images \[N, 28, 28\]/);
    expect(() => classifyVideoDigits(classifier, ts.zeros([2, 3, 4, 32, 32]))).toThrow(/one channel/);
  });
});

describe('on real Moving MNIST test videos', () => {
  test('digits, directions and the adherence report are >= 95% right on the ground truth', async () => {
    // sampleFn hands out the ground-truth video of each caption, in order
    const queue = new Map<string, number[]>();
    const prompts: string[] = [];
    for (let i = 0; i < N; i++) {
      const s = data.get(i);
      prompts.push(s.caption);
      if (!queue.has(s.caption)) queue.set(s.caption, []);
      queue.get(s.caption)!.push(i);
    }
    const calls: number[] = [];
    const before = ts.memory().tensors;
    const report = await evaluatePromptAdherence({
      prompts, classifier, batchSize: 32,
      sampleFn: (captions) => (calls.push(captions.length), videosOf(captions.map((c) => queue.get(c)!.shift()!))),
    });
    expect(calls).toEqual([...Array(9).fill(32), 12]);
    expect(report.samples).toBe(N);
    expect(report.digitAccuracy).toBeGreaterThanOrEqual(0.95);
    expect(report.directionAccuracy).toBeGreaterThanOrEqual(0.95);
    expect(report.jointAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(report.chance).toEqual({ digit: 0.1, direction: 0.125 });
    expect(report.perPrompt.length).toBe(N);
    expect(report.perPrompt[0]).toMatchObject({ prompt: prompts[0], digit: data.get(0).meta.digits[0], direction: data.get(0).meta.directions[0] });
    expect(ts.memory().tensors).toBe(before);
    console.log(`ground truth: digit ${(100 * report.digitAccuracy).toFixed(1)}%, direction ${(100 * report.directionAccuracy).toFixed(1)}% on ${N} test videos`);
  });

  test('mismatched videos score near chance (the measure can fail)', async () => {
    // each caption gets the video of a sample with a different digit and direction
    const prompts: string[] = [], given: number[] = [];
    for (let i = 0; i < 60; i++) {
      const s = data.get(i);
      let j = (i + 1) % N;
      while (data.get(j).meta.digits[0] === s.meta.digits[0] || data.get(j).meta.directionIndices[0] === s.meta.directionIndices[0]) j = (j + 1) % N;
      prompts.push(s.caption), given.push(j);
    }
    let at = 0;
    const report = await evaluatePromptAdherence({
      prompts, classifier, samplesPerPrompt: 1, batchSize: 30, sampleFn: async (c) => videosOf(given.slice(at, (at += c.length))),
    });
    expect(report.digitAccuracy).toBeLessThan(0.1);
    expect(report.directionAccuracy).toBeLessThan(0.1);
  });

  test('samplesPerPrompt repeats prompts; per-prompt accuracies; the grid GIF (a row per prompt)', async () => {
    const s = data.get(5);
    const gif = path.join(tmp, 'grid.gif');
    const before = ts.memory().tensors;
    const report = await evaluatePromptAdherence({
      prompts: [s.caption, { digit: (s.meta.digits[0] + 1) % 10, direction: s.meta.directionIndices[0] }],
      samplesPerPrompt: 3, classifier, gifPath: gif,
      sampleFn: (captions) => {
        expect(captions.length).toBe(6);
        expect(captions[0]).toBe(captions[2]);
        return videosOf([5, 5, 5, 5, 5, 5]);
      },
    });
    expect(report.perPrompt.map((p) => [p.digitAccuracy, p.directionAccuracy, p.samples.length])).toEqual([[1, 1, 3], [0, 1, 3]]);
    expect(report.digitAccuracy).toBeCloseTo(0.5, 12);
    expect(ts.memory().tensors).toBe(before);
    const back = ts.loadVideo(gif); // [C, T, H, W] of the grid: 2 rows x 3 columns of 64x64 with 2 px padding
    expect(back.shape.slice(-3)).toEqual([17, 2 * 64 + 2, 3 * 64 + 4]);
    back.dispose();
  });
});

describe('motion estimator', () => {
  /** A 4x4 bright square moving (vx, vy) px per frame on a 40x40 canvas, bouncing off walls. */
  function square(vx: number, vy: number, T = 13, x0 = 18, y0 = 18): Float32Array {
    const H = 40, W = 40, v = new Float32Array(T * H * W);
    let x = x0, y = y0;
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) v[t * H * W + (Math.round(y) + r) * W + Math.round(x) + c] = 1;
      x += vx, y += vy;
      if (x < 0 || x > 36) (vx = -vx), (x = x < 0 ? -x : 72 - x);
      if (y < 0 || y > 36) (vy = -vy), (y = y < 0 ? -y : 72 - y);
    }
    return v;
  }

  test.each(ts.DIRECTIONS.map((d, k) => [d, k] as const))('%s', (_d, k) => {
    const a = (k * Math.PI) / 4;
    const vx = 2.5 * Math.cos(a), vy = -2.5 * Math.sin(a);
    const start = (v: number): number => (v > 0.1 ? 2 : v < -0.1 ? 34 : 18); // room for the whole path
    const e = estimateMotionRaw(square(vx, vy, 13, start(vx), start(vy)), 13, 40, 40);
    expect(e.directionIndex).toBe(k);
    expect(e.speed).toBeGreaterThan(2.2);
  });

  test('robust to a late bounce; tensors in, batches', () => {
    // moving right at 3 px/frame from x = 12: hits the wall after 8 of 12 moves, then comes back
    const v = square(3, 0, 13, 12, 18);
    expect(estimateMotionRaw(v, 13, 40, 40).direction).toBe('right');
    const t = ts.tensor(v, { shape: [13, 40, 40] });
    expect(estimateDirection(t).direction).toBe('right');
    expect(estimateDirection(t.reshape([1, 13, 40, 40])).direction).toBe('right');
    const both = ts.cat([t.reshape([1, 1, 13, 40, 40]), ts.tensor(square(0, 2), { shape: [1, 1, 13, 40, 40] })], 0);
    expect(estimateDirections(both).map((e) => e.direction)).toEqual(['right', 'down']);
    const empty = estimateMotionRaw(new Float32Array(3 * 40 * 40), 3, 40, 40);
    expect(empty.speed).toBe(0);
    expect(empty.centers).toEqual([null, null, null]);
  });
});

test('parsePrompt and bad arguments', async () => {
  expect(parsePrompt('the digit 3 moves up and to the left')).toEqual({ caption: 'the digit 3 moves up and to the left', digit: 3, direction: 'up and to the left', directionIndex: 3 });
  expect(parsePrompt({ digit: 7, direction: 6 }).caption).toBe('the digit 7 moves down');
  expect(() => parsePrompt('the digit 3 moves sideways')).toThrow(/expected a one-digit caption/);
  expect(() => parsePrompt({ digit: 12, direction: 'left' })).toThrow(/digit 0-9/);
  await expect(evaluatePromptAdherence({ prompts: ['the digit 1 moves up'], classifier, sampleFn: () => ts.zeros([1, 3, 2, 28, 28]) })).rejects.toThrow(/\[1, 1, T, H, W\]/);
  await expect(evaluatePromptAdherence({ prompts: [], classifier, sampleFn: () => ts.zeros([1]) })).rejects.toThrow(/non-empty array of prompts/);
});
