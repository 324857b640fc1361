// VideoVAE: a causal 3D convolutional VAE that compresses video [B, C, T, H, W] in
// [-1, 1] into a latent [B, Z, T', H', W'] (T' = 1 + (T - 1) / ft, H' = H / fs,
// W' = W / fs) and decodes it back. Dimension letters: B batch, C channels, T frames,
// H height, W width, Z latent channels, ft / fs the temporal / spatial compression.
//
// Causality: every convolution is causal in time (kt - 1 frames of padding before,
// none after), GroupNorm normalizes each frame on its own (over C/G channels x H x W),
// and the optional attention looks within one frame, so output frame t depends only
// on input frames <= t. Temporal down-sampling averages frame pairs (1, 2), (3, 4), ...
// and keeps frame 0 alone (then a causal conv), so frame 0 alone makes latent frame 0
// and T = 1 + k*ft frames map to 1 + k latent frames (17 -> 5 at 4x). The decoder
// mirrors it: latent frame 0 becomes 1 frame, every other latent frame ft frames
// (nearest x2 in time except frame 0, then a causal conv). An image is a video of one
// frame. The same property lets encode/decode run in temporal chunks that hand each
// causal conv the last frames of its input from the previous chunk (CausalCache) and
// reproduce the unchunked result; see vae_tiling.ts.
//
// Parameter names follow the LDM/diffusers VAE: encoder.conv_in,
// encoder.down.0.block.0.norm1, ..., encoder.down.0.downsample.conv, encoder.mid.block_1,
// encoder.norm_out, encoder.conv_out, decoder.up.1.upsample.conv, ...
import { conv3d, gaussianKL, groupNorm, groupNormSiLU, interpolate, scaledDotProductAttention, silu } from '../ops/functional';
import { cat } from '../ops/basic';
import { full, randn, tensor } from '../creation';
import { Conv3d, GroupNorm } from '../nn/layers_more';
import { ModuleList } from '../nn/layers';
import { Module } from '../nn/module';
import { constant, defaultLayerInit } from '../nn/init';
import { loadSafetensors, saveSafetensors } from '../io/safetensors';
import { Device, Tensor, tidy, typeName } from '../tensor';
import { CausalCache, ChunkOptions, decodeChunked, encodeChunked } from './vae_tiling';

export { CausalCache };

export interface VideoVAEConfig {
  /** Video channels (1 gray, 3 RGB). */
  inChannels: number;
  /** Latent channels Z: 4, 8 or 16. */
  latentChannels: number;
  /** Channels of the first (full-resolution) level. */
  baseChannels: number;
  /** Channels per level as multiples of baseChannels; log2(spatialCompression) + 1 levels. */
  channelMultipliers: number[];
  /** Residual blocks per encoder level. */
  numResBlocks: number;
  /** Frames per latent frame after the first: 1, 2 or 4. */
  temporalCompression: number;
  /** Pixels per latent pixel along H and W: 4 or 8. */
  spatialCompression: number;
  /** Residual blocks per decoder level (default numResBlocks + 1, as in LDM). */
  decoderResBlocks?: number;
  /** GroupNorm groups (default 32; the largest divisor of the channels up to this). */
  numGroups?: number;
  /** Per-frame self-attention between the two mid-block residual blocks (default false). */
  midAttention?: boolean;
}

// ---- causal building blocks -------------------------------------------------------------

/** Conv3d with causal zero padding in time and 'same' padding in space; consults a CausalCache. */
export class CausalConv3d extends Conv3d {
  private readonly stride3: [number, number, number];

  constructor(inChannels: number, outChannels: number, kernel: number, stride: [number, number, number] = [1, 1, 1]) {
    super(inChannels, outChannels, kernel, { causal: true, padding: (kernel - 1) >> 1, stride });
    this.stride3 = stride;
  }

