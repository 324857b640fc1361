// Prompt adherence of a text-to-video sampler on captioned Moving MNIST: for prompts
// like "the digit 3 moves up and to the left", sample videos, classify each video's
// digit (DigitClassifier, frames voting) and its direction (center-of-mass motion),
// and report how often each matches the prompt. Chance: 10% (digit), 12.5% (direction).
// On several ranks (ts.distributed) the batches are dealt round-robin: every rank
// samples and judges its batches, the judgements (and the videos, for the GIF that rank
// 0 writes) are gathered, and every rank returns the same report.
import { captionFor, DIRECTIONS, Direction } from '../data/moving_mnist';
import { saveVideo } from '../io/video';
import { cat, shapeStr } from '../ops/basic';
import { tensor } from '../creation';
import { allGather } from '../distributed/group';
import { allGatherObject } from '../distributed/objects';
import { Device, Tensor, tidy, typeName } from '../tensor';
import { DataParallel, dataParallel, DistributedOption } from '../train/distributed';
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
   * return a Promise); `batch` counts the batches from 0 (a seed per batch makes the
   * report independent of how the batches are spread over ranks). The evaluator reads
   * and then disposes the returned tensor.
   */
  sampleFn: (captions: string[], batch: number) => Tensor | Promise<Tensor>;
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
  /** Spread the batches over the ranks of ts.distributed (default 'auto'; see the file header). */
  distributed?: DistributedOption;
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
  const dp = dataParallel(op, opts.distributed);
  const classifier = opts.classifier ?? loadDigitClassifier().to(opts.device ?? 'cpu');
  const judgedBy = new Map<number, SampleJudgement[]>(); // by batch
  const kept = new Map<number, Tensor>(); // by batch
  try {
    for (let at = 0, batch = 0; at < jobs.length; at += bs, batch++) {
      if (batch % dp.world !== dp.rank) continue; // another rank's batch
      const part = jobs.slice(at, at + bs);
      const captions = part.map((i) => targets[i].caption);
      const videos = await opts.sampleFn(captions, batch);
      if (!(videos instanceof Tensor)) throw new TypeError(`${op}: expected sampleFn to return a Tensor, got ${typeName(videos)}`);
      try {
        const s = videos.shape;
        if (s.length !== 5 || s[0] !== part.length || s[1] !== 1)
          throw new Error(`${op}: expected sampleFn to return videos [${part.length}, 1, T, H, W], got ${shapeStr(s)}`);
        const digits = classifyVideoDigits(classifier, videos, { threshold: opts.threshold });
        const motions = estimateDirections(videos, { threshold: opts.threshold });
        judgedBy.set(
          batch,
          part.map((ti, k) => {
            const t = targets[ti];
            return {
              digit: digits[k].digit, direction: motions[k].direction,
              digitCorrect: digits[k].digit === t.digit, directionCorrect: motions[k].directionIndex === t.directionIndex,
            };
          }),
        );
        if (opts.gifPath) kept.set(batch, videos.clone());
      } finally {
        videos.dispose();
      }
    }
    if (dp.active) {
      for (const mine of allGatherObject([...judgedBy])) for (const [b, j] of mine) judgedBy.set(b, j);
      if (opts.gifPath) gatherVideos(dp, kept);
    }
    const judged = [...judgedBy.keys()].sort((a, b) => a - b).flatMap((b) => judgedBy.get(b)!);
    let gifPath: string | undefined;
    if (opts.gifPath) {
      const file = opts.gifPath;
      const videos = [...kept.keys()].sort((a, b) => a - b).map((b) => kept.get(b)!);
      if (dp.isMain) tidy(() => saveVideo(cat(videos, 0), file, { fps: opts.fps ?? 8, columns: per > 1 ? per : undefined }));
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
    for (const t of kept.values()) t.dispose();
    if (!opts.classifier) classifier.dispose();
  }
}

/** Adds every rank's videos (by batch) to rank 0's `kept`: host copies, padded to one length and all-gathered. */
function gatherVideos(dp: DataParallel, kept: Map<number, Tensor>): void {
  const mine = [...kept].map(([b, v]) => ({ b, shape: v.shape as number[], values: v.toFloat32Array() }));
  const shapes = allGatherObject(mine.map(({ b, shape }) => ({ b, shape })));
  const numel = (s: number[]): number => s.reduce((a, n) => a * n, 1);
  const L = Math.max(1, ...shapes.map((list) => list.reduce((a, { shape }) => a + numel(shape), 0)));
  const flat = new Float32Array(L);
  let o = 0;
  for (const m of mine) flat.set(m.values, o), (o += m.values.length);
  const local = tensor(flat);
  try {
    const all = allGather(local); // [world, L]
    try {
      if (!dp.isMain) return;
      const values = all.toFloat32Array();
      const device = kept.get(0)?.device ?? 'cpu'; // (rank 0 samples batch 0)
      shapes.forEach((list, r) => {
        let at = r * L;
        for (const { b, shape } of list) {
          if (r !== dp.rank) kept.set(b, tensor(values.subarray(at, at + numel(shape)), { shape, device }));
          at += numel(shape);
        }
      });
    } finally {
      all.dispose();
    }
  } finally {
    local.dispose();
  }
}
