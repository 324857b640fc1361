// An MNIST digit classifier trained with tessera itself (a small CNN of Conv3d layers
// with T = 1 and kt = 1), the crops that feed it, and its training loop. The shipped
// weights (assets/digit_classifier.safetensors, written by
// scripts/train-digit-classifier.js) load in one call: loadDigitClassifier().
//
// Shapes: images [N, 28, 28] or [N, 1, 28, 28] in [0, 1]; logits [N, 10]. Videos
// [B, 1, T, H, W] in [0, 1] with one digit: each frame is cropped to 28x28 around the
// digit's center of mass (as MNIST centres its digits), and the frames vote by summed
// log-probabilities.
import * as fs from 'fs';
import * as path from 'path';
import { noGrad } from '../autograd/node';
import { manualSeed, tensor } from '../creation';
import { DigitSet, MNIST_SIZE, mnistDigits } from '../data/mnist';
import { DataRng } from '../data/rng';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import { Linear } from '../nn/layers';
import { Conv3d } from '../nn/layers_more';
import { Module } from '../nn/module';
import * as F from '../ops/functional';
import { live, shapeStr } from '../ops/basic';
import { AdamW } from '../optim/adamw';
import { warmupCosine } from '../optim/schedule';
import { Tensor, tidy, typeName } from '../tensor';

const S = MNIST_SIZE;
/** The shipped weights. */
export const DIGIT_CLASSIFIER_FILE = path.resolve(__dirname, '..', '..', 'assets', 'digit_classifier.safetensors');

/** conv 1->16 (28x28), 16->32 /2 (14), 32->64 /2 (7), 64->64 /2 (4), linear 1024 -> 10; ReLU between. */
export class DigitClassifier extends Module {
  readonly conv1: Conv3d;
  readonly conv2: Conv3d;
  readonly conv3: Conv3d;
  readonly conv4: Conv3d;
  readonly fc: Linear;

  constructor() {
    super();
    const k: [number, number, number] = [1, 3, 3], pad: [number, number, number] = [0, 1, 1], s2: [number, number, number] = [1, 2, 2];
    this.conv1 = this.registerModule('conv1', new Conv3d(1, 16, k, { padding: pad }));
    this.conv2 = this.registerModule('conv2', new Conv3d(16, 32, k, { padding: pad, stride: s2 }));
    this.conv3 = this.registerModule('conv3', new Conv3d(32, 64, k, { padding: pad, stride: s2 }));
    this.conv4 = this.registerModule('conv4', new Conv3d(64, 64, k, { padding: pad, stride: s2 }));
    this.fc = this.registerModule('fc', new Linear(64 * 4 * 4, 10));
  }

  /** images [N, 28, 28] or [N, 1, 28, 28] in [0, 1] -> logits [N, 10]. */
  forward(images: Tensor): Tensor {
    const x = live(images, 'DigitClassifier');
    const N = x.shape[0];
    if (!((x.rank === 3 && x.shape[1] === S && x.shape[2] === S) || (x.rank === 4 && x.shape[1] === 1 && x.shape[2] === S && x.shape[3] === S)))
      throw new Error(`DigitClassifier: expected images [N, 28, 28] or [N, 1, 28, 28], got ${shapeStr(x.shape)}`);
    let h = x.reshape([N, 1, 1, S, S]).sub(0.1307).mul(1 / 0.3081); // MNIST's mean and std
    h = this.conv1.forward(h).relu(); // [N, 16, 1, 28, 28]
    h = this.conv2.forward(h).relu(); // [N, 32, 1, 14, 14]
    h = this.conv3.forward(h).relu(); // [N, 64, 1, 7, 7]
    h = this.conv4.forward(h).relu(); // [N, 64, 1, 4, 4]
    return this.fc.forward(h.reshape([N, 64 * 16])); // [N, 10]
  }

  /** Predicted classes of images [N, 28, 28]. */
  predict(images: Tensor): number[] {
    return tidy(() => noGrad(() => argmaxRows(this.forward(images).toFloat32Array(), 10)));
  }
}

function argmaxRows(v: Float32Array, n: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < v.length / n; r++) {
    let best = 0;
    for (let c = 1; c < n; c++) if (v[r * n + c] > v[r * n + best]) best = c;
    out.push(best);
  }
  return out;
}

/** Loads the shipped classifier (or weights from `file`), in eval mode. */
export function loadDigitClassifier(file: string = DIGIT_CLASSIFIER_FILE): DigitClassifier {
  if (!fs.existsSync(file))
    throw new Error(`loadDigitClassifier: ${file} does not exist (train it with 'node scripts/train-digit-classifier.js')`);
  const { tensors } = loadSafetensors(file);
  const model = new DigitClassifier();
  try {
    model.loadStateDict(tensors);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
  return model.eval();
}

/** Saves a classifier's weights as safetensors with string metadata. */
export function saveDigitClassifier(model: DigitClassifier, file: string, metadata: Record<string, string> = {}): void {
  saveSafetensors(file, model.stateDict(), metadata);
}

// ---- crops -----------------------------------------------------------------------------

/**
 * Center of mass (y, x) of a frame [H, W] weighted by max(v - threshold, 0), and the
 * total weight; null when the frame holds (almost) nothing.
 */
export function centerOfMass(frame: Float32Array, H: number, W: number, threshold = 0, minMass = 1): { y: number; x: number; mass: number } | null {
  let m = 0, sy = 0, sx = 0;
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const w = frame[y * W + x] - threshold;
      if (w > 0) (m += w), (sy += w * y), (sx += w * x);
    }
  return m < minMass ? null : { y: sy / m, x: sx / m, mass: m };
}

