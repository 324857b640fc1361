// A word-level tokenizer built from training captions. Ids: 0 = padding, 1 =
// unknown word; real words from 2 in order of first appearance (deterministic).
// encode() pads or truncates to maxLength and returns the padding mask. An empty
// prompt encodes to all padding: the null condition for classifier-free guidance.
import { tensor } from '../creation';
import { Device, Tensor } from '../tensor';

export const PAD_ID = 0;
export const UNK_ID = 1;

export interface TokenizerState {
  vocab: string[];
  maxLength: number;
}

export function words(text: string): string[] {
  return text.toLowerCase().replace(/[^a-z0-9 ]+/g, ' ').split(/\s+/).filter((w) => w.length > 0);
}

export class Tokenizer {
  readonly vocab: string[];
  readonly maxLength: number;
  private readonly index: Map<string, number>;

  constructor(state: TokenizerState) {
    if (!state || !Array.isArray(state.vocab) || state.vocab[0] !== '<pad>' || state.vocab[1] !== '<unk>')
      throw new TypeError("Tokenizer: expected a state { vocab: ['<pad>', '<unk>', ...], maxLength }");
    if (!Number.isInteger(state.maxLength) || state.maxLength < 1)
      throw new RangeError(`Tokenizer: expected a positive integer maxLength, got ${String(state.maxLength)}`);
    this.vocab = [...state.vocab];
    this.maxLength = state.maxLength;
    this.index = new Map(this.vocab.map((w, i) => [w, i]));
  }

  /** Builds the vocabulary from captions; maxLength defaults to the longest caption. */
  static fromCaptions(captions: string[], opts: { maxLength?: number } = {}): Tokenizer {
    if (!Array.isArray(captions) || captions.some((c) => typeof c !== 'string'))
      throw new TypeError('Tokenizer.fromCaptions: expected an array of strings');
    const vocab = ['<pad>', '<unk>'];
    const seen = new Set(vocab);
    let longest = 1;
    for (const c of captions) {
      const ws = words(c);
      longest = Math.max(longest, ws.length);
      for (const w of ws) if (!seen.has(w)) (seen.add(w), vocab.push(w));
    }
    return new Tokenizer({ vocab, maxLength: opts.maxLength ?? longest });
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  ids(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`Tokenizer.encode: expected a string prompt, got ${typeof text}`);
    return words(text).slice(0, this.maxLength).map((w) => this.index.get(w) ?? UNK_ID);
  }

  /** ids int32 [B, L] and mask float32 [B, L] (1 = real token, 0 = padding) on the host. */
  encodeHost(texts: string[]): { ids: Int32Array; mask: Float32Array; shape: [number, number] } {
    if (!Array.isArray(texts)) throw new TypeError('Tokenizer.encode: expected an array of prompts');
    const L = this.maxLength;
    const ids = new Int32Array(texts.length * L), mask = new Float32Array(texts.length * L);
    texts.forEach((t, b) => {
      this.ids(t).forEach((id, i) => {
        ids[b * L + i] = id;
        mask[b * L + i] = 1;
      });
    });
    return { ids, mask, shape: [texts.length, L] };
  }

  /** ids int32 [B, L] and mask float32 [B, L] (1 = real token, 0 = padding) as tensors on `device`. */
  encode(texts: string[], opts: { device?: Device } = {}): { ids: Tensor; mask: Tensor } {
    const h = this.encodeHost(texts);
    const device = opts.device ?? 'cpu';
    return { ids: tensor(h.ids, { shape: h.shape, device }), mask: tensor(h.mask, { shape: h.shape, device }) };
  }

  decode(ids: number[]): string {
    return ids.filter((i) => i !== PAD_ID).map((i) => this.vocab[i] ?? '<unk>').join(' ');
  }

  state(): TokenizerState {
    return { vocab: [...this.vocab], maxLength: this.maxLength };
  }
}
