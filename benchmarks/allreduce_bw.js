#!/usr/bin/env node
// Bus bandwidth of ts.distributed.allReduce (float32 sum, in place, host tensors over
// MPI) from 1 to 256 MB on 2 ranks, against a plain C MPI_Allreduce loop
// (allreduce_bw.c, compiled with mpicc into /tmp) on the same machine. Each round
// runs both programs, all sizes, in alternating order (interleaved, so that a
// change in the machine's load hits both); the table shows each size's median over
// the rounds. Bus bandwidth as nccl-tests define it: bytes / time * 2 (n - 1) / n.
//   node benchmarks/allreduce_bw.js [--rounds 3] [--max-mb 256]
// (needs dist/ from `npm run build:ts`; the addon from build/ or TESSERA_ADDON).
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const NP = 2;
const MB = 2 ** 20;

function worker() {
  const ts = require(path.join(__dirname, '..', 'dist'));
  const dist = require(path.join(__dirname, '..', 'dist', 'distributed'));
  const { rank } = dist.init();
  for (const spec of process.argv.slice(3)) {
    const [bytes, iters] = spec.split(':').map(Number);
    const t = ts.zeros([bytes / 4]);
    dist.allReduce(t, 'sum'); // warm-up
    dist.barrier();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) dist.allReduce(t, 'sum');
    const dt = ts.tensor([Number(process.hrtime.bigint() - t0) / 1e9], { dtype: 'float64' });
    dist.allReduce(dt, 'max');
    if (rank === 0) console.log(JSON.stringify({ bytes, iters, seconds: dt.item() / iters }));
    t.dispose();
    dt.dispose();
  }
  dist.destroy();
}

function parseArgs() {
  const a = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = a.indexOf(`--${name}`);
    if (i < 0) return dflt;
    const v = Number(a[i + 1]);
    if (!Number.isInteger(v) || v < 1) {
      console.error(`allreduce_bw: --${name} expects a positive integer, got '${a[i + 1]}'`);
      process.exit(2);
    }
    return v;
  };
  for (let i = 0; i < a.length; i++)
    if (a[i].startsWith('--') && !['--rounds', '--max-mb'].includes(a[i])) {
      console.error(`allreduce_bw: unknown option ${a[i]} (expected --rounds N, --max-mb N)`);
      process.exit(2);
    }
  return { rounds: opt('rounds', 3), maxMb: opt('max-mb', 256) };
}

function mpirun(args) {
  const env = { ...process.env };
  if (process.getuid && process.getuid() === 0) Object.assign(env, { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' });
  const r = spawnSync('mpirun', ['--oversubscribe', '-np', String(NP), ...args], { env, encoding: 'utf8', timeout: 600000 });
  if (r.status !== 0) throw new Error(`mpirun ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function main() {
  const { rounds, maxMb } = parseArgs();
  const exe = path.join(os.tmpdir(), `tessera-allreduce-bw-${process.pid}`);
  try {
    execFileSync('mpicc', ['-O2', path.join(__dirname, 'allreduce_bw.c'), '-o', exe], { stdio: 'inherit' });
  } catch (e) {
    console.error(`allreduce_bw: could not compile allreduce_bw.c with mpicc (apt-get install libopenmpi-dev): ${e.message}`);
    process.exit(1);
  }
  // Sizes 1..maxMb MB (powers of two); 1500 MB / size calls, 3 to 50, per size and round.
  const specs = [];
  for (let mb = 1; mb <= maxMb; mb *= 2) specs.push(`${mb * MB}:${Math.max(3, Math.min(50, Math.round(1500 / mb)))}`);
  const runs = { ours: [], c: [] };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ['c', 'ours'] : ['ours', 'c'];
    for (const who of order) {
      const out = who === 'c' ? mpirun([exe, ...specs]) : mpirun([process.execPath, __filename, '--worker', ...specs]);
      if (out.length !== specs.length) throw new Error(`${who}: expected ${specs.length} results, got ${out.length}`);
      runs[who].push(out);
    }
    process.stderr.write(`round ${r + 1}/${rounds} done\n`);
  }
  fs.rmSync(exe, { force: true });
  const busbw = (rec) => ((rec.bytes / rec.seconds) * (2 * (NP - 1)) / NP) / 1e9;
  const lines = [
    `allReduce bus bandwidth, float32 sum in place, ${NP} ranks on ${os.hostname()} (${os.cpus().length} CPUs), ` +
      `median of ${rounds} interleaved rounds`,
    '',
    '| size | tessera allReduce (GB/s) | C MPI_Allreduce (GB/s) | tessera / C |',
    '|---:|---:|---:|---:|',
  ];
  specs.forEach((spec, i) => {
    const ours = median(runs.ours.map((o) => busbw(o[i])));
    const c = median(runs.c.map((o) => busbw(o[i])));
    lines.push(`| ${Number(spec.split(':')[0]) / MB} MB | ${ours.toFixed(2)} | ${c.toFixed(2)} | ${(ours / c).toFixed(3)} |`);
  });
  console.log(lines.join('\n'));
}

if (process.argv[2] === '--worker') worker();
else main();
