// Run under `mpirun -np 2` by test/js/distributed_mpi.test.ts. DistributedDataParallel
// against a single process: 2 ranks with batch B each must give the gradients and,
// after 20 AdamW steps, the parameters of 1 process with batch 2B (rank 0 trains
// that reference model itself, on the whole batch). Then noSync accumulation, and
// parameters a step does not use. Prints "rank R: <section> OK ..." lines.
const path = require('path');
const ts = require(process.env.TESSERA_LIB);
const dist = require(path.join(path.dirname(process.env.TESSERA_LIB), 'distributed'));
const { nn, optim, F } = ts;

const { rank: r, worldSize: n } = dist.init();
const B = 4, IN = 8, HID = 16, OUT = 3, STEPS = 20;
function check(cond, what) {
  if (!cond) throw new Error(`rank ${r}: ${what}`);
}
/** max |a - b| / max |b| over a tensor (0 when both are zero). */
function relDiff(a, b) {
  const x = a.dataSync(), y = b.dataSync();
  let d = 0, m = 0;
  for (let i = 0; i < x.length; i++) {
    d = Math.max(d, Math.abs(x[i] - y[i]));
    m = Math.max(m, Math.abs(y[i]));
  }
  return m === 0 ? d : d / m;
}
/** The same model with the same weights (a copy for the reference run). */
function copyOf(model) {
  const c = new nn.MLP(IN, { hiddenFeatures: HID, outFeatures: OUT });
  c.loadStateDict(model.stateDict());
  return c;
}
/** Step s's global batch of n*B rows, the same on every rank (a seeded generator). */
function batch(s, rows) {
  ts.manualSeed(1000 + s);
  return [ts.randn([rows, IN]), ts.randn([rows, OUT])];
}
const mine = (t) => t.slice(0, r * B, (r + 1) * B);
/** Whether every rank holds bit-identical values of t. */
function sameOnAllRanks(t) {
  const g = dist.allGather(t.contiguous()).dataSync();
  const k = t.numel;
  for (let i = 0; i < g.length; i++) if (g[i] !== g[i % k]) return false;
  return true;
}

// ---- exactness: 2 ranks x B against 1 process x 2B --------------------------------------
ts.manualSeed(7);
const model = new nn.MLP(IN, { hiddenFeatures: HID, outFeatures: OUT });
const ref = r === 0 ? copyOf(model) : null;
// Rank 1 starts from other weights: construction must broadcast rank 0's.
if (r !== 0) ts.noGrad(() => model.parameters().forEach((p) => p.copy_(p.add(1))));
// A small cap cuts the 4 parameters into 2 buckets (fc2's and fc1.bias, then fc1.weight).
const ddp = new dist.DistributedDataParallel(model, { bucketCapMB: 320 / 2 ** 20 });
check(ddp.buckets.length === 2, `expected 2 buckets, got ${ddp.buckets.length}`);
for (const p of model.parameters()) check(sameOnAllRanks(p), 'parameters differ across ranks after construction');
const opt = new optim.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.05 });
const refOpt = ref && new optim.AdamW(ref.parameters(), { lr: 1e-2, weightDecay: 0.05 });
let gradRel = 0, paramRel = 0, liveAfterFirst = 0;
for (let s = 0; s < STEPS; s++) {
  if (s === 1) liveAfterFirst = ts.memory().tensors;
  ts.tidy(() => {
    const [x, y] = batch(s, n * B);
    opt.zeroGrad();
    F.mseLoss(ddp.forward(mine(x)), mine(y)).backward();
    check(ddp.lastSync && ddp.lastSync.buckets === 2, 'a synchronized backward');
    check(ddp.lastSync.startedDuringBackward >= 1, `no bucket started during backward (${JSON.stringify(ddp.lastSync)})`);
    if (ref) {
      refOpt.zeroGrad();
      F.mseLoss(ref.forward(x), y).backward();
      ref.parameters().forEach((q, i) => (gradRel = Math.max(gradRel, relDiff(model.parameters()[i].grad, q.grad))));
      refOpt.step();
    }
    opt.step();
  });
}
// gradients are views of the buckets: freed with them, nothing piles up step after step
check(ts.memory().tensors === liveAfterFirst, `live tensors ${liveAfterFirst} after step 1, ${ts.memory().tensors} after step ${STEPS}`);
for (const p of model.parameters()) check(sameOnAllRanks(p), 'parameters differ across ranks after training');
if (ref) {
  ref.parameters().forEach((q, i) => (paramRel = Math.max(paramRel, relDiff(model.parameters()[i], q))));
  check(gradRel <= 1e-6, `gradients: relative difference ${gradRel} > 1e-6`);
  check(paramRel <= 1e-6, `parameters after ${STEPS} AdamW steps: relative difference ${paramRel} > 1e-6`);
}
console.log(`rank ${r}: exactness OK grad ${gradRel.toExponential(2)} params ${paramRel.toExponential(2)}`);

