"""The tessera VideoVAE (lib/models/vae.ts) in PyTorch, layer for layer and with the
same parameter names, so state dicts move between the two. Used by the PyTorch fixture
(test/fixtures/gen_vae.py) and the benchmark's PyTorch side (benchmarks/torch_server.py).
Video [B, C, T, H, W] in [-1, 1]; causal convs (zero padding of kt-1 frames before),
GroupNorm per frame, frame 0 alone through temporal down/up-sampling."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def groups_for(channels, most):
    g = min(most, channels)
    while channels % g:
        g -= 1
    return g


class CausalConv3d(nn.Conv3d):
    def __init__(self, cin, cout, k):
        super().__init__(cin, cout, k, padding=(0, (k - 1) // 2, (k - 1) // 2))
        self.kt = k

    def forward(self, x):
        return super().forward(F.pad(x, (0, 0, 0, 0, self.kt - 1, 0)))  # [B, out, T, H, W]


class FrameGroupNorm(nn.GroupNorm):
    def forward(self, x, act=False):
        B, C, T, H, W = x.shape
        y = x.permute(0, 2, 1, 3, 4).reshape(B * T, C, H, W)
        y = F.group_norm(y, self.num_groups, self.weight, self.bias, self.eps)
        if act:
            y = F.silu(y)
        return y.reshape(B, T, C, H, W).permute(0, 2, 1, 3, 4)


class ResnetBlock3D(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = FrameGroupNorm(groups_for(cin, groups), cin, eps=1e-6)
        self.conv1 = CausalConv3d(cin, cout, 3)
        self.norm2 = FrameGroupNorm(groups_for(cout, groups), cout, eps=1e-6)
        self.conv2 = CausalConv3d(cout, cout, 3)
        self.nin_shortcut = None if cin == cout else CausalConv3d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(self.norm1(x, True))
        h = self.conv2(self.norm2(h, True))
        return h + (self.nin_shortcut(x) if self.nin_shortcut is not None else x)


class FrameAttention(nn.Module):
    def __init__(self, channels, groups):
        super().__init__()
        self.norm = FrameGroupNorm(groups_for(channels, groups), channels, eps=1e-6)
        self.qkv = CausalConv3d(channels, 3 * channels, 1)
        self.proj_out = CausalConv3d(channels, channels, 1)

    def forward(self, x):
        B, C, T, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, C, T, H * W).permute(1, 0, 3, 4, 2).reshape(3, B * T, H * W, C)
        q, k, v = qkv[0], qkv[1], qkv[2]
        o = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(C), -1) @ v  # [BT, N, C]
        return x + self.proj_out(o.reshape(B, T, H, W, C).permute(0, 4, 1, 2, 3))


class Downsample3D(nn.Module):
    def __init__(self, channels, temporal):
        super().__init__()
        self.temporal = temporal
        self.conv = CausalConv3d(channels, channels, 3)

    def forward(self, x):
        B, C, T, H, W = x.shape
        y = x.reshape(B, C, T, H // 2, 2, W // 2, 2).mean((4, 6))
        if self.temporal and T > 1:
            rest = y[:, :, 1:].reshape(B, C, (T - 1) // 2, 2, H // 2, W // 2).mean(3)
            y = torch.cat([y[:, :, :1], rest], 2)
        return self.conv(y)


class Upsample3D(nn.Module):
    def __init__(self, cin, cout, temporal):
        super().__init__()
        self.temporal = temporal
        self.conv = CausalConv3d(cin, cout, 3)

    def forward(self, x):
        if not self.temporal:
            up = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
        else:
            up = F.interpolate(x[:, :, :1], scale_factor=(1, 2, 2), mode="nearest")
            if x.shape[2] > 1:
                up = torch.cat([up, F.interpolate(x[:, :, 1:], scale_factor=(2, 2, 2), mode="nearest")], 2)
        return self.conv(up)


class MidBlock3D(nn.Module):
    def __init__(self, channels, groups, attention):
        super().__init__()
        self.block_1 = ResnetBlock3D(channels, channels, groups)
        self.attn_1 = FrameAttention(channels, groups) if attention else None
        self.block_2 = ResnetBlock3D(channels, channels, groups)

    def forward(self, x):
        h = self.block_1(x)
        if self.attn_1 is not None:
            h = self.attn_1(h)
        return self.block_2(h)


class Level(nn.Module):
    def __init__(self, blocks, downsample=None, upsample=None):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        if downsample is not None:
            self.downsample = downsample
        if upsample is not None:
            self.upsample = upsample


class Encoder3D(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch = [m * c["baseChannels"] for m in c["channelMultipliers"]]
        G, stages = c["numGroups"], int(math.log2(c["temporalCompression"]))
        self.conv_in = CausalConv3d(c["inChannels"], ch[0], 3)
        levels, cin = [], ch[0]
        for i, cout in enumerate(ch):
            blocks = []
            for _ in range(c["numResBlocks"]):
                blocks.append(ResnetBlock3D(cin, cout, G))
                cin = cout
            last = i == len(ch) - 1
            levels.append(Level(blocks, downsample=None if last else Downsample3D(cout, i < stages)))
        self.down = nn.ModuleList(levels)
        self.mid = MidBlock3D(ch[-1], G, c["midAttention"])
        self.norm_out = FrameGroupNorm(groups_for(ch[-1], G), ch[-1], eps=1e-6)
        self.conv_out = CausalConv3d(ch[-1], 2 * c["latentChannels"], 3)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.down:
            for b in level.block:
                h = b(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        return self.conv_out(self.norm_out(self.mid(h), True))


class Decoder3D(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch = [m * c["baseChannels"] for m in c["channelMultipliers"]]
        G, stages = c["numGroups"], int(math.log2(c["temporalCompression"]))
        self.conv_in = CausalConv3d(c["latentChannels"], ch[-1], 3)
        self.mid = MidBlock3D(ch[-1], G, c["midAttention"])
        self.up = nn.ModuleList(
            Level([ResnetBlock3D(ci, ci, G) for _ in range(c["decoderResBlocks"])],
                  upsample=None if i == 0 else Upsample3D(ci, ch[i - 1], i - 1 < stages))
            for i, ci in enumerate(ch))
        self.norm_out = FrameGroupNorm(groups_for(ch[0], G), ch[0], eps=1e-6)
        self.conv_out = CausalConv3d(ch[0], c["inChannels"], 3)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for b in level.block:
                h = b(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(self.norm_out(h, True))


class VideoVAE(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = {"numGroups": 32, "midAttention": False, "decoderResBlocks": config["numResBlocks"] + 1, **config}
        self.config = c
        self.encoder = Encoder3D(c)
        self.decoder = Decoder3D(c)

    def encode(self, x):
        """-> (mean, logvar) [B, Z, T', H', W'], logvar clamped to [-30, 20]."""
        m = self.encoder(x)
        Z = self.config["latentChannels"]
        return m[:, :Z], m[:, Z:].clamp(-30, 20)

    def decode(self, z):
        return self.decoder(z)


def kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) summed per sample, averaged over the batch."""
    return 0.5 * torch.sum(mean.pow(2) + logvar.exp() - 1.0 - logvar) / mean.shape[0]
