"""PyTorch side of `npm run bench`: a line-oriented server. Node sends one JSON
request per line, {"case": id, "params": {...}, "mode": "setup"|"run"}; we answer one
JSON line. Each "run" times one call of the case (after setup) and returns seconds,
so Node can interleave ours and theirs call by call. Run with Debian's python3-torch
and OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs, Haswell on AVX2 ones (set by run.js
for this process alone)."""
import json
import sys
import time

import torch
import torch.nn.functional as F

from torch_dit import DiTBlock, dit_sample_step, dit_train_step, naive_attention
from torch_vae import VideoVAE, kl

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
torch.manual_seed(0)
cases = {}


def build(case, p):
    """Returns a zero-argument callable that runs the case once."""
    if case == "gemm":
        a, b = torch.randn(p["M"], p["K"]), torch.randn(p["K"], p["N"])
        return lambda: a @ b
    if case == "attention_fwd":
        q, k, v = (torch.randn(p["B"], p["N"], p["H"], p["D"]) for _ in range(3))
        return lambda: naive_attention(q, k, v)
    if case == "attention_fwdbwd":
        q, k, v = (torch.randn(p["B"], p["N"], p["H"], p["D"], requires_grad=True) for _ in range(3))
        g = torch.randn(p["B"], p["N"], p["H"], p["D"])

        def run():
            naive_attention(q, k, v).backward(g)
            q.grad = k.grad = v.grad = None
        return run
    if case in ("conv3d_fwd", "conv3d_fwdbwd"):
        B, C, T, H, W = p["B"], p["C"], p["T"], p["H"], p["W"]
        x = torch.randn(B, C, T, H, W, requires_grad=case.endswith("bwd"))
        w = torch.randn(C, C, 3, 3, 3, requires_grad=case.endswith("bwd"))
        b = torch.randn(C, requires_grad=case.endswith("bwd"))
        causal = p.get("causal", False)

        def fwd():
            # causal: 2 frames of zeros in front; H/W padding stays inside the conv
            xx = F.pad(x, (0, 0, 0, 0, 2, 0)) if causal else x
            return F.conv3d(xx, w, b, padding=(0, 1, 1) if causal else 1)
        if case == "conv3d_fwd":
            return lambda: fwd()
        g = torch.randn(fwd().shape)

        def run():
            fwd().backward(g)
            x.grad = w.grad = b.grad = None
        return run
    if case == "groupnorm_silu":
        x = torch.randn(*p["shape"])
        w, b = torch.randn(p["shape"][1]), torch.randn(p["shape"][1])
        return lambda: F.silu(F.group_norm(x, p["groups"], w, b))
    if case == "layernorm_modulate":
        B, N, D = p["shape"]
        x, shift, scale = torch.randn(B, N, D), torch.randn(B, D), torch.randn(B, D)
        return lambda: F.layer_norm(x, (D,), None, None, 1e-6) * (1 + scale[:, None]) + shift[:, None]
    if case == "dit_block_fwdbwd":
        B, N, D, H = p["B"], p["N"], p["D"], p["H"]
        block = DiTBlock(D, H)
        x = torch.randn(B, N, D, requires_grad=True)
        c = torch.randn(B, D, requires_grad=True)
        g = torch.randn(B, N, D)

        def run():
            block(x, c).backward(g)
            for t in [x, c, *block.parameters()]:
                t.grad = None
        return run
    # ---- VAE ResNet3D block (issue 4, feat/perf) ---------------------------------------
    if case == "vae_resblock_fwdbwd":
        # x + conv(silu(gn(conv(silu(gn(x)))))), causal 3x3x3 convs (2 frames in front).
        B, C, T, H, W, G = p["B"], p["C"], p["T"], p["H"], p["W"], p["groups"]
        x = torch.randn(B, C, T, H, W, requires_grad=True)
        ps = [torch.ones(C), torch.zeros(C), torch.randn(C, C, 3, 3, 3) * 0.02, torch.zeros(C),
              torch.ones(C), torch.zeros(C), torch.randn(C, C, 3, 3, 3) * 0.02, torch.zeros(C)]
        for t in ps:
            t.requires_grad_()
        n1w, n1b, c1w, c1b, n2w, n2b, c2w, c2b = ps
        g = torch.randn(B, C, T, H, W)

        def conv(h, w, b):
            return F.conv3d(F.pad(h, (0, 0, 0, 0, 2, 0)), w, b, padding=(0, 1, 1))

        def run():
            h = conv(F.silu(F.group_norm(x, G, n1w, n1b, 1e-6)), c1w, c1b)
            h = conv(F.silu(F.group_norm(h, G, n2w, n2b, 1e-6)), c2w, c2b)
            (x + h).backward(g)
            for t in [x] + ps:
                t.grad = None
        return run
    # ---- end VAE ResNet3D block --------------------------------------------------------
    if case == "vae_step":
        # the same step as ours: forward, L1 + KL, backward, clip, AdamW
        vae = VideoVAE(p["config"])
        opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
        x = torch.rand(*p["shape"]) * 2 - 1
        per = p["shape"][1] * p["shape"][2] * p["shape"][3] * p["shape"][4]

        def run():
            mean, logvar = vae.encode(x)
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            loss = (vae.decode(z) - x).abs().mean() + 1e-6 / per * kl(mean, logvar)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return run
    if case == "dit_train_step":
        return dit_train_step(p)
    if case == "dit_sample_step":
        return dit_sample_step(p)
    raise ValueError(f"unknown case {case}")


for line in sys.stdin:
    req = json.loads(line)
    try:
        key = json.dumps([req["case"], req["params"]], sort_keys=True)
        if req["mode"] == "setup":
            cases[key] = build(req["case"], req["params"])
            cases[key]()  # warm-up
            out = {"ok": True}
        else:
            fn = cases[key]
            calls = int(req.get("calls", 1))  # back to back; seconds is the time per call
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            out = {"ok": True, "seconds": (time.perf_counter() - t0) / calls}
    except Exception as e:  # reported back, never silently passed
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out), flush=True)