  forward(x: Tensor, cache?: CausalCache | null): Tensor {
    const kt = this.kernelSize[0];
    if (!cache || kt === 1) return super.forward(x); // [B, out, T', H', W']
    // Chunked: prepend the previous chunk's trailing input frames (zeros before frame 0)
    // and convolve without temporal padding; keep the frames the next window starts at.
    const [B, C, , H, W] = x.shape;
    const prev = cache.get(this) ?? full([B, C, kt - 1, H, W], 0, { device: x.device });
    const input = cat([prev, x], 2); // [B, C, kt-1+T, H, W]
    const Tin = input.shape[2];
    const n = Math.floor((Tin - kt) / this.stride3[0]) + 1;
    if (n < 1) throw new Error(`CausalConv3d: a chunk of ${x.shape[2]} frames is too short for this layer`);
    const pad = (this.kernelSize[1] - 1) >> 1;
    const out = conv3d(input, this.weight, this.bias, { stride: this.stride3, padding: [0, pad, pad] }); // [B, out, n, H', W']
    cache.set(this, input.slice(2, n * this.stride3[0], Tin).clone());
    return out;
  }
}

/**
 * GroupNorm of each frame on its own (causal; exact under temporal chunking), with the
 * following SiLU fused in when asked: with SiLU, one native pass over x in place (groups
 * per (b, t), no rearranged copy); without, the norm runs on a [B*T, C, H*W] copy whose
 * result comes back contiguous in [B, C, T, H, W].
 */
export class FrameGroupNorm extends GroupNorm {
  forward(x: Tensor, act = false): Tensor {
    const [B, C, T, H, W] = x.shape;
    if (act) return groupNormSiLU(x, this.numGroups, this.weight, this.bias, this.eps, { perFrame: true }); // [B, C, T, H, W]
    if (T === 1) {
      const n = groupNorm(x, this.numGroups, this.weight, this.bias, this.eps); // one frame: the plain norm
      return act ? silu(n) : n; // [B, C, 1, H, W]
    }
    const y = x.permute([0, 2, 1, 3, 4]).reshape([B * T, C, H * W]); // [B*T, C, H*W] (a copy)
    let n = groupNorm(y, this.numGroups, this.weight, this.bias, this.eps); // [B*T, C, H*W]
    if (act) n = silu(n);
    return n.reshape([B, T, C, H, W]).permute([0, 2, 1, 3, 4]).contiguous(); // [B, C, T, H, W]
  }
}

function groupsFor(channels: number, max: number): number {
  let g = Math.min(max, channels);
  while (channels % g) g--;
  return g;
}

/** norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, plus x (through a 1x1x1 conv when channels change). */
export class ResnetBlock3D extends Module {
  readonly norm1: FrameGroupNorm;
  readonly conv1: CausalConv3d;
  readonly norm2: FrameGroupNorm;
  readonly conv2: CausalConv3d;
  readonly ninShortcut: CausalConv3d | null;

  constructor(inChannels: number, outChannels: number, groups: number) {
    super();
    this.norm1 = this.registerModule('norm1', new FrameGroupNorm(groupsFor(inChannels, groups), inChannels, { eps: 1e-6 }));
    this.conv1 = this.registerModule('conv1', new CausalConv3d(inChannels, outChannels, 3));
    this.norm2 = this.registerModule('norm2', new FrameGroupNorm(groupsFor(outChannels, groups), outChannels, { eps: 1e-6 }));
    this.conv2 = this.registerModule('conv2', new CausalConv3d(outChannels, outChannels, 3));
    this.ninShortcut = this.registerModule('nin_shortcut', inChannels === outChannels ? null : new CausalConv3d(inChannels, outChannels, 1));
  }

  forward(x: Tensor, cache?: CausalCache | null): Tensor {
    return tidy(() => {
      let h = this.conv1.forward(this.norm1.forward(x, true), cache); // [B, out, T, H, W]
      h = this.conv2.forward(this.norm2.forward(h, true), cache); // [B, out, T, H, W]
      return h.add(this.ninShortcut ? this.ninShortcut.forward(x) : x); // [B, out, T, H, W]
    });
  }
}

