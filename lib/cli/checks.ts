// Checks the CLI makes before it starts work: that --out can be written (and an .mp4
// encoded), that the sizes asked for fit the machine's memory, and that every word of a
// prompt is one the model knows. Each failure is one CliError naming the flag (or the
// environment variable) the user set, what was expected and what came.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { findFfmpeg } from '../io/video';
import { DiT } from '../models/dit';
import { Tokenizer, words } from '../models/tokenizer';
import type { VideoVAEConfig } from '../models/vae';
import { info } from '../runtime';
import { Device } from '../tensor';
import { CliError } from './options';

/**
 * Creates `dir` if needed and writes (then removes) a probe file in it (the one test that
 * holds for root too): a CliError starting with `label` if it cannot.
 */
export function checkWritableDir(dir: string, label = `--out ${dir}`, where = 'there'): void {
  const probe = path.join(dir, `.tessera-write-test-${process.pid}`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.closeSync(fs.openSync(probe, 'wx'));
    fs.rmSync(probe, { force: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new CliError(`${label}: cannot write ${where} (${err.code ?? 'error'}: ${err.message.replace(/^\w+: /, '').replace(/, \w+ '.*'$/, '')})`);
  }
}

/** An output video file: a known type, a writable folder, and ffmpeg for .mp4 and .webm. */
export function checkOutputVideo(file: string, flag = '--out'): void {
  const ext = path.extname(file).toLowerCase();
  if (!['.gif', '.png', '.mp4', '.webm'].includes(ext)) throw new CliError(`${flag} ${file}: expected a .gif, .png, .mp4 or .webm file`);
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new CliError(`${flag} ${file}: is a directory; expected a file name`);
  const dir = path.dirname(path.resolve(file));
  checkWritableDir(dir, `${flag} ${file}`, `to its folder ${dir}`);
  if ((ext === '.mp4' || ext === '.webm') && !findFfmpeg().ffmpeg)
    throw new CliError(`${flag} ${file}: writing ${ext} needs ffmpeg (${process.env.TESSERA_FFMPEG || 'ffmpeg'} not found; Debian/Ubuntu: apt-get install ffmpeg); write a .gif or .png instead`);
}

// ---- memory -------------------------------------------------------------------------------

/** Bytes as text: "123 MB", "4.2 GB", "629 GB", "1.3e+03 TB". */
export function formatBytes(b: number): string {
  if (b < 1e9) return `${Math.max(1, Math.round(b / 1e6))} MB`;
  if (b < 1e12) return `${(b / 1e9).toPrecision(b < 1e10 ? 2 : 3)} GB`;
  return `${(b / 1e12).toPrecision(3)} TB`;
}

/** The memory of `device`: the machine's RAM for the CPU (and simulated cpu:N), the GPU's for cuda:N. */
export function deviceMemory(device: Device | undefined): number {
  const d = device ?? 'cpu';
  if (d.startsWith('cuda')) {
    const n = Number(d.split(':')[1] ?? 0);
    const gpu = info().cuda.devices[n];
    if (gpu) return gpu.totalMemory;
  }
  return os.totalmem();
}

// Activation bytes per (pixel x base channel), measured with memory().peakBytes on the demo
// VAEs (quick: base 8, multipliers [1, 1, 2]; full: base 16, [1, 2, 4]) for 1-2 clips of
// 9-17 frames at 32-64 pixels: training (forward + backward) 17.2 to 22.3 x 4 bytes,
// decoding without gradients 6.4 to 6.9 x 4 bytes. The estimates use the low ends, so a
// refusal means the run could not have fit.
const VAE_TRAIN_PER_PIXEL_CHANNEL = 16 * 4;
const VAE_DECODE_PER_PIXEL_CHANNEL = 6 * 4;

/** The least memory a VAE training step of B clips frames x h x w needs (activations kept for backward). */
export function vaeTrainBytes(config: VideoVAEConfig, B: number, frames: number, h: number, w: number): number {
  return B * frames * h * w * (config.baseChannels * VAE_TRAIN_PER_PIXEL_CHANNEL + 2 * 4 * config.inChannels); // + the batch on the host and the device
}

/**
 * The least memory sampling B clips of T x H x W needs: the VAE decoder's activations and
 * the video's copies (decode, scale, clamp) in float32, and the DiT's tokens for the two
 * halves of classifier-free guidance (a few [2B, N, hidden] tensors per block).
 */
export function sampleBytes(vae: VideoVAEConfig, dit: { hiddenSize: number; patchSize: number[] }, B: number, T: number, H: number, W: number): number {
  const pixels = B * T * H * W;
  const ft = vae.temporalCompression, fs_ = vae.spatialCompression;
  const tokens = (1 + Math.floor((T - 1) / ft)) * Math.floor(H / fs_) * Math.floor(W / fs_) / (dit.patchSize[0] * dit.patchSize[1] * dit.patchSize[2]);
  return pixels * (vae.baseChannels * VAE_DECODE_PER_PIXEL_CHANNEL + 4 * 4 * vae.inChannels) + 2 * B * tokens * dit.hiddenSize * 4 * 4;
}

/** A CliError when `bytes` exceed the memory of `device`: `what` says what needs it and which flags set it. */
export function checkMemory(bytes: number, what: string, device: Device | undefined): void {
  const have = deviceMemory(device);
  if (!(bytes <= have))
    throw new CliError(`${what} needs about ${formatBytes(bytes)} of memory; ${device && device.startsWith('cuda') ? `${device} has` : 'this machine has'} ${formatBytes(have)}`);
}

// ---- prompts ------------------------------------------------------------------------------

/**
 * Every prompt must be words the model knows: an empty prompt (no words), a word outside
 * the model's vocabulary (any script: the tokenizer reads letters of every language) or
 * more words than the model reads is refused with one line naming them. One rule for
 * `sample` and `eval`: a model cannot follow words it never saw, so they are not dropped.
 */
export function checkPrompts(dit: DiT, prompts: string[], flag = '--prompt'): void {
  const state = dit.config.text?.tokenizer;
  if (!state) return; // a class or unconditional model: no prompts to read
  const tok = new Tokenizer(state);
  const known = tok.vocab.slice(2); // (ids 0 and 1: padding, unknown)
  const vocab = `${known.length} words: ${known.slice(0, 24).join(', ')}${known.length > 24 ? ', ...' : ''}`;
  for (const p of prompts) {
    const ws = words(p);
    if (!ws.length) throw new CliError(`${flag} '${p}': no words to condition on (an empty prompt is the unconditional one); the model knows ${vocab}`);
    const r = tok.tokenize(p);
    if (r.unknown.length) {
      const u = [...new Set(r.unknown)];
      throw new CliError(`${flag} '${p}': the model does not know ${u.map((w) => `'${w}'`).join(', ')} (it would read ${u.length > 1 ? 'them' : 'it'} as <unk>); it knows ${vocab}`);
    }
    if (r.truncated.length) throw new CliError(`${flag} '${p}': ${ws.length} words, more than the ${tok.maxLength} the model reads (it would drop ${r.truncated.map((w) => `'${w}'`).join(', ')})`);
  }
}
