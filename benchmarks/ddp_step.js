#!/usr/bin/env node
// The demo DiT's training step (lib/demo/dit_stage.ts demoDiTSettings.full: DiT 192 x 6,
// patch 1x4x4, bag-of-words text encoder, rectified flow) on a global batch of 32
// latents [4, 5, 16, 16] (17x64x64 Moving MNIST clips through the demo VAE), through
// trainDiT: 2 ranks x 1 thread (mpirun, DDP, 16 samples per rank) against 1 rank x 2
// threads, the same global batch (and 1 rank x 1 thread, to show each one's scaling). Latents are random (a step's work does not depend on
// their values), captions the demo's. Each round runs both configurations, in
// alternating order (interleaved, so that a change in the machine's load hits both);
// the table shows medians over the rounds of each run's median step.
//   node benchmarks/ddp_step.js [--rounds 5] [--steps 12] [--bucket-mb 25]
// Step time: wall time between consecutive steps (onStep), after 3 warm-up steps;
// communication: TrainDiTStep.commMs (the wait for DDP's gradient all-reduce at the end
// of backward plus the step's control and logging collectives), rank 0's. On a shared
// machine every run also measures the load of other processes over its timed steps
// (machine busy time from /proc/stat minus the CPU time of the run's own processes, in
// cores); the summary takes the runs where it stayed under --quiet cores (default 0.1),
// and says how many that were, beside the medians of all runs.
// (needs dist/ from `npm run build:ts`; the addon from build/ or TESSERA_ADDON.)
const { spawnSync } = require('child_process');
const os = require('os');
const path = require('path');

const fs = require('fs');

const WARMUP = 3;

/** Seconds of CPU time the whole machine has spent busy (all cores), from /proc/stat. */
function machineBusySeconds() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return (user + nice + system + irq + softirq + steal) / 100; // USER_HZ
  } catch {
    return NaN;
  }
}
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

function parseArgs() {
  const a = process.argv.slice(2).filter((x) => x !== '--worker');
  const known = ['--rounds', '--steps', '--bucket-mb', '--threads', '--quiet'];
  const opt = (name, dflt) => {
    const i = a.indexOf(`--${name}`);
    if (i < 0) return dflt;
    const v = Number(a[i + 1]);
    if (!(v > 0)) {
      console.error(`ddp_step: --${name} expects a positive number, got '${a[i + 1]}'`);
      process.exit(2);
    }
    return v;
  };
  for (let i = 0; i < a.length; i += 2)
    if (!known.includes(a[i])) {
      console.error(`ddp_step: unknown option ${a[i]} (expected ${known.map((k) => `${k} N`).join(', ')})`);
      process.exit(2);
    }
  return { rounds: opt('rounds', 5), steps: opt('steps', 12), bucketMb: opt('bucket-mb', 25), threads: opt('threads', 1), quiet: opt('quiet', 0.1) };
}

function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** One run: trains `steps` steps, prints rank 0's JSON line { stepMs, commMs, ... } (medians after warm-up). */
async function worker({ steps, bucketMb, threads }) {
  const ts = require(path.join(__dirname, '..', 'dist'));
  const demo = require(path.join(__dirname, '..', 'dist', 'demo', 'dit_stage'));
  const { rank, worldSize } = ts.distributed.init();
  ts.setNumThreads(threads);
  const s = demo.demoDiTSettings.full;
  ts.manualSeed(1);
  const N = 256;
  const latents = Array.from({ length: N }, () => ts.keep(ts.randn([4, 5, 16, 16])));
  const data = { length: N, get: (i) => ({ latent: latents[i], caption: demo.ALL_PROMPTS[i % demo.ALL_PROMPTS.length] }) };
  ts.manualSeed(0);
  const dit = demo.createDemoDiT(s, 4);
  const at = [], comm = [];
  let window = null; // [wall ms, machine busy s, own cpu s] when the timed steps start
  await ts.trainDiT({
    dit, diffusion: new ts.RectifiedFlow({ timestepSampling: s.flow.timestepSampling, shift: s.flow.shift }), data, steps: WARMUP + steps, batchSize: s.batchSize, lr: s.lr, warmup: 2, ema: s.ema,
    cfgDropout: s.cfgDropout, conditionFrameProb: s.conditionFrameProb, seed: 0, logEvery: 1000,
    distributed: { bucketCapMB: bucketMb },
    onStep: (i) => {
      at.push(performance.now());
      comm.push(i.commMs);
      if (i.step === WARMUP) window = [performance.now(), machineBusySeconds(), cpuSeconds()];
    },
  });
  const wall = (performance.now() - window[0]) / 1000;
  const [busy] = ts.distributed.allReduceNumbers([machineBusySeconds() - window[1]], 'max'); // (the same machine: one rank's view)
  const [own] = ts.distributed.allReduceNumbers([cpuSeconds() - window[2]], 'sum');
  const stepMs = at.slice(WARMUP).map((t, k) => t - at[WARMUP - 1 + k]);
  if (rank === 0)
    console.log(JSON.stringify({
      ranks: worldSize, threads, stepMs: median(stepMs), commMs: median(comm.slice(WARMUP)), params: dit.numParameters(), otherCores: (busy - own) / wall,
      samplesPerSec: (s.batchSize * 1000) / median(stepMs),
    }));
  ts.distributed.destroy();
}