/** The 28x28 window of a frame centred at (cy, cx) (zeros outside), values clamped to [0, 1]. */
export function cropAt(frame: Float32Array, H: number, W: number, cy: number, cx: number, out = new Float32Array(S * S)): Float32Array {
  // MNIST centres the center of mass in the 28x28 field: pixel (14, 14) in 0-based coordinates of the crop
  const y0 = Math.round(cy) - S / 2, x0 = Math.round(cx) - S / 2;
  for (let r = 0; r < S; r++)
    for (let c = 0; c < S; c++) {
      const y = y0 + r, x = x0 + c;
      const v = y >= 0 && y < H && x >= 0 && x < W ? frame[y * W + x] : 0;
      out[r * S + c] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  return out;
}

/** A frame's digit cropped around its center of mass, or null for an empty frame. */
export function cropDigit(frame: Float32Array, H: number, W: number, threshold = 0.1): Float32Array | null {
  const c = centerOfMass(frame, H, W, threshold);
  return c ? cropAt(frame, H, W, c.y, c.x) : null;
}

export interface DigitPrediction {
  /** Predicted class, or -1 when no frame held a digit. */
  digit: number;
  /** Mean log-probability per class over the voting frames. */
  logProbs: number[];
  /** Frames that voted. */
  frames: number;
}

/**
 * Classifies the digit of each video [B, 1, T, H, W] (or [B, T, H, W]) in [0, 1]: every
 * non-empty frame is cropped around its center of mass and classified; the frames
 * vote by summed log-probabilities.
 */
export function classifyVideoDigits(classifier: DigitClassifier, videos: Tensor, opts: { threshold?: number } = {}): DigitPrediction[] {
  const op = 'classifyVideoDigits';
  if (!(classifier instanceof DigitClassifier)) throw new TypeError(`${op}: expected a DigitClassifier, got ${typeName(classifier)}`);
  const { data, B, T, H, W } = videoData(op, videos);
  const crops: Float32Array[] = [], owner: number[] = [];
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const crop = cropDigit(data.subarray((b * T + t) * H * W, (b * T + t + 1) * H * W), H, W, opts.threshold ?? 0.1);
      if (crop) crops.push(crop), owner.push(b);
    }
  const sums = Array.from({ length: B }, () => new Array<number>(10).fill(0));
  const counts = new Array<number>(B).fill(0);
  const chunk = 512;
  for (let at = 0; at < crops.length; at += chunk) {
    const part = crops.slice(at, at + chunk);
    const flat = new Float32Array(part.length * S * S);
    part.forEach((c, i) => flat.set(c, i * S * S));
    const lp = tidy(() => noGrad(() => F.logSoftmax(classifier.forward(tensor(flat, { shape: [part.length, S, S], device: classifier.device })), -1).toFloat32Array()));
    part.forEach((_, i) => {
      const b = owner[at + i];
      counts[b]++;
      for (let k = 0; k < 10; k++) sums[b][k] += lp[i * 10 + k];
    });
  }
  return sums.map((s, b) => ({
    digit: counts[b] ? argmaxRows(Float32Array.from(s), 10)[0] : -1,
    logProbs: s.map((v) => (counts[b] ? v / counts[b] : NaN)),
    frames: counts[b],
  }));
}

/** @internal Reads a video batch [B, 1, T, H, W] / [B, T, H, W] (or one video [1, T, H, W] / [T, H, W] with batch true = false). */
export function videoData(op: string, videos: Tensor, batched = true): { data: Float32Array; B: number; T: number; H: number; W: number } {
  const v = live(videos, op, 'videos');
  const s = v.shape;
  let dims: number[];
  if (batched) {
    if (s.length === 5 && s[1] === 1) dims = [s[0], s[2], s[3], s[4]];
    else if (s.length === 4) dims = [...s];
    else throw new Error(`${op}: expected videos [B, 1, T, H, W] or [B, T, H, W] (one channel), got ${shapeStr(s)}`);
  } else if (s.length === 4 && s[0] === 1) dims = [1, s[1], s[2], s[3]];
  else if (s.length === 3) dims = [1, ...s];
  else throw new Error(`${op}: expected a video [1, T, H, W] or [T, H, W] (one channel), got ${shapeStr(s)}`);
  const data = v.dtype === 'float32' ? v.toFloat32Array() : tidy(() => v.to('float32').toFloat32Array());
  return { data, B: dims[0], T: dims[1], H: dims[2], W: dims[3] };
}

// ---- training --------------------------------------------------------------------------

