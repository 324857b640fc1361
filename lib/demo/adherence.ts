// Prompt adherence of a text-to-video sampler on captioned Moving MNIST: for prompts
// like "the digit 3 moves up and to the left", sample videos, classify each video's
// digit (DigitClassifier, frames voting) and its direction (center-of-mass motion),
// and report how often each matches the prompt. Chance: 10% (digit), 12.5% (direction).
import { captionFor, DIRECTIONS, Direction } from '../data/moving_mnist';
import { saveVideo } from '../io/video';
import { cat, shapeStr } from '../ops/basic';
import { Device, Tensor, tidy, typeName } from '../tensor';
import { classifyVideoDigits, DigitClassifier, loadDigitClassifier } from './digits';
import { estimateDirections } from './motion';

export interface PromptTarget {
  caption: string;
  digit: number;
  direction: Direction;
  directionIndex: number;
}

/** A prompt as a caption ("the digit 3 moves left") or { digit, direction } (name or index). */
export type PromptInput = string | { digit: number; direction: Direction | number };

export function parsePrompt(p: PromptInput): PromptTarget {
  const op = 'parsePrompt';
  if (typeof p === 'string') {
    const m = /^the digit (\d) moves (.+)$/.exec(p.trim());
    const k = m ? DIRECTIONS.indexOf(m[2] as Direction) : -1;
    if (!m || k < 0)
      throw new Error(`${op}: expected a one-digit caption 'the digit <0-9> moves <${DIRECTIONS.join(' | ')}>', got '${p}'`);
    return { caption: p.trim(), digit: Number(m[1]), direction: DIRECTIONS[k], directionIndex: k };
  }
  if (p === null || typeof p !== 'object') throw new TypeError(`${op}: expected a caption or { digit, direction }, got ${typeName(p)}`);
  const k = typeof p.direction === 'number' ? p.direction : DIRECTIONS.indexOf(p.direction);
  if (!Number.isInteger(p.digit) || p.digit < 0 || p.digit > 9 || !Number.isInteger(k) || k < 0 || k > 7)
    throw new RangeError(`${op}: expected digit 0-9 and one of the 8 directions, got ${JSON.stringify(p)}`);
  return { caption: captionFor([p.digit], [DIRECTIONS[k]]), digit: p.digit, direction: DIRECTIONS[k], directionIndex: k };
}

export interface AdherenceOptions {
  /**
   * Produces one video per caption: [B, 1, T, H, W] in [0, 1] for B captions (may
   * return a Promise). The evaluator reads and then disposes the returned tensor.
   */
  sampleFn: (captions: string[]) => Tensor | Promise<Tensor>;
  prompts: PromptInput[];
  /** Videos per prompt (default 1); each prompt is repeated this many times in the captions. */
  samplesPerPrompt?: number;
  /** Captions per sampleFn call (default 8). */
  batchSize?: number;
  /** Default: loadDigitClassifier() on `device`. */
  classifier?: DigitClassifier;
  /** The device the default classifier judges on (default 'cpu'). */
  device?: Device;
  /** Writes every sample as one grid GIF (a row per prompt when samplesPerPrompt > 1). */
  gifPath?: string;
  fps?: number;
  /** Intensities up to this are background for locating the digit (default 0.1). */
  threshold?: number;
}

export interface SampleJudgement {
  digit: number;
  direction: Direction;
  digitCorrect: boolean;
  directionCorrect: boolean;
}

export interface PromptAdherence {
  prompt: string;
  digit: number;
  direction: Direction;
  samples: SampleJudgement[];
  digitAccuracy: number;
  directionAccuracy: number;
}

export interface AdherenceReport {
  digitAccuracy: number;
  directionAccuracy: number;
  /** Both right in the same video. */
  jointAccuracy: number;
  samples: number;
  chance: { digit: number; direction: number };
  perPrompt: PromptAdherence[];
  gifPath?: string;
}

/** Samples videos for prompts and measures how often the digit and the direction match them. */
export async function evaluatePromptAdherence(opts: AdherenceOptions): Promise<AdherenceReport> {
  const op = 'evaluatePromptAdherence';
  if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: expected options, got ${typeName(opts)}`);
  if (typeof opts.sampleFn !== 'function') throw new TypeError(`${op}: expected sampleFn to be a function (captions) => Tensor, got ${typeName(opts.sampleFn)}`);
  if (!Array.isArray(opts.prompts) || opts.prompts.length === 0) throw new TypeError(`${op}: expected a non-empty array of prompts`);
  const per = opts.samplesPerPrompt ?? 1, bs = opts.batchSize ?? 8;
  if (!Number.isInteger(per) || per < 1) throw new RangeError(`${op}: expected samplesPerPrompt >= 1, got ${String(per)}`);
  if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`${op}: expected batchSize >= 1, got ${String(bs)}`);
  const targets = opts.prompts.map(parsePrompt);
  const jobs = targets.flatMap((t, i) => new Array<number>(per).fill(i));
  const classifier = opts.classifier ?? loadDigitClassifier().to(opts.device ?? 'cpu');
  const judged: SampleJudgement[] = [];
  const kept: Tensor[] = [];
  try {
    for (let at = 0; at < jobs.length; at += bs) {
      const part = jobs.slice(at, at + bs);
      const captions = part.map((i) => targets[i].caption);
      const videos = await opts.sampleFn(captions);
      if (!(videos instanceof Tensor)) throw new TypeError(`${op}: expected sampleFn to return a Tensor, got ${typeName(videos)}`);
      try {
        const s = videos.shape;
        if (s.length !== 5 || s[0] !== part.length || s[1] !== 1)
          throw new Error(`${op}: expected sampleFn to return videos [${part.length}, 1, T, H, W], got ${shapeStr(s)}`);
        const digits = classifyVideoDigits(classifier, videos, { threshold: opts.threshold });
        const motions = estimateDirections(videos, { threshold: opts.threshold });
        part.forEach((ti, k) => {
          const t = targets[ti];
          judged.push({
            digit: digits[k].digit, direction: motions[k].direction,
            digitCorrect: digits[k].digit === t.digit, directionCorrect: motions[k].directionIndex === t.directionIndex,
          });
        });
        if (opts.gifPath) kept.push(videos.clone());
      } finally {
        videos.dispose();
      }
    }
    let gifPath: string | undefined;
    if (opts.gifPath) {
      const file = opts.gifPath;
      tidy(() => saveVideo(cat(kept, 0), file, { fps: opts.fps ?? 8, columns: per > 1 ? per : undefined }));
      gifPath = opts.gifPath;
    }
    const frac = (xs: boolean[]): number => xs.filter((x) => x).length / xs.length;
    const perPrompt = targets.map((t, i) => {
      const samples = judged.filter((_, j) => jobs[j] === i);
      return {
        prompt: t.caption, digit: t.digit, direction: t.direction, samples,
        digitAccuracy: frac(samples.map((s) => s.digitCorrect)), directionAccuracy: frac(samples.map((s) => s.directionCorrect)),
      };
    });
    return {
      digitAccuracy: frac(judged.map((s) => s.digitCorrect)),
      directionAccuracy: frac(judged.map((s) => s.directionCorrect)),
      jointAccuracy: frac(judged.map((s) => s.digitCorrect && s.directionCorrect)),
      samples: judged.length,
      chance: { digit: 0.1, direction: 0.125 },
      perPrompt,
      gifPath,
    };
  } finally {
    for (const t of kept) t.dispose();
    if (!opts.classifier) classifier.dispose();
  }
}
