#!/usr/bin/env python3
"""PyTorch twins of tessera's training steps on one GPU (ours: benchmarks/gpu_train_step.js).

  dit  DiT-S/1x2x2 (hidden 384, depth 12, heads 6, MLP ratio 4, patch [1, 2, 2], 4
       latent channels, no learned sigma), text-conditioned as lib/models/dit.ts: pooled
       text in adaLN (Linear-SiLU-Linear added to the timestep embedding) and, in every
       block after self-attention, cross-attention of the tokens to the text tokens
       (LayerNorm, q from the tokens, k/v from the text, no gate). Latents [8, 4, 8, 32, 32]
       (2048 tokens a sample), text [8, 32, 384]. Rectified-flow step as
       benchmarks/torch_dit.py: x_t = (1 - t) x0 + t n, loss MSE(v, n - x0).
       Attention through F.scaled_dot_product_attention (SDPA picks flash / efficient).
  vae  the 'sora' preset of lib/models/vae.ts at width 128 (baseChannels 128, channel
       multipliers [1, 2, 4, 4], 16 latent channels, mid attention; the PyTorch twin of
       benchmarks/torch_vae.py) on video [1, 3, 17, 128, 128]: encode, reparameterize,
       decode, loss L1(recon, x) + 1e-6 * KL / (C*T*H*W) as trainVAE. cuDNN with
       cudnn.benchmark = True.
Each step: forward, loss, backward, gradient clipping to norm 1 (as trainDiT and
trainVAE do by default; --no-clip leaves it out), AdamW (fused=True), zero_grad. Each
model in fp32 (PyTorch defaults: TF32 for cuDNN convolutions, none for matmul; both
recorded) and under torch.autocast('cuda', dtype=torch.bfloat16) with fp32 master weights.
Timing: the median of --steps timed steps after --warmup steps, each bracketed by
torch.cuda.synchronize().

Usage: python3 benchmarks/gpu_torch_step.py [--steps 10] [--warmup 3] [--only dit|vae]
Prints one JSON object on stdout:
  {"device", "torch", "cuda", "cudnn", "tf32": {...}, "cases": [{"name", "model",
   "precision", "ms", "ms_all": [...], "config": {...}}, ...]}
and {"error": "no CUDA device"} (exit status 0) on a machine without one; a case that
fails carries "error" instead of "ms".
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DIT = {"hidden": 384, "depth": 12, "heads": 6, "mlp_ratio": 4, "patch": [1, 2, 2], "latent_shape": [8, 4, 8, 32, 32],
       "text_len": 32, "text_dim": 384, "freq": 256}
VAE = {"inChannels": 3, "latentChannels": 16, "baseChannels": 128, "channelMultipliers": [1, 2, 4, 4],
       "numResBlocks": 1, "decoderResBlocks": 1, "temporalCompression": 4, "spatialCompression": 8,
       "midAttention": True, "video_shape": [1, 3, 17, 128, 128], "klWeight": 1e-6}


# ---- DiT-S/1x2x2 with text conditioning ----------------------------------------------

def sdpa(q, k, v):
    # q [B, Nq, H, Dh], k, v [B, Nk, H, Dh] -> [B, Nq, H, Dh]
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


class Block(nn.Module):
    """adaLN-Zero block: self-attention, cross-attention to the text, MLP (GELU tanh)."""

    def __init__(self, D, H, text_dim, mlp_ratio):
        super().__init__()
        self.H = H
        self.norm1 = nn.LayerNorm(D, eps=1e-6, elementwise_affine=False)
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.norm_cross = nn.LayerNorm(D, eps=1e-6)
        self.cq, self.ckv, self.cproj = nn.Linear(D, D), nn.Linear(text_dim, 2 * D), nn.Linear(D, D)
        self.norm2 = nn.LayerNorm(D, eps=1e-6, elementwise_affine=False)
        self.fc1, self.fc2 = nn.Linear(D, mlp_ratio * D), nn.Linear(mlp_ratio * D, D)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))

    def forward(self, x, c, text):
        B, N, D = x.shape
        L, H = text.shape[1], self.H
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=1)  # 6 x [B, D]
        h = self.norm1(x) * (1 + sc1[:, None]) + sh1[:, None]  # [B, N, D]
        q, k, v = self.qkv(h).reshape(B, N, 3, H, D // H).unbind(2)  # [B, N, H, Dh]
        x = x + g1[:, None] * self.proj(sdpa(q, k, v).reshape(B, N, D))
        q = self.cq(self.norm_cross(x)).reshape(B, N, H, D // H)
        k, v = self.ckv(text).reshape(B, L, 2, H, D // H).unbind(2)  # [B, L, H, Dh]
        x = x + self.cproj(sdpa(q, k, v).reshape(B, N, D))
        h = self.norm2(x) * (1 + sc2[:, None]) + sh2[:, None]
        return x + g2[:, None] * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))


class TextDiT(nn.Module):
    def __init__(self, C, D, depth, H, patch, grid, text_dim, mlp_ratio, freq):
        super().__init__()
        self.C, self.patch, self.freq = C, patch, freq
        P = patch[0] * patch[1] * patch[2]
        self.x_embed = nn.Linear(C * P, D)
        self.register_buffer("pos", torch.randn(grid[0] * grid[1] * grid[2], D) * 0.02)  # fixed, as sincos3d
        self.t_mlp = nn.Sequential(nn.Linear(freq, D), nn.SiLU(), nn.Linear(D, D))
        self.pooled = nn.Sequential(nn.Linear(text_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.blocks = nn.ModuleList([Block(D, H, text_dim, mlp_ratio) for _ in range(depth)])
        self.norm_final = nn.LayerNorm(D, eps=1e-6, elementwise_affine=False)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))
        self.final = nn.Linear(D, P * C)

    def forward(self, x, t, text):
        B, C, T, Hh, W = x.shape
        pt, ph, pw = self.patch
        gt, gh, gw = T // pt, Hh // ph, W // pw
        tok = x.reshape(B, C, gt, pt, gh, ph, gw, pw).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(B, gt * gh * gw, -1)
        h = self.x_embed(tok) + self.pos  # [B, N, D]
        half = self.freq // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
        args = t[:, None].float() * freqs[None]
        c = self.t_mlp(torch.cat([torch.cos(args), torch.sin(args)], -1)) + self.pooled(text.mean(1))  # [B, D]
        for blk in self.blocks:
            h = blk(h, c, text)
        shift, scale = self.final_ada(c).chunk(2, dim=1)
        h = self.final(self.norm_final(h) * (1 + scale[:, None]) + shift[:, None])  # [B, N, P*C]
        out = h.reshape(B, gt, gh, gw, C, pt, ph, pw).permute(0, 4, 1, 5, 2, 6, 3, 7)
        return out.reshape(B, C, T, Hh, W)


def dit_step(dev):
    c = DIT
    B, C, T, H, W = c["latent_shape"]
    p = c["patch"]
    m = TextDiT(C, c["hidden"], c["depth"], c["heads"], p, [T // p[0], H // p[1], W // p[2]], c["text_dim"],
                c["mlp_ratio"], c["freq"]).to(dev)
    x0 = torch.randn(B, C, T, H, W, device=dev)
    text = torch.randn(B, c["text_len"], c["text_dim"], device=dev)
    params = sum(q.numel() for q in m.parameters())

    def loss_fn():
        t = torch.sigmoid(torch.randn(B, device=dev))
        n = torch.randn_like(x0)
        tt = t[:, None, None, None, None]
        v = m((1 - tt) * x0 + tt * n, t * 1000, text)
        return F.mse_loss(v.float(), n - x0)

    return m, loss_fn, {**c, "params": params}


# ---- the 'sora' VAE at width 128 ---------------------------------------------------------

def vae_step(dev):
    from torch_vae import VideoVAE, kl

    c = VAE
    m = VideoVAE({k: v for k, v in c.items() if k not in ("video_shape", "klWeight")}).to(dev)
    x = torch.rand(*c["video_shape"], device=dev) * 2 - 1
    per_sample = x[0].numel()
    params = sum(q.numel() for q in m.parameters())

    def loss_fn():
        mean, logvar = m.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        recon = m.decode(z)
        return F.l1_loss(recon.float(), x) + c["klWeight"] * kl(mean.float(), logvar.float()) / per_sample

    return m, loss_fn, {**c, "params": params}


# ---- timing --------------------------------------------------------------------------------

def make_optimizer(m):
    try:
        return torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True), True
    except (TypeError, RuntimeError):
        return torch.optim.AdamW(m.parameters(), lr=1e-4), False


def time_case(name, model, build, precision, dev, steps, warmup, clip):
    torch.manual_seed(0)
    m, loss_fn, config = build(dev)
    opt, fused = make_optimizer(m)
    bf16 = precision == "bf16"

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    loss = None
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    result = {"name": name, "model": model, "precision": precision, "ms": statistics.median(times),
              "ms_all": [round(v, 3) for v in times], "loss": float(loss.detach()),
              "peak_memory_gb": torch.cuda.max_memory_allocated(dev) / 2**30,
              "config": {**config, "clip_grad_norm": 1.0 if clip else None, "adamw_fused": fused,
                         "steps": steps, "warmup": warmup}}
    del m, opt
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", choices=["dit", "vae"])
    ap.add_argument("--no-clip", action="store_true")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device"}))
        return 0
    dev = torch.device("cuda", 0)
    torch.backends.cudnn.benchmark = True
    out = {"device": torch.cuda.get_device_name(dev), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version(),
           "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
           "cases": []}
    todo = [("dit_s_1x2x2_text_train_step", "dit", dit_step), ("vae_sora_w128_train_step", "vae", vae_step)]
    for name, model, build in todo:
        if a.only and a.only != model:
            continue
        for precision in ("fp32", "bf16"):
            try:
                r = time_case(name, model, build, precision, dev, a.steps, a.warmup, not a.no_clip)
            except Exception as e:  # one case's failure (e.g. out of memory) does not hide the others
                r = {"name": name, "model": model, "precision": precision, "error": f"{type(e).__name__}: {e}"}
                torch.cuda.empty_cache()
            print(f"{name} {precision}: " + (f"{r['ms']:.1f} ms" if "ms" in r else r["error"]), file=sys.stderr,
                  flush=True)
            out["cases"].append(r)
    print(json.dumps(out))
    return 0 if all("ms" in r for r in out["cases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