/** Single-head self-attention over the H*W positions of each frame (LDM's AttnBlock, per frame). */
export class FrameAttention extends Module {
  readonly norm: FrameGroupNorm;
  readonly qkv: CausalConv3d;
  readonly projOut: CausalConv3d;

  constructor(readonly channels: number, groups: number) {
    super();
    this.norm = this.registerModule('norm', new FrameGroupNorm(groupsFor(channels, groups), channels, { eps: 1e-6 }));
    this.qkv = this.registerModule('qkv', new CausalConv3d(channels, 3 * channels, 1));
    this.projOut = this.registerModule('proj_out', new CausalConv3d(channels, channels, 1));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [B, C, T, H, W] = x.shape;
      const qkv = this.qkv.forward(this.norm.forward(x)); // [B, 3C, T, H, W]
      const tok = qkv.reshape([B, 3, C, T, H * W]).permute([0, 3, 4, 1, 2]).reshape([B * T, H * W, 3, 1, C]); // [BT, N, 3, 1, C]
      const [q, k, v] = [0, 1, 2].map((i) => tok.slice(2, i, i + 1).reshape([B * T, H * W, 1, C])); // [BT, N, 1, C]
      const o = scaledDotProductAttention(q, k, v); // [BT, N, 1, C]
      const back = o.reshape([B, T, H, W, C]).permute([0, 4, 1, 2, 3]); // [B, C, T, H, W]
      return x.add(this.projOut.forward(back)); // [B, C, T, H, W]
    });
  }
}

/**
 * 2x2 average pooling in H and W, and in time (when temporal) over frame pairs (1, 2),
 * (3, 4), ... with frame 0 kept alone (causal), then a causal conv at the lower
 * resolution. Later temporal chunks start at an odd frame, so their pairs line up.
 */
export class Downsample3D extends Module {
  readonly conv: CausalConv3d;
  constructor(channels: number, readonly temporal: boolean) {
    super();
    this.conv = this.registerModule('conv', new CausalConv3d(channels, channels, 3));
  }
  forward(x: Tensor, cache?: CausalCache | null): Tensor {
    return tidy(() => {
      const [B, C, T, H, W] = x.shape;
      const h = H / 2, w = W / 2;
      let y = x.reshape([B, C, T, h, 2, w, 2]).mean([4, 6]); // [B, C, T, H/2, W/2]
      if (this.temporal) {
        const pairs = (v: Tensor): Tensor => v.reshape([B, C, v.shape[2] / 2, 2, h, w]).mean(3); // [B, C, T/2, h, w]
        if (cache && !cache.first) y = pairs(y);
        else if (T > 1) y = cat([y.slice(2, 0, 1), pairs(y.slice(2, 1, T))], 2); // [B, C, 1 + (T-1)/2, h, w]
      }
      return this.conv.forward(y, cache); // [B, C, T_down, H/2, W/2]
    });
  }
}

/** Nearest x2 in H and W (and in time for every frame but frame 0 when temporal), then a causal conv. */
export class Upsample3D extends Module {
  readonly conv: CausalConv3d;
  constructor(inChannels: number, outChannels: number, readonly temporal: boolean) {
    super();
    this.conv = this.registerModule('conv', new CausalConv3d(inChannels, outChannels, 3));
  }
  forward(x: Tensor, cache?: CausalCache | null): Tensor {
    return tidy(() => {
      const T = x.shape[2];
      let up: Tensor;
      if (!this.temporal) up = interpolate(x, { scaleFactor: [1, 2, 2] }); // [B, C, T, 2H, 2W]
      else if (cache && !cache.first) up = interpolate(x, { scaleFactor: [2, 2, 2] }); // [B, C, 2T, 2H, 2W]
      else {
        const first = interpolate(x.slice(2, 0, 1), { scaleFactor: [1, 2, 2] }); // [B, C, 1, 2H, 2W]
        up = T === 1 ? first : cat([first, interpolate(x.slice(2, 1, T), { scaleFactor: [2, 2, 2] })], 2); // [B, C, 2T-1, 2H, 2W]
      }
      return this.conv.forward(up, cache); // [B, out, T_up, 2H, 2W]
    });
  }
}