// ---- noSync: 2 micro-batches per rank, one synchronization --------------------------------
ts.tidy(() => {
  const [x1, y1] = batch(100, n * B);
  const [x2, y2] = batch(101, n * B);
  opt.zeroGrad();
  const before = ddp.lastSync;
  ddp.noSync(() => F.mseLoss(ddp.forward(mine(x1)), mine(y1)).backward());
  check(ddp.lastSync === before, 'a backward inside noSync synchronized');
  check(!sameOnAllRanks(model.fc1.weight.grad), 'inside noSync the gradients are local (they should differ)');
  F.mseLoss(ddp.forward(mine(x2)), mine(y2)).backward();
  check(ddp.lastSync !== before, 'the backward after noSync did not synchronize');
  if (ref) {
    ref.loadStateDict(model.stateDict());
    refOpt.zeroGrad();
    F.mseLoss(ref.forward(x1), y1).backward();
    F.mseLoss(ref.forward(x2), y2).backward();
    let rel = 0;
    ref.parameters().forEach((q, i) => (rel = Math.max(rel, relDiff(model.parameters()[i].grad, q.grad))));
    check(rel <= 1e-6, `noSync accumulation: relative difference ${rel} > 1e-6`);
    console.log(`rank ${r}: noSync OK ${rel.toExponential(2)}`);
  } else console.log(`rank ${r}: noSync OK`);
});

// ---- parameters a step does not use ------------------------------------------------------
// `a` every rank uses, `b` only rank 0, `c` none.
class Branches extends nn.Module {
  constructor() {
    super();
    this.a = this.registerModule('a', new nn.Linear(IN, OUT));
    this.b = this.registerModule('b', new nn.Linear(IN, OUT));
    this.c = this.registerModule('c', new nn.Linear(IN, OUT));
  }
  forward(x, useB) {
    return useB ? this.a.forward(x).add(this.b.forward(x)) : this.a.forward(x);
  }
}
for (const findUnusedParameters of [false, true]) {
  ts.tidy(() => {
    ts.manualSeed(11);
    const net = new Branches();
    const wrapped = new dist.DistributedDataParallel(net, { findUnusedParameters });
    const [x, y] = batch(200, n * B);
    F.mseLoss(wrapped.forward(mine(x), r === 0), mine(y)).backward();
    // b: rank 0's gradient averaged with rank 1's zeros
    const only0 = new Branches();
    only0.loadStateDict(net.stateDict());
    if (r === 0) F.mseLoss(only0.forward(mine(x), true), mine(y)).backward();
    const g0 = dist.broadcast(r === 0 ? only0.b.weight.grad.contiguous() : ts.zeros(net.b.weight.shape), 0);
    check(relDiff(net.b.weight.grad, g0.mul(1 / n)) <= 1e-6, `b: expected rank 0's gradient / ${n}`);
    check(net.a.weight.grad !== null && sameOnAllRanks(net.a.weight.grad), 'a: averaged gradient');
    if (findUnusedParameters) check(net.c.weight.grad === null && net.c.bias.grad === null, 'c: no rank used it, grad must stay null');
    else check(net.c.weight.grad !== null && net.c.weight.grad.abs().max().item() === 0, 'c: zeros without findUnusedParameters');
    wrapped.unwrap();
    console.log(`rank ${r}: unused parameters OK (findUnusedParameters ${findUnusedParameters})`);
  });
}
dist.destroy();
