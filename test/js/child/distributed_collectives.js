// Run under `mpirun -np N` by test/js/distributed_mpi.test.ts: every collective of
// ts.distributed on host tensors, checked against values each rank can compute
// itself. Throws (and so, through init()'s handler, ends the job naming the rank) on
// the first mismatch; prints "rank R: collectives OK" at the end.
const path = require('path');
const ts = require(process.env.TESSERA_LIB);
const dist = require(path.join(path.dirname(process.env.TESSERA_LIB), 'distributed'));

const info = dist.init();
const r = info.rank, n = info.worldSize;
function check(cond, what) {
  if (!cond) throw new Error(`rank ${r}: ${what}`);
}
function same(got, want, what) {
  const g = Array.from(got, Number), w = Array.from(want, Number);
  check(g.length === w.length && g.every((v, i) => v === w[i]), `${what}: got [${g.slice(0, 8)}], want [${w.slice(0, 8)}]`);
}
check(n === Number(process.env.OMPI_COMM_WORLD_SIZE), `worldSize ${n}`);
check(dist.rank() === r && dist.worldSize() === n && dist.localRank() === r, 'rank/localRank on one machine');
check(dist.init() .rank === r, 'init is idempotent');

// sum (float32, 2-D), in place, returns its argument
const base = Array.from({ length: 15 }, (_, i) => i - 3);
const a = ts.tensor(base.map((v) => v * (r + 1))).reshape([3, 5]);
check(dist.allReduce(a, 'sum') === a, 'allReduce returns its tensor');
same(a.dataSync(), base.map((v) => (v * n * (n + 1)) / 2), 'allReduce sum');
// mean (float64) and the default op (sum)
const m = ts.full([4], r + 1, { dtype: 'float64' });
same(dist.allReduce(m, 'mean').dataSync(), [1, 1, 1, 1].map(() => (n + 1) / 2), 'allReduce mean float64');
const d = ts.full([2], 1);
same(dist.allReduce(d).dataSync(), [n, n], 'allReduce default op is sum');
// max (int32)
const x = ts.tensor([r, -r, 7], { dtype: 'int32' });
same(dist.allReduce(x, 'max').dataSync(), [n - 1, 0, 7], 'allReduce max int32');
// a large tensor: 3M elements (12 MB), several MPI pipeline segments
const big = ts.arange(0, 3e6).add(r);
dist.allReduce(big, 'sum');
const bv = big.dataSync();
for (const i of [0, 1, 123457, 2999999]) check(bv[i] === n * i + (n * (n - 1)) / 2, `large allReduce at ${i}: ${bv[i]}`);
// broadcast from the last rank, for float32 and for bfloat16 (bytes, any dtype)
const root = n - 1;
const b = ts.full([6], r * 10 + 1);
check(dist.broadcast(b, root) === b, 'broadcast returns its tensor');
same(b.dataSync(), new Array(6).fill(root * 10 + 1), 'broadcast float32');
const bh = ts.full([3], r + 0.5).to('bfloat16');
dist.broadcast(bh, root);
same(bh.to('float32').dataSync(), new Array(3).fill(root + 0.5), 'broadcast bfloat16');
// allGather: [n, ...shape], row k from rank k
const g = dist.allGather(ts.tensor([r, 10 * r]));
same(g.shape, [n, 2], 'allGather shape');
same(g.dataSync(), Array.from({ length: n }, (_, k) => [k, 10 * k]).flat(), 'allGather values');
// a simulated host device (cpu:1) is host memory: it travels over MPI too
const h1 = ts.full([3], r + 1, { device: 'cpu:1' });
dist.allReduce(h1, 'sum');
check(h1.device === 'cpu:1', `cpu:1 stays on its device, got ${h1.device}`);
same(h1.to('cpu').dataSync(), [3, 3, 3].map(() => (n * (n + 1)) / 2), 'allReduce on cpu:1');
// barrier: rank 0 waits for a late last rank
if (r === n - 1) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
const t0 = Date.now();
dist.barrier();
if (r === 0) check(Date.now() - t0 >= 300, `barrier returned after ${Date.now() - t0} ms, before the late rank arrived`);
// errors are clear and name the call
const expectThrow = (fn, re, what) => {
  try {
    fn();
  } catch (e) {
    check(re.test(e.message), `${what}: message '${e.message}' does not match ${re}`);
    return;
  }
  check(false, `${what}: did not throw`);
};
expectThrow(() => dist.allReduce(ts.zeros([2, 3]).transpose(0, 1)), /allReduce: expected a contiguous tensor/, 'strided');
expectThrow(() => dist.allReduce(ts.zeros([2]), 'min'), /expected op 'sum', 'mean' or 'max', got 'min'/, 'bad op');
expectThrow(() => dist.allReduce(ts.zeros([2], { dtype: 'int32' }), 'mean'), /allReduce: the reduction 'mean' is not defined for int32/, 'int mean');
expectThrow(() => dist.broadcast(ts.zeros([2]), n), new RegExp(`expected a root rank in \\[0, ${n - 1}\\], got ${n}`), 'bad root');
// the same collectives still line up after the errors (none of them reached MPI)
same(dist.allReduce(ts.full([1], 1)).dataSync(), [n], 'allReduce after errors');
console.log(`rank ${r}: collectives OK`);
dist.destroy();
check(!dist.isInitialized(), 'destroy');