/** Residual blocks, optional per-frame attention, residual block. */
export class MidBlock3D extends Module {
  readonly block1: ResnetBlock3D;
  readonly attn1: FrameAttention | null;
  readonly block2: ResnetBlock3D;
  constructor(channels: number, groups: number, attention: boolean) {
    super();
    this.block1 = this.registerModule('block_1', new ResnetBlock3D(channels, channels, groups));
    this.attn1 = this.registerModule('attn_1', attention ? new FrameAttention(channels, groups) : null);
    this.block2 = this.registerModule('block_2', new ResnetBlock3D(channels, channels, groups));
  }
  forward(x: Tensor, cache?: CausalCache | null): Tensor {
    let h = this.block1.forward(x, cache); // [B, C, T, H, W]
    if (this.attn1) h = this.attn1.forward(h);
    return this.block2.forward(h, cache); // [B, C, T, H, W]
  }
}

/** One resolution level: residual blocks, then a resampler (none at the last level). */
class Level extends Module {
  readonly block: ModuleList<ResnetBlock3D>;
  readonly downsample: Downsample3D | null = null;
  readonly upsample: Upsample3D | null = null;
  constructor(blocks: ResnetBlock3D[], resample: Downsample3D | Upsample3D | null) {
    super();
    this.block = this.registerModule('block', new ModuleList(blocks));
    if (resample instanceof Downsample3D) this.downsample = this.registerModule('downsample', resample);
    if (resample instanceof Upsample3D) this.upsample = this.registerModule('upsample', resample);
  }
}

// ---- encoder and decoder ----------------------------------------------------------------

function levelChannels(c: Required<VideoVAEConfig>): number[] {
  return c.channelMultipliers.map((m) => m * c.baseChannels);
}

/** video [B, C, T, H, W] -> moments [B, 2Z, T', H', W'] (mean and logvar stacked on channels). */
export class Encoder3D extends Module {
  readonly convIn: CausalConv3d;
  readonly down: ModuleList<Level>;
  readonly mid: MidBlock3D;
  readonly normOut: FrameGroupNorm;
  readonly convOut: CausalConv3d;

  constructor(c: Required<VideoVAEConfig>) {
    super();
    const ch = levelChannels(c), G = c.numGroups;
    const temporalStages = Math.log2(c.temporalCompression);
    this.convIn = this.registerModule('conv_in', new CausalConv3d(c.inChannels, ch[0], 3));
    const levels: Level[] = [];
    let cin = ch[0];
    ch.forEach((cout, i) => {
      const blocks: ResnetBlock3D[] = [];
      for (let j = 0; j < c.numResBlocks; j++, cin = cout) blocks.push(new ResnetBlock3D(cin, cout, G));
      const last = i === ch.length - 1;
      levels.push(new Level(blocks, last ? null : new Downsample3D(cout, i < temporalStages)));
      cin = cout;
    });
    this.down = this.registerModule('down', new ModuleList(levels));
    const top = ch[ch.length - 1];
    this.mid = this.registerModule('mid', new MidBlock3D(top, G, c.midAttention));
    this.normOut = this.registerModule('norm_out', new FrameGroupNorm(groupsFor(top, G), top, { eps: 1e-6 }));
    this.convOut = this.registerModule('conv_out', new CausalConv3d(top, 2 * c.latentChannels, 3));
  }

