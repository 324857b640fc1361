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
  // attention: ours is flash-style; PyTorch 1.13's is softmax(QK^T/sqrt(d))V
  for (const N of [1024, 4096]) {
    const B = 2, H = 6, D = 64;
    for (const bwd of [false, true]) {
      let q, k, v, g;
      out.push({
        name: bwd ? 'attention fwd+bwd' : 'attention fwd', shape: `B=${B} H=${H} N=${N} D=${D}`,
        flops: 4 * B * H * N * N * D * (bwd ? 3.5 : 1), target: bwd ? 'ratio >= 2, O(N) memory' : 'ratio >= 3',
        setup: () => {
          q = keep(ts.randn([B, N, H, D], { requiresGrad: bwd }));
          k = keep(ts.randn([B, N, H, D], { requiresGrad: bwd }));
          v = keep(ts.randn([B, N, H, D], { requiresGrad: bwd }));
          g = keep(ts.randn([B, N, H, D]));
          if (!bwd) return () => ts.F.scaledDotProductAttention(q, k, v);
          return () => {
            ts.F.scaledDotProductAttention(q, k, v).backward(g);
            for (const t of [q, k, v]) (t.grad.dispose(), (t.grad = null));
          };
        },
        teardown: () => [q, k, v, g].forEach((t) => t.dispose()),
        torch: { case: bwd ? 'attention_fwdbwd' : 'attention_fwd', params: { B, H, N, D } },
      });
    }
  }
  {
    const shape = [2, 128, 8, 32, 32];
    let x, w, b;
    out.push({
      name: 'groupNorm+SiLU', shape: '[2,128,8,32,32] G=32', flops: null, target: 'ratio >= 1.5 (fused)',
      setup: () => {
        x = keep(ts.randn(shape));
        w = keep(ts.randn([128]));
        b = keep(ts.randn([128]));
        return () => ts.F.silu(ts.F.groupNorm(x, 32, w, b));
      },
      teardown: () => [x, w, b].forEach((t) => t.dispose()),
      torch: { case: 'groupnorm_silu', params: { shape, groups: 32 } },
    });
  }
  {
    const [B, N, D] = [2, 4096, 384];
    let x, shift, scale;
    out.push({
      name: 'layerNorm+modulate', shape: `[${B},${N},${D}]`, flops: null, target: 'ratio >= 1.5 (fused)',
      setup: () => {
        x = keep(ts.randn([B, N, D]));
        shift = keep(ts.randn([B, D]));
        scale = keep(ts.randn([B, D]));
        return () => ts.F.modulate(ts.F.layerNorm(x, [D], null, null, 1e-6), shift, scale);
      },
      teardown: () => [x, shift, scale].forEach((t) => t.dispose()),
      torch: { case: 'layernorm_modulate', params: { shape: [B, N, D] } },
    });
  }
  // VAE training step: the demo preset on the demo script's batch (forward, L1 + KL,
  // backward, gradient clipping, AdamW); PyTorch runs the same architecture
  // (benchmarks/torch_vae.py, identical parameter names and shapes).
  if (ts.VideoVAE) {
    const shape = [2, 1, 9, 64, 64];
    let vae, opt, x;
    out.push({
      name: 'VAE train step', shape: `demo preset, [${shape}]`, flops: null, target: 'ratio >= 1',
      setup: () => {
        ts.manualSeed(0);
        vae = new ts.VideoVAE(ts.vaePresets.demo);
        opt = new ts.optim.AdamW(vae, { lr: 1e-4 });
        x = keep(ts.rand(shape).mul(2).sub(1));
        return () => {
          const { recon, posterior } = vae.forward(x);
          ts.F.l1Loss(recon, x).add(posterior.kl().mul(1e-6 / (shape[1] * shape[2] * shape[3] * shape[4]))).backward();
          ts.optim.clipGradNorm(vae, 1);
          opt.step();
          opt.zeroGrad();
        };
      },
      teardown: () => (x.dispose(), opt.dispose(), vae.dispose()),
      torch: { case: 'vae_step', params: { shape, config: ts.vaePresets.demo } },
    });
  }
  return out;
}
module.exports = { cases };
