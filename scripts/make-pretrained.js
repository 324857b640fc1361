#!/usr/bin/env node
// Packs the demo models into the shipped bundle assets/pretrained/ (8-bit rows, see
// lib/io/quantize.ts) and measures the bundle itself on the held-out prompts, so the
// numbers in its metrics.json are those of the weights users get.
//   node scripts/make-pretrained.js [--vae out/vae-demo] [--dit out/dit-demo] [--out assets/pretrained] [--per 4] [--no-eval]
const fs = require('fs');
const path = require('path');
const ts = require('../dist');
const stage = require('../dist/demo/dit_stage');
const { loadDemoVAE } = require('../dist/demo/vae_stage');
const { savePretrained, loadPretrained } = require('../dist/demo/pretrained');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const vaeDir = path.resolve(opt('vae', 'out/vae-demo'));
const ditDir = path.resolve(opt('dit', 'out/dit-demo'));
const out = path.resolve(opt('out', 'assets/pretrained'));
const per = Number(opt('per', 4));

async function main() {
  ts.setNumThreads(Number(opt('threads', 2)));
  const vaeMetrics = JSON.parse(fs.readFileSync(path.join(vaeDir, 'metrics.json'), 'utf8'));
  const vae = loadDemoVAE(vaeDir);
  const { dit, info } = stage.loadDemoDiT(path.join(ditDir, 'dit', 'dit.safetensors'));
  const ditMetrics = JSON.parse(fs.readFileSync(path.join(ditDir, 'metrics.json'), 'utf8'));
  const metrics = {
    producedBy: `scripts/train-vae-demo.js --minutes ${vaeMetrics.minutes}, then scripts/train-dit-demo.js --minutes ${ditMetrics.plan.minutes} ` +
      '(the demo\'s VAE and DiT stages; the DiT settings are the demo\'s defaults), packed by scripts/make-pretrained.js',
    vae: { psnr: vaeMetrics.psnr, ssim: vaeMetrics.ssim, blackBaseline: vaeMetrics.blackBaseline, steps: vaeMetrics.steps, trainSeconds: vaeMetrics.trainSeconds, parameters: vae.numParameters() },
    dit: { heldOut: { digitAccuracy: ditMetrics.heldOut.digitAccuracy, directionAccuracy: ditMetrics.heldOut.directionAccuracy, samples: ditMetrics.heldOut.samples },
      steps: ditMetrics.train?.steps, trainSeconds: ditMetrics.train?.seconds, parameters: dit.numParameters(), settings: ditMetrics.settings },
    heldOutPrompts: stage.HELD_OUT_PROMPTS,
  };
  savePretrained(out, { vae, dit, info, metrics });
  const bytes = ['vae.safetensors', 'dit.safetensors'].map((f) => fs.statSync(path.join(out, f)).size);
  console.log(`wrote ${out}: vae ${(bytes[0] / 1e6).toFixed(2)} MB, dit ${(bytes[1] / 1e6).toFixed(2)} MB`);

  if (args.includes('--no-eval')) return;
  // The bundle as users load it: held-out adherence of the 8-bit weights.
  const p = loadPretrained(out);
  const t0 = Date.now();
  const r = await stage.evaluateDemo({ vae: p.vae, dit: p.dit, info: p.info, settings: stage.demoDiTSettings.full, samplesPerPrompt: per, seed: 5000, gifPath: path.join(ditDir, 'pretrained-heldout.gif') });
  metrics.bundle = { bytes: bytes[0] + bytes[1], heldOut: { digitAccuracy: r.digitAccuracy, directionAccuracy: r.directionAccuracy, jointAccuracy: r.jointAccuracy, samples: r.samples }, evalSeconds: (Date.now() - t0) / 1000 };
  savePretrained(out, { vae, dit, info, metrics }); // same weights, metrics with the bundle's own figures
  console.log(`bundle on held-out prompts: digit ${(100 * r.digitAccuracy).toFixed(1)}%, direction ${(100 * r.directionAccuracy).toFixed(1)}% of ${r.samples}`);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