  forward(x: Tensor, cache?: CausalCache | null): Tensor {
    let h = this.convIn.forward(x, cache); // [B, C0, T, H, W]
    for (const level of this.down) {
      for (const b of level.block) h = b.forward(h, cache); // [B, Ci, T_i, H_i, W_i]
      if (level.downsample) h = tidy(() => level.downsample!.forward(h, cache)); // [B, Ci, T_i+1, H_i/2, W_i/2]
    }
    h = this.mid.forward(h, cache); // [B, Ctop, T', H', W']
    return tidy(() => this.convOut.forward(this.normOut.forward(h, true), cache)); // [B, 2Z, T', H', W']
  }
}

/** latent [B, Z, T', H', W'] -> video [B, C, T, H, W]. */
export class Decoder3D extends Module {
  readonly convIn: CausalConv3d;
  readonly mid: MidBlock3D;
  readonly up: ModuleList<Level>;
  readonly normOut: FrameGroupNorm;
  readonly convOut: CausalConv3d;

  constructor(c: Required<VideoVAEConfig>) {
    super();
    const ch = levelChannels(c), G = c.numGroups, L = ch.length;
    const temporalStages = Math.log2(c.temporalCompression);
    const top = ch[L - 1];
    this.convIn = this.registerModule('conv_in', new CausalConv3d(c.latentChannels, top, 3));
    this.mid = this.registerModule('mid', new MidBlock3D(top, G, c.midAttention));
    // up.i mirrors down.i; level i > 0 ends with an upsampler into level i - 1's channels
    // (temporal where the encoder's down.(i-1) was temporal), so the channel drop happens
    // before the work at the higher resolution.
    const levels: Level[] = ch.map((ci, i) => {
      const blocks = Array.from({ length: c.decoderResBlocks }, () => new ResnetBlock3D(ci, ci, G));
      return new Level(blocks, i === 0 ? null : new Upsample3D(ci, ch[i - 1], i - 1 < temporalStages));
    });
    this.up = this.registerModule('up', new ModuleList(levels));
    this.normOut = this.registerModule('norm_out', new FrameGroupNorm(groupsFor(ch[0], G), ch[0], { eps: 1e-6 }));
    this.convOut = this.registerModule('conv_out', new CausalConv3d(ch[0], c.inChannels, 3));
  }

  forward(z: Tensor, cache?: CausalCache | null): Tensor {
    let h = this.convIn.forward(z, cache); // [B, Ctop, T', H', W']
    h = this.mid.forward(h, cache); // [B, Ctop, T', H', W']
    for (let i = this.up.length - 1; i >= 0; i--) {
      const level = this.up.at(i);
      for (const b of level.block) h = b.forward(h, cache); // [B, Ci, T_i, H_i, W_i]
      if (level.upsample) h = level.upsample.forward(h, cache); // [B, C(i-1), T_i-1, 2H_i, 2W_i]
    }
    return tidy(() => this.convOut.forward(this.normOut.forward(h, true), cache)); // [B, C, T, H, W]
  }
}

// ---- posterior ----------------------------------------------------------------------------

/** The encoder's diagonal Gaussian N(mean, exp(logvar)) over latents [B, Z, T', H', W']. */
export class DiagonalGaussian {
  constructor(readonly mean: Tensor, readonly logvar: Tensor) {}

  /** mean + exp(logvar / 2) * eps, eps ~ N(0, I) from the seeded generator (differentiable). */
  sample(): Tensor {
    return tidy(() => this.mean.add(this.logvar.mul(0.5).exp().mul(randn(this.mean.shape as number[], { device: this.mean.device }))));
  }
  /** The mean (the latent used for deterministic encoding). */
  mode(): Tensor {
    return this.mean;
  }
  /** KL(q || N(0, I)) summed over the latent elements and averaged over the batch (a scalar). */
  kl(): Tensor {
    return gaussianKL(this.mean, this.logvar);
  }
  dispose(): void {
    this.mean.dispose();
    this.logvar.dispose();
  }
}

// ---- the VAE ------------------------------------------------------------------------------

