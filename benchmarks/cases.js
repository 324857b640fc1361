// Benchmark cases: each has a name, a shape label, flops per call (for GFLOP/s),
// setup() returning the function timed (run inside tidy), the matching PyTorch case,
// and the target. Families whose ops are not in this build are skipped.
function cases(ts) {
  const out = [];
  const keep = (t) => ts.keep(t);
  for (const [M, K, N] of [[4096, 384, 1152], [4096, 384, 1536], [4096, 1536, 384], [2048, 2048, 2048]]) {
    let a, b;
    out.push({
      name: 'gemm', shape: `${M}x${K}x${N}`, flops: 2 * M * K * N, target: 'ratio >= 0.9, >= 80% peak',
      setup: () => {
        a = keep(ts.randn([M, K]));
        b = keep(ts.randn([K, N]));
        return () => a.matmul(b);
      },
      teardown: () => (a.dispose(), b.dispose()),
      torch: { case: 'gemm', params: { M, K, N } },
    });
  }
  return out;
}
module.exports = { cases };
