// A word-level tokenizer built from training captions. Ids: 0 = padding, 1 =
// unknown word; real words from 2 in order of first appearance (deterministic), or, with
// maxVocab / minCount, the most frequent words first. Words are runs of letters, marks
// and digits of any script after NFKC normalization and lowercasing; each Chinese or
// Japanese ideograph or kana is a word of its own (they are written without spaces).
// encode() pads or truncates to maxLength and returns the padding mask. An empty prompt
// (or one of punctuation only) encodes to all padding: the null condition for
// classifier-free guidance. Words outside the vocabulary become the unknown id, and the
// caller is told: tokenize() returns them, encodeHost() returns them per prompt, and the
// tokenizer's onUnknown hook (default: one process warning per new word) hears of them.
import { tensor } from '../creation';
import { Device, Tensor } from '../tensor';

export const PAD_ID = 0;
export const UNK_ID = 1;

export interface TokenizerState {
  vocab: string[];
  maxLength: number;
}

const CJK = /([\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}])/gu;
const WORD = /[\p{L}\p{M}\p{N}]+/gu;

/** The words of a text: lowercased runs of letters, marks and digits (NFKC); one word per CJK character. */
export function words(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().replace(CJK, ' $1 ').match(WORD) ?? [];
}

/** What tokenize() makes of a text: the ids, and what did not make it in as itself. */
export interface Tokenized {
  /** At most maxLength ids (unknown words as UNK_ID). */
  ids: number[];
  /** Words outside the vocabulary (encoded as UNK_ID), in order, repeats kept. */
  unknown: string[];
  /** Words past maxLength, left out. */
  truncated: string[];
}

export class Tokenizer {
  readonly vocab: string[];
  readonly maxLength: number;
  private readonly index: Map<string, number>;
  private readonly warned = new Set<string>();
  /**
   * Hears of words outside the vocabulary and words cut by maxLength each time encodeHost
   * (and so TextEncoder, DiT and sample) meets them. Default: a process warning naming
   * each word the first time this tokenizer meets it. Set null to be silent.
   */
  onUnknown: ((unknown: string[], truncated: string[], text: string) => void) | null = (unknown, truncated, text) => {
    const fresh = [...new Set([...unknown, ...truncated])].filter((w) => !this.warned.has(w));
    if (!fresh.length) return;
    fresh.forEach((w) => this.warned.add(w));
    const parts = [];
    const u = unknown.filter((w) => fresh.includes(w)), t = truncated.filter((w) => fresh.includes(w));
    if (u.length) parts.push(`${[...new Set(u)].map((w) => `'${w}'`).join(', ')} not in the vocabulary of ${this.vocab.length - 2} words (encoded as <unk>)`);
    if (t.length) parts.push(`${t.length} word${t.length > 1 ? 's' : ''} past maxLength ${this.maxLength} left out (${t.map((w) => `'${w}'`).join(', ')})`);
    process.emitWarning(`Tokenizer: in "${text.length > 80 ? `${text.slice(0, 77)}...` : text}": ${parts.join('; ')}`, 'TesseraTokenizerWarning');
  };

  constructor(state: TokenizerState) {
    if (!state || !Array.isArray(state.vocab) || state.vocab[0] !== '<pad>' || state.vocab[1] !== '<unk>')
      throw new TypeError("Tokenizer: expected a state { vocab: ['<pad>', '<unk>', ...], maxLength }");
    if (!Number.isInteger(state.maxLength) || state.maxLength < 1)
      throw new RangeError(`Tokenizer: expected a positive integer maxLength, got ${String(state.maxLength)}`);
    this.vocab = [...state.vocab];
    this.maxLength = state.maxLength;
    this.index = new Map(this.vocab.map((w, i) => [w, i]));
  }

  /**
   * Builds the vocabulary from captions; maxLength defaults to the longest caption. With
   * maxVocab (words kept, the most frequent; ties by first appearance) or minCount (words
   * seen fewer times are left out), the rare words of a real corpus become <unk>.
   */
  static fromCaptions(captions: string[], opts: { maxLength?: number; maxVocab?: number; minCount?: number } = {}): Tokenizer {
    if (!Array.isArray(captions) || captions.some((c) => typeof c !== 'string'))
      throw new TypeError('Tokenizer.fromCaptions: expected an array of strings');
    for (const k of ['maxVocab', 'minCount'] as const)
      if (opts[k] !== undefined && !(Number.isInteger(opts[k]) && opts[k]! >= 1))
        throw new RangeError(`Tokenizer.fromCaptions: expected ${k} to be a positive integer, got ${String(opts[k])}`);
    const counts = new Map<string, number>(); // in order of first appearance
    let longest = 1;
    for (const c of captions) {
      const ws = words(c);
      longest = Math.max(longest, ws.length);
      for (const w of ws) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
    counts.delete('<pad>');
    counts.delete('<unk>');
    let kept = [...counts.keys()];
    if (opts.minCount !== undefined) kept = kept.filter((w) => counts.get(w)! >= opts.minCount!);
    if (opts.maxVocab !== undefined && kept.length > opts.maxVocab) {
      const order = new Map(kept.map((w, i) => [w, i]));
      kept = [...kept].sort((a, b) => counts.get(b)! - counts.get(a)! || order.get(a)! - order.get(b)!).slice(0, opts.maxVocab);
      kept.sort((a, b) => order.get(a)! - order.get(b)!);
    }
    return new Tokenizer({ vocab: ['<pad>', '<unk>', ...kept], maxLength: opts.maxLength ?? longest });
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** The ids of a text, with the words that became <unk> and the words past maxLength. */
  tokenize(text: string): Tokenized {
    if (typeof text !== 'string') throw new TypeError(`Tokenizer.tokenize: expected a string prompt, got ${typeof text}`);
    const ws = words(text);
    const unknown: string[] = [];
    const ids = ws.slice(0, this.maxLength).map((w) => {
      const id = this.index.get(w);
      if (id === undefined || id < 2) unknown.push(w);
      return id === undefined || id < 2 ? UNK_ID : id;
    });
    return { ids, unknown, truncated: ws.slice(this.maxLength) };
  }

  /** The ids of a text (tokenize().ids: unknown words are UNK_ID; see tokenize for which). */
  ids(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`Tokenizer.encode: expected a string prompt, got ${typeof text}`);
    return this.tokenize(text).ids;
  }

  /**
   * ids int32 [B, L] and mask float32 [B, L] (1 = real token, 0 = padding) on the host,
   * with each prompt's unknown and truncated words (also passed to onUnknown).
   */
  encodeHost(texts: string[]): { ids: Int32Array; mask: Float32Array; shape: [number, number]; unknown: string[][]; truncated: string[][] } {
    if (!Array.isArray(texts)) throw new TypeError('Tokenizer.encode: expected an array of prompts');
    const L = this.maxLength;
    const ids = new Int32Array(texts.length * L), mask = new Float32Array(texts.length * L);
    const unknown: string[][] = [], truncated: string[][] = [];
    texts.forEach((t, b) => {
      const r = this.tokenize(t);
      r.ids.forEach((id, i) => {
        ids[b * L + i] = id;
        mask[b * L + i] = 1;
      });
      unknown.push(r.unknown);
      truncated.push(r.truncated);
      if ((r.unknown.length || r.truncated.length) && this.onUnknown) this.onUnknown(r.unknown, r.truncated, t);
    });
    return { ids, mask, shape: [texts.length, L], unknown, truncated };
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