/** Every image of a split, re-centred on its center of mass: images [N * 784] and labels. */
function centredSplit(set: DigitSet): { images: Float32Array; labels: number[] } {
  const n = set.counts.reduce((a, b) => a + b, 0);
  const images = new Float32Array(n * S * S);
  const labels: number[] = [];
  let k = 0;
  set.images.forEach((imgs, cls) => {
    for (let i = 0; i < set.counts[cls]; i++, k++) {
      const img = imgs.subarray(i * S * S, (i + 1) * S * S);
      const c = centerOfMass(img, S, S, 0.1) ?? { y: S / 2, x: S / 2 };
      cropAt(img, S, S, c.y, c.x, images.subarray(k * S * S, (k + 1) * S * S));
      labels.push(cls);
    }
  });
  return { images, labels };
}

/** Random shifts of up to 2 pixels, and for a third of the images a 3x3 blur or noise (generated digits are softer). */
function augment(src: Float32Array, rng: DataRng, out: Float32Array): void {
  const dy = rng.int(5) - 2, dx = rng.int(5) - 2;
  for (let r = 0; r < S; r++)
    for (let c = 0; c < S; c++) {
      const y = r - dy, x = c - dx;
      out[r * S + c] = y >= 0 && y < S && x >= 0 && x < S ? src[y * S + x] : 0;
    }
  const u = rng.next();
  if (u < 0.15) {
    const tmp = Float32Array.from(out);
    for (let r = 0; r < S; r++)
      for (let c = 0; c < S; c++) {
        let s = 0;
        for (let a = -1; a <= 1; a++) for (let b = -1; b <= 1; b++) s += r + a >= 0 && r + a < S && c + b >= 0 && c + b < S ? tmp[(r + a) * S + c + b] : 0;
        out[r * S + c] = Math.min(1, (s / 9) * 1.5);
      }
  } else if (u < 0.3) {
    for (let i = 0; i < S * S; i++) out[i] = Math.min(1, Math.max(0, out[i] + (rng.next() - 0.5) * 0.2));
  }
}

export interface TrainDigitClassifierOptions {
  epochs?: number; // default 20
  batchSize?: number; // default 64
  lr?: number; // default 2e-3
  seed?: number; // default 0
  onEpoch?: (epoch: number, info: { loss: number; testAccuracy: number; seconds: number }) => void;
}

/** Test-split accuracy of a classifier on the re-centred held-out digits. */
export function digitTestAccuracy(model: DigitClassifier): number {
  const { images, labels } = centredSplit(mnistDigits('test'));
  let correct = 0;
  for (let at = 0; at < labels.length; at += 500) {
    const n = Math.min(500, labels.length - at);
    const pred = model.predict(tensor(images.subarray(at * S * S, (at + n) * S * S), { shape: [n, S, S] }));
    pred.forEach((p, i) => (correct += p === labels[at + i] ? 1 : 0));
  }
  return correct / labels.length;
}

/** Trains a DigitClassifier on the train split of mnistDigits (AdamW, warmup + cosine). */
export function trainDigitClassifier(opts: TrainDigitClassifierOptions = {}): { model: DigitClassifier; testAccuracy: number } {
  const epochs = opts.epochs ?? 20, bs = opts.batchSize ?? 64, seed = opts.seed ?? 0;
  manualSeed(seed);
  const model = new DigitClassifier();
  const { images, labels } = centredSplit(mnistDigits('train'));
  const N = labels.length, steps = Math.ceil(N / bs) * epochs;
  const opt = new AdamW(model, { lr: opts.lr ?? 2e-3, weightDecay: 1e-4 });
  const sched = warmupCosine(Math.min(100, steps - 1), steps);
  const rng = new DataRng(seed, 77);
  const batch = new Float32Array(bs * S * S);
  let step = 0;
  let testAccuracy = 0;
  for (let e = 0; e < epochs; e++) {
    const t0 = Date.now();
    const order = [...Array(N).keys()];
    for (let i = N - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    let lossSum = 0, nb = 0;
    model.train();
    for (let at = 0; at < N; at += bs) {
      const idx = order.slice(at, at + bs);
      idx.forEach((k, i) => augment(images.subarray(k * S * S, (k + 1) * S * S), rng, batch.subarray(i * S * S, (i + 1) * S * S)));
      opt.setLRScale(sched(step++));
      lossSum += tidy(() => {
        const x = tensor(batch.subarray(0, idx.length * S * S), { shape: [idx.length, S, S] });
        const onehot = new Float32Array(idx.length * 10);
        idx.forEach((k, i) => (onehot[i * 10 + labels[k]] = 1));
        const loss = F.logSoftmax(model.forward(x), -1).mul(tensor(onehot, { shape: [idx.length, 10] })).sum().mul(-1 / idx.length);
        opt.zeroGrad();
        loss.backward();
        opt.step();
        return loss.item();
      });
      nb++;
    }
    model.eval();
    testAccuracy = digitTestAccuracy(model);
    opts.onEpoch?.(e, { loss: lossSum / nb, testAccuracy, seconds: (Date.now() - t0) / 1000 });
  }
  opt.dispose();
  return { model: model.eval(), testAccuracy };
}