function run(ranks, threads, o) {
  const script = [__filename, '--worker', '--threads', String(threads), '--steps', String(o.steps), '--bucket-mb', String(o.bucketMb)];
  const env = { ...process.env };
  let r;
  if (ranks === 1) r = spawnSync(process.execPath, script, { env, encoding: 'utf8', timeout: 600000 });
  else {
    if (process.getuid && process.getuid() === 0) Object.assign(env, { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' });
    r = spawnSync('mpirun', ['--oversubscribe', '-np', String(ranks), process.execPath, ...script], { env, encoding: 'utf8', timeout: 600000 });
  }
  if (r.status !== 0) throw new Error(`ddp_step: ${ranks} rank(s) x ${threads} thread(s) failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  return JSON.parse(line);
}

function main() {
  const o = parseArgs();
  const configs = [[1, 2], [2, 1], [1, 1]]; // [ranks, threads]; 1 x 1 for reference (thread scaling)
  const results = configs.map(() => []);
  for (let round = 0; round < o.rounds; round++) {
    const order = round % 2 ? [2, 1, 0] : [0, 1, 2];
    for (const c of order) {
      const r = run(configs[c][0], configs[c][1], o);
      results[c].push(r);
      process.stderr.write(
        `round ${round + 1}/${o.rounds}: ${r.ranks} rank(s) x ${r.threads} thread(s): ${r.stepMs.toFixed(0)} ms/step, comm ${r.commMs.toFixed(1)} ms, ` +
          `other processes ${r.otherCores.toFixed(2)} cores\n`,
      );
    }
  }
  const summary = (rs) => ({
    stepMs: median(rs.map((r) => r.stepMs)), commMs: median(rs.map((r) => r.commMs)), samplesPerSec: median(rs.map((r) => r.samplesPerSec)),
  });
  const quietRuns = results.map((rs) => rs.filter((r) => r.otherCores < o.quiet));
  const p = results[0][0].params;
  const names = ['1 rank x 2 threads', '2 ranks x 1 thread', '1 rank x 1 thread (reference)'];
  console.log(`demo DiT training step (${(p / 1e6).toFixed(2)}M parameters, ${(p * 4 / 2 ** 20).toFixed(1)} MB of fp32 gradients), global batch 32 of [4, 5, 16, 16], ` +
    `bucket cap ${o.bucketMb} MB; ${o.rounds} interleaved rounds x ${o.steps} steps (after ${WARMUP} warm-up steps); ${os.cpus()[0].model}\n`);
  console.log('| configuration | ms / step (quiet runs) | samples / s (quiet) | comm ms / step (quiet) | quiet runs | ms / step (all runs) | per-run ms / step [other processes, cores] |');
  console.log('|---|---:|---:|---:|---:|---:|---|');
  results.forEach((rs, c) => {
    const q = quietRuns[c].length ? summary(quietRuns[c]) : null, all = summary(rs);
    const cell = (v, d) => (q ? v.toFixed(d) : '-');
    console.log(`| ${names[c]} | ${q ? cell(q.stepMs, 0) : '-'} | ${q ? cell(q.samplesPerSec, 1) : '-'} | ${q ? cell(q.commMs, 1) : '-'} | ${quietRuns[c].length}/${rs.length} | ` +
      `${all.stepMs.toFixed(0)} | ${rs.map((r) => `${r.stepMs.toFixed(0)} [${r.otherCores.toFixed(2)}]`).join(', ')} |`);
  });
  const ratio = (set) => {
    const [one, two, single] = set.map((rs) => (rs.length ? summary(rs) : null));
    if (!one || !two || !single) return 'n/a (no quiet run of every configuration)';
    return `${(two.samplesPerSec / one.samplesPerSec).toFixed(3)} (target >= 0.9); communication ${(100 * two.commMs / two.stepMs).toFixed(1)}% of the 2-rank step; ` +
      `speed-up over 1 rank x 1 thread: 2 threads ${(one.samplesPerSec / single.samplesPerSec).toFixed(2)}x, 2 ranks ${(two.samplesPerSec / single.samplesPerSec).toFixed(2)}x`;
  };
  console.log(`\nthroughput ratio (2 ranks x 1 thread) / (1 rank x 2 threads), quiet runs (other processes < ${o.quiet} cores): ${ratio(quietRuns)}`);
  console.log(`the same over all runs: ${ratio(results)}`);
}

if (process.argv.includes('--worker')) worker(parseArgs()).catch((e) => {
  console.error(e);
  process.exit(1);
});
else main();