function checkConfig(cfg: VideoVAEConfig): Required<VideoVAEConfig> {
  const op = 'VideoVAE';
  if (cfg === null || typeof cfg !== 'object') throw new TypeError(`${op}: expected a config object, got ${typeName(cfg)}`);
  const posInt = (v: unknown, name: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new RangeError(`${op}: expected ${name} to be a positive integer, got ${String(v)}`);
    return v;
  };
  const oneOf = (v: unknown, name: string, allowed: number[]): number => {
    if (!allowed.includes(v as number)) throw new RangeError(`${op}: expected ${name} to be one of ${allowed.join(', ')}, got ${String(v)}`);
    return v as number;
  };
  const c: Required<VideoVAEConfig> = {
    inChannels: posInt(cfg.inChannels, 'inChannels'),
    latentChannels: oneOf(cfg.latentChannels, 'latentChannels', [4, 8, 16]),
    baseChannels: posInt(cfg.baseChannels, 'baseChannels'),
    channelMultipliers: cfg.channelMultipliers,
    numResBlocks: posInt(cfg.numResBlocks, 'numResBlocks'),
    temporalCompression: oneOf(cfg.temporalCompression, 'temporalCompression', [1, 2, 4]),
    spatialCompression: oneOf(cfg.spatialCompression, 'spatialCompression', [4, 8]),
    decoderResBlocks: posInt(cfg.decoderResBlocks ?? cfg.numResBlocks + 1, 'decoderResBlocks'),
    numGroups: posInt(cfg.numGroups ?? 32, 'numGroups'),
    midAttention: cfg.midAttention ?? false,
  };
  const levels = Math.log2(c.spatialCompression) + 1;
  if (!Array.isArray(c.channelMultipliers) || c.channelMultipliers.length !== levels || !c.channelMultipliers.every((m) => Number.isInteger(m) && m >= 1))
    throw new RangeError(
      `${op}: expected channelMultipliers to be ${levels} positive integers (log2(spatialCompression) + 1 levels), got ${JSON.stringify(cfg.channelMultipliers)}`,
    );
  if (typeof c.midAttention !== 'boolean') throw new TypeError(`${op}: expected midAttention to be a boolean, got ${typeName(c.midAttention)}`);
  return { ...c, channelMultipliers: [...c.channelMultipliers] };
}

export interface EncodeOptions extends ChunkOptions {}

const CONFIG_KEY = 'tessera.vae.config';

export class VideoVAE extends Module {
  readonly config: Required<VideoVAEConfig>;
  readonly encoder: Encoder3D;
  readonly decoder: Decoder3D;

  /** opts.device: where the model lives (initialized on the CPU, so every device starts from the same weights). */
  constructor(config: VideoVAEConfig, opts: { device?: Device } = {}) {
    super();
    this.config = checkConfig(config);
    this.encoder = this.registerModule('encoder', new Encoder3D(this.config));
    this.decoder = this.registerModule('decoder', new Decoder3D(this.config));
    this.initializeWeights();
    if (opts.device !== undefined && opts.device !== 'cpu') this.to(opts.device);
  }

  /**
   * All init decisions: every conv PyTorch's default (kaiming-uniform, a = sqrt(5));
   * norms weight 1, bias 0; the encoder's output conv scaled by 0.1 with its logvar bias
   * at -6 (std 0.05): the posterior starts nearly deterministic, as it ends with a small
   * KL weight, instead of drowning the early means in unit-variance noise the decoder
   * cannot learn through; the decoder's output conv scaled by 0.1, so the first
   * reconstructions sit near its bias (trainVAE sets it to the data mean).
   */
  initializeWeights(): void {
    for (const [, m] of this.namedModules()) {
      if (m instanceof Conv3d) defaultLayerInit(m.weight, m.bias);
      else if (m instanceof GroupNorm) (constant(m.weight!, 1), constant(m.bias!, 0));
    }
    for (const conv of [this.encoder.convOut, this.decoder.convOut]) {
      conv.weight.copy_(tidy(() => conv.weight.mul(0.1)));
      constant(conv.bias!, 0);
    }
    const Z = this.config.latentChannels;
    tidy(() => this.encoder.convOut.bias!.slice(0, Z, 2 * Z).copy_(full([Z], -6, { device: this.encoder.convOut.bias!.device })));
  }

