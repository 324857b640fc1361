#!/usr/bin/env node
// npm run bench: our ops vs PyTorch on the same shapes, interleaved call by call
// (ours, theirs, ours, ...), 2 threads each, medians after warm-up. Prints one
// table: shape, our time, PyTorch time, ratio (PyTorch time / ours: > 1 means we
// are faster), our GFLOP/s and % of this machine's measured peak.
//   node benchmarks/run.js [--filter text] [--reps N] [--json out.json] [--threads N] [--gap ms]
//     [--min-sample-ms ms]
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const ts = require('..');
const { cases } = require('./cases');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
// A numeric option, checked: a typo must not turn into NaN timings.
const numOpt = (name, def, min, integer) => {
  const raw = opt(name, def), v = Number(raw);
  if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    console.error(`bench: --${name} expects ${integer ? 'an integer' : 'a number'} >= ${min}, got ${String(raw)}`);
    process.exit(2);
  }
  return v;
};
const threads = numOpt('threads', 2, 1, true);
const reps = numOpt('reps', 7, 1, true);
const filter = opt('filter', '');
const jsonOut = opt('json', null);
// Idle time between timed calls: lets the other side's worker threads (OpenMP spin-waits,
// OpenBLAS's yield loop of up to ~0.1 s) go to sleep, so neither side is timed while the
// other one's threads still compete for the two cores.
const gapMs = numOpt('gap', 150, 0, false);
const PYTHON = process.env.TESSERA_BENCH_PYTHON || '/usr/bin/python3';

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// ---- the PyTorch side ----------------------------------------------------------------
// OpenBLAS's best kernels for this CPU: SkylakeX (AVX-512) where the CPU has AVX-512
// (these machines default to Haswell, which halves it there); on an AVX2-only CPU,
// SkylakeX would stop PyTorch with an illegal instruction, so Haswell (AVX2) it is.
const CORETYPE = ts.info().cpu.features.includes('avx512f') ? 'SkylakeX' : 'Haswell';
// Our kernels capped below the CPU (TESSERA_CPU_ISA=avx2): PyTorch capped alike (OpenBLAS
// core type, oneDNN and ATen's own dispatch), so the two sides run the same ISA.
const TORCH_ISA = CORETYPE === 'Haswell' && process.env.TESSERA_CPU_ISA === 'avx2'
  ? { ONEDNN_MAX_CPU_ISA: 'AVX2', DNNL_MAX_CPU_ISA: 'AVX2', ATEN_CPU_CAPABILITY: 'avx2' } : {};

function startTorch() {
  // The probe also names the BLAS PyTorch loaded: Debian's python3-torch takes whatever
  // libblas.so.3 points at, and the reference (netlib) BLAS is ~30x slower than OpenBLAS,
  // which would make every GEMM-bound ratio meaningless.
  const code = [
    'import torch',
    'torch.ones(64, 64) @ torch.ones(64, 64)',
    'print(torch.__version__)',
    "libs = sorted({l.split()[-1] for l in open('/proc/self/maps') if 'blas' in l.lower() and '.so' in l})",
    "print(' '.join(libs) or 'none')",
  ].join('\n');
  const probe = spawnSync(PYTHON, ['-c', code], { encoding: 'utf8', env: { ...process.env, OPENBLAS_CORETYPE: CORETYPE } });
  if (probe.status !== 0) return { available: false, reason: `PyTorch not found (${PYTHON} -c 'import torch' failed)` };
  const [version, blas] = probe.stdout.trim().split('\n');
  const env = { ...process.env, ...TORCH_ISA, OPENBLAS_CORETYPE: CORETYPE, OMP_NUM_THREADS: String(threads) };
  const child = spawn(PYTHON, [path.join(__dirname, 'torch_server.py'), String(threads)], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()(JSON.parse(l)));
  const ask = (req) =>
    new Promise((resolve) => {
      waiting.push(resolve);
      child.stdin.write(JSON.stringify(req) + '\n');
    });
  return { available: true, version, blas, ask, close: () => child.stdin.end() };
}

// 'yes' / 'no' against a case's target text: every 'ratio >= X' and '>= Y% peak' in it
// must hold; '-' when the target has neither or a number it needs is missing.
function targetMet(r) {
  const ratio = /ratio >= ([\d.]+)/.exec(r.target);
  const peak = />= ([\d.]+)% peak/.exec(r.target);
  if (!ratio && !peak) return '-';
  if ((ratio && r.ratio === null) || (peak && r.peakPct === null)) return '-';
  const ok = (!ratio || r.ratio >= Number(ratio[1])) && (!peak || r.peakPct >= Number(peak[1]));
  return ok ? 'yes' : 'no';
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One call of a case, timed with the freeing of everything it made: the block returns
// nothing, so tidy disposes the result too (as Python drops PyTorch's result right after
// the call). Returning it from tidy would leave it to the GC, and every run would then
// page-fault in fresh output memory.
// With calls > 1, the calls run back to back and the time per call is returned.
function timeOurs(fn, calls = 1) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++)
    ts.tidy(() => {
      fn();
    });
  return Number(process.hrtime.bigint() - t0) / 1e9 / calls;
}

