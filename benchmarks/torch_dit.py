"""PyTorch twins for the DiT benchmark cases: facebookresearch/DiT's block (adaLN-Zero,
timm-style attention, GELU(tanh) MLP) and a class-conditional video DiT on spacetime
patches [pt, ph, pw] with the same layers, widths and parameter count as tessera's
DiT (condition 'class', learnSigma false, sincos3d positions as a fixed table)."""
import math

import torch
import torch.nn.functional as F


def naive_attention(q, k, v, causal=False):
    # q, k, v: [B, N, H, D] -> [B, N, H, D]; softmax(QK^T/sqrt(d))V, the opponent the
    # issue names (PyTorch 1.13 has no fused CPU SDPA).
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))
    s = qh @ kh.transpose(-1, -2) * (q.shape[-1] ** -0.5)
    if causal:
        n = s.shape[-1]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return (s.softmax(-1) @ vh).transpose(1, 2)


class DiTBlock(torch.nn.Module):
    def __init__(self, D, H, mlp_ratio=4):
        super().__init__()
        self.H = H
        self.qkv, self.proj = torch.nn.Linear(D, 3 * D), torch.nn.Linear(D, D)
        self.fc1, self.fc2 = torch.nn.Linear(D, mlp_ratio * D), torch.nn.Linear(mlp_ratio * D, D)
        self.ada = torch.nn.Linear(D, 6 * D)

    def forward(self, x, c):
        B, N, D = x.shape
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(F.silu(c)).chunk(6, dim=1)
        h = F.layer_norm(x, (D,), eps=1e-6) * (1 + sc1[:, None]) + sh1[:, None]
        q, k, v = self.qkv(h).reshape(B, N, 3, self.H, D // self.H).unbind(2)  # [B, N, H, Dh]
        x = x + g1[:, None] * self.proj(naive_attention(q, k, v).reshape(B, N, D))
        h = F.layer_norm(x, (D,), eps=1e-6) * (1 + sc2[:, None]) + sh2[:, None]
        return x + g2[:, None] * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))


class VideoDiT(torch.nn.Module):
    def __init__(self, C, D, depth, H, patch, grid, num_classes=10, freq=256):
        super().__init__()
        self.C, self.patch, self.grid, self.freq = C, patch, grid, freq
        P = patch[0] * patch[1] * patch[2]
        self.x_embed = torch.nn.Linear(C * P, D)
        self.register_buffer("pos", torch.randn(grid[0] * grid[1] * grid[2], D) * 0.02)  # fixed table, as sincos3d
        self.t_mlp = torch.nn.Sequential(torch.nn.Linear(freq, D), torch.nn.SiLU(), torch.nn.Linear(D, D))
        self.y_embed = torch.nn.Embedding(num_classes + 1, D)
        self.blocks = torch.nn.ModuleList([DiTBlock(D, H) for _ in range(depth)])
        self.final_ada = torch.nn.Linear(D, 2 * D)
        self.final = torch.nn.Linear(D, P * C)

    def forward(self, x, t, y):
        B, C, T, Hh, W = x.shape
        pt, ph, pw = self.patch
        gt, gh, gw = T // pt, Hh // ph, W // pw
        tok = x.reshape(B, C, gt, pt, gh, ph, gw, pw).permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(B, gt * gh * gw, -1)
        h = self.x_embed(tok) + self.pos
        half = self.freq // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None] * freqs[None]
        c = self.t_mlp(torch.cat([torch.cos(args), torch.sin(args)], -1)) + self.y_embed(y)
        for blk in self.blocks:
            h = blk(h, c)
        shift, scale = self.final_ada(F.silu(c)).chunk(2, dim=1)
        h = self.final(F.layer_norm(h, (h.shape[-1],), eps=1e-6) * (1 + scale[:, None]) + shift[:, None])
        out = h.reshape(B, gt, gh, gw, pt, ph, pw, C).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return out.reshape(B, C, T, Hh, W)


def dit_train_step(p):
    """Rectified-flow step: x_t = (1 - t) x0 + t n, loss |v - (n - x0)|^2, clip, AdamW."""
    B, C, T, H, W = p["shape"]
    m = VideoDiT(C, p["hidden"], p["depth"], p["heads"], p["patch"], [T // p["patch"][0], H // p["patch"][1], W // p["patch"][2]])
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    x0 = torch.randn(B, C, T, H, W)
    y = torch.randint(0, 10, (B,))

    def run():
        t = torch.sigmoid(torch.randn(B))
        n = torch.randn_like(x0)
        tt = t[:, None, None, None, None]
        v = m((1 - tt) * x0 + tt * n, t * 1000, y)
        F.mse_loss(v, n - x0).backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return run


def dit_sample_step(p):
    """One Euler step with classifier-free guidance: one forward on [cond; uncond]."""
    B, C, T, H, W = p["shape"]
    m = VideoDiT(C, p["hidden"], p["depth"], p["heads"], p["patch"], [T // p["patch"][0], H // p["patch"][1], W // p["patch"][2]])
    x = torch.randn(B, C, T, H, W)
    y2 = torch.cat([torch.randint(0, 10, (B,)), torch.full((B,), 10)])
    t2 = torch.full((2 * B,), 500.0)

    @torch.no_grad()
    def run():
        out = m(torch.cat([x, x]), t2, y2)
        c, u = out.chunk(2)
        return x - 0.03 * (u + 4 * (c - u))
    return run