  get temporalCompression(): number {
    return this.config.temporalCompression;
  }
  get spatialCompression(): number {
    return this.config.spatialCompression;
  }

  /** Frame counts this model accepts: 1 + k * temporalCompression. */
  allowedFrames(upTo = 33): number[] {
    const out: number[] = [];
    for (let t = 1; t <= upTo; t += this.config.temporalCompression) out.push(t);
    return out;
  }

  /** The latent shape for a video shape [B, C, T, H, W] (validated). */
  latentShape(videoShape: readonly number[]): number[] {
    this.checkShape(videoShape, 'latentShape');
    const [B, , T, H, W] = videoShape;
    const { temporalCompression: ft, spatialCompression: fs, latentChannels: Z } = this.config;
    return [B, Z, 1 + (T - 1) / ft, H / fs, W / fs];
  }

  /** @internal Throws a clear error unless shape is a video this model can encode. */
  checkShape(shape: readonly number[], op: string): void {
    const { inChannels: C, temporalCompression: ft, spatialCompression: fs } = this.config;
    const s = `[${shape.join(', ')}]`;
    if (shape.length !== 5) throw new Error(`VideoVAE.${op}: expected a video [B, C, T, H, W] (an image is T = 1), got shape ${s}`);
    if (shape[1] !== C) throw new Error(`VideoVAE.${op}: expected ${C} channel${C > 1 ? 's' : ''}, got ${shape[1]} (shape ${s})`);
    const T = shape[2];
    if (T < 1 || (T - 1) % ft)
      throw new Error(
        `VideoVAE.${op}: expected 1 + k*${ft} frames (${this.allowedFrames().join(', ')}, ...) because frame 0 is encoded alone, got ${T} frames`,
      );
    if (shape[3] % fs || shape[4] % fs || shape[3] < fs || shape[4] < fs)
      throw new Error(`VideoVAE.${op}: expected height and width to be multiples of ${fs}, got ${shape[3]}x${shape[4]}`);
  }

  /** video [B, C, T, H, W] in [-1, 1] -> the posterior over latents [B, Z, T', H', W']. */
  encode(video: Tensor, opts: EncodeOptions = {}): DiagonalGaussian {
    if (!(video instanceof Tensor)) throw new TypeError(`VideoVAE.encode: expected a Tensor, got ${typeName(video)}`);
    this.checkShape(video.shape, 'encode');
    const moments =
      opts.temporalChunk !== undefined || opts.tile !== undefined
        ? encodeChunked(this, video, opts) // [B, 2Z, T', H', W']
        : this.encoder.forward(video); // [B, 2Z, T', H', W']
    const [mean, logvar] = tidy(() => {
      const Z = this.config.latentChannels;
      const m = moments.slice(1, 0, Z).contiguous(); // [B, Z, T', H', W']
      const lv = moments.slice(1, Z, 2 * Z); // [B, Z, T', H', W']
      return [m, lv.clamp(-30, 20)]; // logvar clamped to [-30, 20]
    });
    moments.dispose();
    return new DiagonalGaussian(mean, logvar);
  }

  /** latent [B, Z, T', H', W'] -> video [B, C, 1 + (T'-1)*ft, H'*fs, W'*fs] (about [-1, 1]). */
  decode(latent: Tensor, opts: EncodeOptions = {}): Tensor {
    if (!(latent instanceof Tensor)) throw new TypeError(`VideoVAE.decode: expected a Tensor, got ${typeName(latent)}`);
    const Z = this.config.latentChannels;
    if (latent.rank !== 5 || latent.shape[1] !== Z)
      throw new Error(`VideoVAE.decode: expected a latent [B, ${Z}, T', H', W'], got shape [${latent.shape.join(', ')}]`);
    if (opts.temporalChunk !== undefined || opts.tile !== undefined) return decodeChunked(this, latent, opts);
    return this.decoder.forward(latent); // [B, C, T, H, W]
  }

