#!/usr/bin/env node
// Long-run check of the DiT loop through the CLI (issue 23): `tessera train-dit --steps N`
// with TESSERA_LOG_MEMORY=500, so the CLI itself logs its resident memory (RSS) and the live
// tensor count every 500 steps; after a warm-up, both must stay flat within 5%.
// Not part of CI (minutes): node scripts/long-run-dit.js [--steps 10000] [--every 500]
//   [--warmup 1000] [--full] [--threads 2] [--out DIR] [--keep] [--no-gc]
// The VAE is a fresh (untrained) one of the same settings: the DiT trains on its latents,
// which is all that memory depends on. --quick settings unless --full (the demo DiT on
// 6,000 clips: the encoding and the steps take hours on 2 cores).
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const steps = Number(opt('steps', 10000));
const every = Number(opt('every', 500));
const warmup = Number(opt('warmup', 1000));
const threads = Number(opt('threads', 2));
const full = args.includes('--full');
const root = path.join(__dirname, '..');
const ts = require(path.join(root, 'dist'));
const demo = require(path.join(root, 'dist', 'demo'));

const out = opt('out', fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-long-run-')));
fs.mkdirSync(out, { recursive: true });
ts.manualSeed(0);
const vae = new ts.VideoVAE(demo.demoVAESettings[full ? 'full' : 'quick'].vae);
vae.save(path.join(out, 'vae.safetensors'));
vae.dispose();

const cli = path.join(root, 'dist', 'cli', 'main.js');
const cmd = ['train-dit', ...(full ? [] : ['--quick']), '--steps', String(steps), '--out', out, '--threads', String(threads)];
console.log(`node ${args.includes('--no-gc') ? '' : '--expose-gc '}tessera ${cmd.join(' ')}  (TESSERA_LOG_MEMORY=${every})`);
const t0 = Date.now();
// --expose-gc: the CLI collects garbage before each sample, so RSS is what the process keeps
// (without it, RSS also holds garbage V8 has not collected yet: --no-gc shows that).
const gc = args.includes('--no-gc') ? [] : ['--expose-gc'];
const child = spawn(process.execPath, [...gc, cli, ...cmd], { env: { ...process.env, TESSERA_LOG_MEMORY: String(every) }, stdio: ['ignore', 'pipe', 'pipe'] });
const samples = [];
let err = '', stdout = '';
child.stdout.on('data', (d) => (stdout += d));
child.stderr.on('data', (d) => {
  err += d;
  for (const m of String(d).matchAll(/^memory DiT step (\d+): rss (\d+) tensors (\d+) storages (\d+) bytes (\d+) heap (\d+) external (\d+)$/gm)) {
    const s = { step: Number(m[1]), rss: Number(m[2]), tensors: Number(m[3]), storages: Number(m[4]), bytes: Number(m[5]), heap: Number(m[6]), external: Number(m[7]), seconds: (Date.now() - t0) / 1000 };
    samples.push(s);
    console.log(`step ${String(s.step).padStart(6)}  ${s.seconds.toFixed(0).padStart(5)} s  rss ${(s.rss / 2 ** 20).toFixed(1).padStart(7)} MiB  tensors ${s.tensors}  storages ${s.storages}  tensor bytes ${(s.bytes / 2 ** 20).toFixed(2)} MiB  JS heap ${(s.heap / 2 ** 20).toFixed(1)} MiB  external ${(s.external / 2 ** 20).toFixed(1)} MiB`);
  }
});
child.on('exit', (code) => {
  if (code !== 0) {
    console.error(`train-dit exited with ${code}:\n${err.split('\n').filter((l) => !/^(DiT|latents|memory) /.test(l)).join('\n')}`);
    process.exit(1);
  }
  console.log(stdout.trim());
  const after = samples.filter((s) => s.step > warmup);
  if (after.length < 2) {
    console.error(`too few samples after the warm-up of ${warmup} steps (${after.length})`);
    process.exit(1);
  }
  const spread = (key) => {
    const v = after.map((s) => s[key]);
    const lo = Math.min(...v), hi = Math.max(...v);
    return { lo, hi, ratio: hi / lo - 1 };
  };
  const rss = spread('rss'), tensors = spread('tensors'), bytes = spread('bytes');
  const pct = (x) => `${(100 * x).toFixed(2)}%`;
  console.log(`after step ${warmup} (${after.length} samples): rss ${(rss.lo / 2 ** 20).toFixed(1)} to ${(rss.hi / 2 ** 20).toFixed(1)} MiB (${pct(rss.ratio)}), ` +
    `tensors ${tensors.lo} to ${tensors.hi} (${pct(tensors.ratio)}), tensor bytes ${pct(bytes.ratio)}; ${((Date.now() - t0) / 1000).toFixed(0)} s in all`);
  const ok = rss.ratio <= 0.05 && tensors.ratio <= 0.05;
  console.log(ok ? 'flat within 5%: pass' : 'NOT flat within 5%: fail');
  if (!args.includes('--keep') && !opt('out')) fs.rmSync(out, { recursive: true, force: true });
  process.exit(ok ? 0 : 1);
});
