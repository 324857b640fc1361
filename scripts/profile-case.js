#!/usr/bin/env node
// Where the time of one benchmark-suite case goes (benchmarks/cases.js, the same model,
// shapes and step as `npm run bench` times): every native call is timed, by name (by op
// for the unary/binary families) and, for linear layers, by GEMM shape with its GFLOP/s
// and % of the measured FMA peak; the rest of the call is JS. A developer's tool.
//   node scripts/profile-case.js --case 'DiT train step' [--calls 6] [--threads 2] [--top 25]
const ts = require('../dist');
const { native } = require('../dist/native');
const { cases } = require('../benchmarks/cases');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const name = opt('case', 'DiT train step');
const calls = Number(opt('calls', 6));
ts.setNumThreads(Number(opt('threads', 2)));

const times = new Map();
const gemms = new Map();
let recording = false;
const meta = native.meta.bind(native);
const rowsOf = (h) => meta(h)[0].slice(0, -1).reduce((p, q) => p * q, 1);
for (const key of Object.keys(native)) {
  const f = native[key];
  if (typeof f !== 'function') continue;
  native[key] = function timed(...a) {
    if (!recording) return f.apply(this, a);
    const t0 = process.hrtime.bigint();
    try {
      return f.apply(this, a);
    } finally {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const k = typeof a[0] === 'string' ? `${key}:${a[0]}` : key;
      const e = times.get(k) ?? { ms: 0, calls: 0 };
      e.ms += ms;
      e.calls++;
      times.set(k, e);
      if (key === 'linear' || key === 'linearBackward') {
        // linear(x, w, b): 2 M K N; linearBackward(dout, x, w, ...): dx and dW, 4 M K N
        const [x, w] = key === 'linear' ? [a[0], a[1]] : [a[1], a[2]];
        const [N, K] = meta(w)[0], M = rowsOf(x);
        const g = `${key === 'linear' ? 'fwd' : 'bwd'} M=${M} K=${K} N=${N}`;
        const s = gemms.get(g) ?? { ms: 0, calls: 0, flops: (key === 'linear' ? 2 : 4) * M * K * N };
        s.ms += ms;
        s.calls++;
        gemms.set(g, s);
      }
    }
  };
}

const c = cases(ts).find((x) => x.name === name);
if (!c) {
  console.error(`profile-case: no case named '${name}' (cases: ${[...new Set(cases(ts).map((x) => x.name))].join(', ')})`);
  process.exit(2);
}
const fn = c.setup();
for (let i = 0; i < 2; i++) ts.tidy(() => void fn());
recording = true;
const t0 = process.hrtime.bigint();
for (let i = 0; i < calls; i++) ts.tidy(() => void fn());
const total = Number(process.hrtime.bigint() - t0) / 1e6 / calls;
recording = false;
const peak = native.measurePeakGflops(0.5);
c.teardown?.();

let nativeMs = 0;
for (const e of times.values()) nativeMs += e.ms / calls;
const flops = c.flops ? `, ${(c.flops / total / 1e6).toFixed(1)} GFLOP/s of model FLOPs = ${((100 * c.flops) / total / 1e6 / peak).toFixed(1)}% of peak` : '';
console.log(`${c.name} ${c.shape}: ${total.toFixed(1)} ms a call, native ${nativeMs.toFixed(1)} ms, JS between calls ${(total - nativeMs).toFixed(1)} ms${flops}; FMA peak ${peak.toFixed(0)} GFLOP/s`);
console.log('native call                          ms/call   %call  calls');
for (const [k, e] of [...times].sort((p, q) => q[1].ms - p[1].ms).slice(0, Number(opt('top', 25))))
  console.log(`${k.padEnd(34)} ${(e.ms / calls).toFixed(2).padStart(8)} ${((100 * e.ms) / calls / total).toFixed(1).padStart(6)} ${String(e.calls / calls).padStart(6)}`);
if (gemms.size) {
  console.log('\nlinear (bwd = dx and dW)          ms/call  GFLOP/s  % peak');
  let ms = 0, fl = 0;
  for (const [k, g] of [...gemms].sort((p, q) => q[1].ms - p[1].ms)) {
    ms += g.ms / calls;
    fl += (g.flops * g.calls) / calls;
    const gf = (g.flops * g.calls) / g.ms / 1e6;
    console.log(`${k.padEnd(30)} ${(g.ms / calls).toFixed(2).padStart(8)} ${gf.toFixed(0).padStart(8)} ${((100 * gf) / peak).toFixed(0).padStart(6)}%`);
  }
  console.log(`all linear layers: ${ms.toFixed(1)} ms (${((100 * ms) / total).toFixed(0)}% of the call) at ${((100 * fl) / ms / 1e6 / peak).toFixed(0)}% of peak`);
}
