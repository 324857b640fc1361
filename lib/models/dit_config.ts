// The DiT's configuration: the options, the presets (DiT's S/B/L/XL sizes), the
// conditions a forward takes, and their resolution with every default filled in.
import { Tensor, typeName } from '../tensor';
import { patchTriple, posInt, Triple } from '../checks';
import type { PositionKind } from './patchifier';
import type { TextEncoderConfig, TextEncoding } from './text';

export type DiTConditionKind = 'text' | 'class' | 'none';
export type DiTAttention = 'full' | 'factorized';

export interface DiTConfig {
  hiddenSize: number;
  depth: number;
  numHeads: number;
  /** MLP hidden = floor(hiddenSize * mlpRatio); default 4. */
  mlpRatio?: number;
  /** [pt, ph, pw] or p (= [1, p, p]); default 2. */
  patchSize?: Triple | number;
  /** Latent channels; default 4. */
  inChannels?: number;
  /** Predict the variance too: output channels 2 * inChannels; default true (as DiT). */
  learnSigma?: boolean;
  /** default 'class'. */
  condition?: DiTConditionKind;
  /** Class labels 0..numClasses-1; label numClasses is the null class (guidance). Default 1000. */
  numClasses?: number;
  /** Width of the text tokens ('text'); defaults to the text encoder's width, else hiddenSize. */
  textDim?: number;
  /** A text encoder trained jointly with the DiT ('text'); without it, pass text embeddings. */
  text?: TextEncoderConfig | null;
  /** 'full' 3D attention over all tokens, or 'factorized': even blocks attend within a frame, odd blocks across frames. Default 'full'. */
  attention?: DiTAttention;
  /** default 'sincos3d'. */
  positions?: PositionKind;
}

export type ResolvedDiTConfig = Required<Omit<DiTConfig, 'patchSize' | 'text'>> & { patchSize: Triple; text: TextEncoderConfig | null };

const SIZES: Record<string, [number, number, number]> = { S: [384, 12, 6], B: [768, 12, 12], L: [1024, 24, 16], XL: [1152, 28, 16] };

/**
 * Presets: DiT's class-conditional image models 'DiT-{S,B,L,XL}/{2,4,8}' (patch
 * [1, p, p], 2D sincos positions: facebookresearch/DiT checkpoints load into them),
 * and text-conditioned video models 'DiT-{S,B,L,XL}/1x2x2' (3D sincos, full attention).
 */
export const ditPresets: Readonly<Record<string, Readonly<DiTConfig>>> = (() => {
  const out: Record<string, DiTConfig> = {};
  for (const [name, [hiddenSize, depth, numHeads]] of Object.entries(SIZES)) {
    for (const p of [2, 4, 8])
      out[`DiT-${name}/${p}`] = {
        hiddenSize, depth, numHeads, mlpRatio: 4, patchSize: [1, p, p], inChannels: 4, learnSigma: true,
        condition: 'class', numClasses: 1000, attention: 'full', positions: 'sincos2d',
      };
    out[`DiT-${name}/1x2x2`] = {
      hiddenSize, depth, numHeads, mlpRatio: 4, patchSize: [1, 2, 2], inChannels: 4, learnSigma: false,
      condition: 'text', attention: 'full', positions: 'sincos3d',
    };
  }
  return out;
})();

/**
 * The condition of a forward, one entry per sample:
 * - 'class': labels (int32/int64 tensor [S] or numbers; numClasses = null class);
 * - 'text': { prompts } (needs the model's text encoder; '' = null), { ids, mask }
 *   (tokenized), a TextEncoding { tokens, mask, pooled }, or your own embeddings
 *   { textEmbeddings [S, L, textDim], mask? [S, L] } (pooled = masked mean);
 * - 'none': nothing.
 */
export type DiTCondition =
  | Tensor
  | number[]
  | { labels: Tensor | number[] }
  | { prompts: string[] }
  | { ids: Tensor; mask: Tensor }
  | TextEncoding
  | { textEmbeddings: Tensor; mask?: Tensor }
  | null
  | undefined;

export function resolveConfig(c: DiTConfig): ResolvedDiTConfig {
  const op = 'DiT';
  if (c === null || typeof c !== 'object') throw new TypeError(`${op}: expected a config object (or use DiT.fromPreset), got ${typeName(c)}`);
  const pos = (v: unknown, what: string): number => posInt(op, what, v);
  const condition = c.condition ?? 'class';
  if (!['text', 'class', 'none'].includes(condition)) throw new TypeError(`${op}: expected condition 'text', 'class' or 'none', got ${String(condition)}`);
  const attention = c.attention ?? 'full';
  if (attention !== 'full' && attention !== 'factorized') throw new TypeError(`${op}: expected attention 'full' or 'factorized', got ${String(attention)}`);
  const positions = c.positions ?? 'sincos3d';
  const hiddenSize = pos(c.hiddenSize, 'hiddenSize'), numHeads = pos(c.numHeads, 'numHeads');
  if (hiddenSize % numHeads) throw new RangeError(`${op}: hiddenSize ${hiddenSize} is not divisible by numHeads ${numHeads}`);
  const mlpRatio = c.mlpRatio ?? 4;
  if (typeof mlpRatio !== 'number' || !(mlpRatio > 0)) throw new TypeError(`${op}: expected a positive mlpRatio, got ${String(mlpRatio)}`);
  const text = c.text ?? null;
  if (text && condition !== 'text') throw new Error(`${op}: a text encoder needs condition 'text', got '${condition}'`);
  return {
    hiddenSize, depth: pos(c.depth, 'depth'), numHeads, mlpRatio,
    patchSize: patchTriple(op, c.patchSize ?? 2), inChannels: pos(c.inChannels ?? 4, 'inChannels'),
    learnSigma: c.learnSigma ?? true, condition, numClasses: pos(c.numClasses ?? 1000, 'numClasses'),
    textDim: pos(c.textDim ?? text?.hiddenSize ?? hiddenSize, 'textDim'), text, attention, positions,
  };
}

