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
        // the fused kernel (one read of x, one write) vs PyTorch's group_norm then silu
        return () => ts.F.groupNormSiLU(x, 32, w, b);
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
        return () => ts.F.layerNormModulate(x, shift, scale, 1e-6);
      },
      teardown: () => [x, shift, scale].forEach((t) => t.dispose()),
      torch: { case: 'layernorm_modulate', params: { shape: [B, N, D] } },
    });
  }
  {
    // one DiT block (adaLN-Zero modulation, fused-qkv self-attention, GELU(tanh) MLP x4),
    // forward + backward to the input, the conditioning and every parameter
    const [B, N, D, H] = [2, 1024, 384, 6];
    let block, x, c, g;
    out.push({
      name: 'DiT block fwd+bwd', shape: `[${B},${N},${D}] H=${H} mlp x4`,
      flops: 3 * B * N * (24 * D * D + 4 * N * D), target: 'ratio >= 1.5',
      setup: () => {
        block = new ts.DiTBlock(D, H, { mlpRatio: 4 });
        x = keep(ts.randn([B, N, D], { requiresGrad: true }));
        c = keep(ts.randn([B, D], { requiresGrad: true }));
        g = keep(ts.randn([B, N, D]));
        return () => {
          block.forward(x, c).backward(g);
          for (const t of [x, c, ...block.parameters()]) (t.grad.dispose(), (t.grad = null));
        };
      },
      teardown: () => ([x, c, g].forEach((t) => t.dispose()), block.dispose()),
      torch: { case: 'dit_block_fwdbwd', params: { B, N, D, H } },
    });
  }
  // ---- conv3d and the VAE ResNet3D block (issue 4, feat/perf) -------------------------
  // conv3d 3x3x3, padding 1 (causal: 2 frames in front, H/W padding 1), B=1 T=8 H=W=32.
  // PyTorch 1.13 takes mkldnn for C=128 and its slow unfold path for C=64 (its
  // heuristic wants N*C*T*H > 20480), hence the two targets.
  for (const C of [64, 128]) {
    for (const causal of [false, true]) {
      for (const bwd of [false, true]) {
        const [B, T, H, W] = [1, 8, 32, 32];
        const opts = causal ? { padding: 1, causal: true } : { padding: 1 };
        let x, w, b, g;
        out.push({
          name: `conv3d${causal ? ' causal' : ''} ${bwd ? 'fwd+bwd' : 'fwd'}`, shape: `[${B},${C},${T},${H},${W}] ${C}->${C}`,
          flops: 2 * B * C * T * H * W * C * 27 * (bwd ? 3 : 1), target: C === 64 ? 'ratio >= 2' : 'ratio >= 0.9',
          setup: () => {
            x = keep(ts.randn([B, C, T, H, W], { requiresGrad: bwd }));
            w = keep(ts.randn([C, C, 3, 3, 3], { requiresGrad: bwd }));
            b = keep(ts.randn([C], { requiresGrad: bwd }));
            g = keep(ts.randn([B, C, T, H, W]));
            if (!bwd) return () => ts.F.conv3d(x, w, b, opts);
            return () => {
              ts.F.conv3d(x, w, b, opts).backward(g);
              for (const t of [x, w, b]) (t.grad.dispose(), (t.grad = null));
            };
          },
          teardown: () => [x, w, b, g].forEach((t) => t.dispose()),
          torch: { case: bwd ? 'conv3d_fwdbwd' : 'conv3d_fwd', params: { B, C, T, H, W, causal } },
        });
      }
    }
  }
  // VAE ResNet3D block (causal video VAE): x + conv(silu(gn(conv(silu(gn(x)))))), 128
  // channels, 32 groups, causal 3x3x3 convs; forward+backward into x and all weights.
  {
    const [B, C, T, H, W] = [1, 128, 8, 32, 32];
    const opts = { padding: 1, causal: true };
    const gnSilu = (x, w, b) => (ts.F.groupNormSiLU ? ts.F.groupNormSiLU(x, 32, w, b, 1e-6) : ts.F.silu(ts.F.groupNorm(x, 32, w, b, 1e-6)));
    let ps, x, g;
    out.push({
      name: 'VAE ResNet3D block fwd+bwd', shape: `[${B},${C},${T},${H},${W}]`, flops: 2 * 3 * 2 * B * C * T * H * W * C * 27,
      target: 'ratio >= 1.0',
      setup: () => {
        const cw = () => keep(ts.tidy(() => ts.randn([C, C, 3, 3, 3]).mul(0.02)).requiresGrad_());
        ps = {
          n1w: keep(ts.ones([C], { requiresGrad: true })), n1b: keep(ts.zeros([C], { requiresGrad: true })),
          c1w: cw(), c1b: keep(ts.zeros([C], { requiresGrad: true })),
          n2w: keep(ts.ones([C], { requiresGrad: true })), n2b: keep(ts.zeros([C], { requiresGrad: true })),
          c2w: cw(), c2b: keep(ts.zeros([C], { requiresGrad: true })),
        };
        x = keep(ts.randn([B, C, T, H, W], { requiresGrad: true }));
        g = keep(ts.randn([B, C, T, H, W]));
        return () => {
          const h1 = ts.F.conv3d(gnSilu(x, ps.n1w, ps.n1b), ps.c1w, ps.c1b, opts);
          const h2 = ts.F.conv3d(gnSilu(h1, ps.n2w, ps.n2b), ps.c2w, ps.c2b, opts);
          x.add(h2).backward(g);
          for (const t of [x, ...Object.values(ps)]) (t.grad.dispose(), (t.grad = null));
        };
      },
      teardown: () => [x, g, ...Object.values(ps)].forEach((t) => t.dispose()),
      torch: { case: 'vae_resblock_fwdbwd', params: { B, C, T, H, W, groups: 32 } },
    });
  }
  // ---- end conv3d / VAE ResNet3D block ------------------------------------------------
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