  /** Writes the state dict to a safetensors file, with the config in its metadata. */
  save(file: string): void {
    saveSafetensors(file, this.stateDict(), { [CONFIG_KEY]: JSON.stringify(this.config) });
  }

  /** A model from a file written by save(). */
  static load(file: string, opts: { device?: Device } = {}): VideoVAE {
    const st = loadSafetensors(file, { device: opts.device });
    try {
      const json = st.metadata[CONFIG_KEY];
      if (!json) throw new Error(`VideoVAE.load: ${file} has no '${CONFIG_KEY}' metadata (was it written by VideoVAE.save?)`);
      const model = new VideoVAE(JSON.parse(json) as VideoVAEConfig, { device: opts.device });
      model.loadStateDict(st.tensors);
      return model;
    } finally {
      for (const t of Object.values(st.tensors)) t.dispose();
    }
  }

  /** Encode, sample (or take the mean) and decode: { recon, posterior }. */
  forward(video: Tensor, opts: { sample?: boolean } = {}): { recon: Tensor; posterior: DiagonalGaussian } {
    const posterior = this.encode(video);
    const z = opts.sample === false ? posterior.mode() : posterior.sample(); // [B, Z, T', H', W']
    return { recon: this.decode(z), posterior }; // [B, C, T, H, W]
  }
}

// ---- value ranges -------------------------------------------------------------------------

/** [0, 1] -> [-1, 1] (the model's range). */
export function toModelRange(x: Tensor): Tensor {
  return x.mul(2).sub(1);
}
/** [-1, 1] -> [0, 1], clamped. */
export function fromModelRange(x: Tensor): Tensor {
  return tidy(() => x.add(1).mul(0.5).clamp(0, 1));
}
/** A model-range video -> uint8 [0, 255] (rounded, clamped), same shape. */
export function toUint8(x: Tensor): Tensor {
  const v = tidy(() => fromModelRange(x)).toFloat32Array();
  const out = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = Math.round(v[i] * 255);
  return tensor(out, { shape: x.shape as number[], dtype: 'uint8' });
}
/** uint8 [0, 255] (a tensor or bytes with a shape) -> float32 in [-1, 1]. */
export function fromUint8(x: Tensor | Uint8Array, shape?: number[]): Tensor {
  const bytes = x instanceof Tensor ? (x.dataSync() as Uint8Array) : x;
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`fromUint8: expected a uint8 tensor or a Uint8Array, got ${typeName(x)}`);
  const f = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) f[i] = bytes[i] / 127.5 - 1;
  return tensor(f, { shape: shape ?? (x instanceof Tensor ? (x.shape as number[]) : [bytes.length]) });
}

// ---- presets --------------------------------------------------------------------------------

/**
 * demo: 1-channel 17x64x64 Moving MNIST clips -> 4 x 5x16x16 latents (4x time, 4x space),
 *   small enough to train on two CPU cores in minutes.
 * sora: the Sora / CogVideoX layout (3 channels, 4x time, 8x space, 16 latent channels,
 *   per-frame attention in the mid blocks) at a width a CPU can still train; widen
 *   baseChannels for a GPU (CogVideoX uses 128).
 */
export const vaePresets = {
  demo: {
    inChannels: 1, latentChannels: 4, baseChannels: 16, channelMultipliers: [1, 2, 4], numResBlocks: 1, decoderResBlocks: 1,
    temporalCompression: 4, spatialCompression: 4,
  },
  sora: {
    inChannels: 3, latentChannels: 16, baseChannels: 32, channelMultipliers: [1, 2, 4, 4], numResBlocks: 1, decoderResBlocks: 1,
    temporalCompression: 4, spatialCompression: 8, midAttention: true,
  },
} satisfies Record<string, VideoVAEConfig>;