// Calls per timed sample: a case faster than minSampleMs runs several calls back to back
// (the same count on both sides), so a millisecond op is timed in steady state, as a
// training step runs it, and not as one cold call after the idle gap (worker-thread
// wake-up and cache refill then dominate and swing either side by 2-3x).
const minSampleMs = numOpt('min-sample-ms', 40, 0, false);
function callsPerSample(fn) {
  const t = timeOurs(fn) * 1e3;
  return Math.max(1, Math.min(64, Math.ceil(minSampleMs / Math.max(t, 1e-3))));
}

async function main() {
  ts.setNumThreads(threads);
  const all = cases(ts);
  if (filter && !all.some((c) => `${c.name} ${c.shape}`.includes(filter))) {
    // A filter that matches nothing is a typo, not an empty benchmark.
    console.error(`bench: --filter '${filter}' matches no case (cases: ${[...new Set(all.map((c) => c.name))].join(', ')})`);
    process.exit(2);
  }
  const peak = ts.tidy(() => require('../dist/native').native.measurePeakGflops(0.5));
  const torch = startTorch();
  const rows = [];
  console.log(`tessera ${ts.version} bench: ${threads} threads, ${reps} interleaved runs per side, medians`);
  console.log(`machine: ${os.cpus()[0].model}, ${os.cpus().length} cpus; measured fp32 FMA peak ${peak.toFixed(0)} GFLOP/s on ${threads} threads (${ts.info().cpu.gemmKernel} GEMM kernel)`);
  console.log(torch.available ? `PyTorch ${torch.version} (OPENBLAS_CORETYPE=${CORETYPE}${Object.keys(TORCH_ISA).length ? `, ${Object.entries(TORCH_ISA).map(([k, v]) => `${k}=${v}`).join(", ")}` : ""}), BLAS: ${torch.blas}` : torch.reason);
  if (torch.available && !/openblas/i.test(torch.blas))
    console.log('WARNING: PyTorch is not on OpenBLAS (the reference BLAS is far slower); install it with: apt-get install libopenblas0-pthread');
  for (const c of all) {
    if (filter && !`${c.name} ${c.shape}`.includes(filter)) continue;
    const fn = c.setup();
    const warm = c.warmup ?? 2;
    for (let i = 0; i < warm; i++) timeOurs(fn);
    const calls = c.calls ?? callsPerSample(fn);
    let theirs = null;
    let torchError = null;
    if (torch.available && c.torch) {
      const r = await torch.ask({ case: c.torch.case, params: c.torch.params, mode: 'setup' });
      if (!r.ok) torchError = r.error;
    }
    const ours = [];
    const their = [];
    for (let i = 0; i < reps; i++) {
      if (gapMs > 0) await sleep(gapMs);
      ours.push(timeOurs(fn, calls));
      if (gapMs > 0) await sleep(gapMs);
      if (torch.available && c.torch && !torchError) {
        const r = await torch.ask({ case: c.torch.case, params: c.torch.params, mode: 'run', calls });
        if (r.ok) their.push(r.seconds);
        else torchError = r.error;
      }
    }
    c.teardown?.();
    const o = median(ours);
    if (their.length) theirs = median(their);
    const gflops = c.flops ? c.flops / o / 1e9 : null;
    rows.push({
      case: c.name, shape: c.shape, oursMs: o * 1e3, torchMs: theirs === null ? null : theirs * 1e3,
      ratio: theirs === null ? null : theirs / o, gflops, peakPct: gflops === null ? null : (100 * gflops) / peak,
      target: c.target ?? '', calls, note: torchError ?? (c.torch ? '' : 'no PyTorch equivalent'),
    });
    const r = rows[rows.length - 1];
    r.met = targetMet(r);
    process.stderr.write(`  done: ${r.case} ${r.shape}\n`);
  }
  if (torch.available) torch.close();
  const fmt = (v, d = 2) => (v === null || v === undefined ? '-' : v.toFixed(d));
  const header = ['case', 'shape', 'ours ms', 'torch ms', 'ratio', 'GFLOP/s', '% peak', 'target', 'met'];
  const table = rows.map((r) => [r.case, r.shape, fmt(r.oursMs), fmt(r.torchMs), fmt(r.ratio), fmt(r.gflops, 1), fmt(r.peakPct, 1), r.target + (r.note ? ` (${r.note})` : ''), r.met]);
  console.log('\n| ' + header.join(' | ') + ' |');
  console.log('|' + header.map(() => '---').join('|') + '|');
  for (const t of table) console.log('| ' + t.join(' | ') + ' |');
  if (jsonOut) {
    fs.writeFileSync(jsonOut, JSON.stringify({ date: new Date().toISOString(), machine: os.cpus()[0].model, threads, peakGflops: peak, torch: torch.version ?? null, blas: torch.blas ?? null, rows }, null, 2));
    console.log(`\nwrote ${jsonOut}`);
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
