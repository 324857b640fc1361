// The CLI's bad inputs as a table, in the manner of the op table: one row per bad input
// (a flag, a --config value, a file, an environment variable), each with the exit code
// and the words its one line must hold. Every row runs the real CLI in a child process
// (several at a time); almost all of them fail at argument checking, before any work.
// A row passes when: the exit code is the expected one, stderr's last line holds every
// expected word, no other stderr line is anything but progress, and nothing is a stack
// trace.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { manualSeed } from '../../lib/creation';
import { createDemoDiT, demoDiTSettings, saveDemoDiT } from '../../lib/demo/dit_stage';
import { demoVAESettings } from '../../lib/demo/vae_stage';
import { movingMnistDataset } from '../../lib/data/dataset';
import { MovingMNIST } from '../../lib/data/moving_mnist';
import { VideoVAE } from '../../lib/models/vae';
import { saveCheckpoint } from '../../lib/train/checkpoint';
import { trainVAE } from '../../lib/train/vae';
import { setNumThreads } from '../../lib/runtime';

const CLI = path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cli-table-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const at = (...p: string[]): string => path.join(tmp, ...p);
const S = 'the digit 7 moves right';
const M = at('model'); // a tiny demo model: quick VAE + quick text DiT
const gif = at('x.gif');
const sample = (...args: string[]): string[] => ['sample', '--checkpoint', M, '--prompt', S, '--out', gif, ...args];
const evalIn = (...args: string[]): string[] => ['eval', '--checkpoint', M, '--out', at('eval'), ...args];
const noFfmpeg = { TESSERA_FFMPEG: at('no-ffmpeg'), TESSERA_FFPROBE: at('no-ffprobe') };

interface Row {
  /** Arguments after the CLI (a config object becomes --config <file>). */
  args: string[];
  code: number;
  /** Words stderr's last line must hold (strings as they are, or patterns). */
  words: (string | RegExp)[];
  env?: Record<string, string>;
  config?: unknown;
}

// prettier-ignore
const rows: Row[] = [
  // ---- commands and options commander checks
  { args: ['frobnicate'], code: 1, words: ["error: unknown command 'frobnicate'"] },
  { args: ['info', '--frobnicate'], code: 1, words: ["error: unknown option '--frobnicate'"] },
  { args: ['sample', '--out'], code: 1, words: ["option '--out <file>' argument missing"] },
  { args: ['train-vae', '--precision'], code: 1, words: ["option '--precision <p>' argument missing"] },
  // ---- common flags
  { args: ['info', '--threads', 'x'], code: 1, words: ["--threads expects a positive integer, got 'x'"] },
  { args: ['info', '--threads', '0'], code: 1, words: ["--threads expects a positive integer, got '0'"] },
  { args: ['info', '--threads', '1.5'], code: 1, words: ["--threads expects a positive integer, got '1.5'"] },
  { args: ['info', '--threads', ''], code: 1, words: ["--threads expects a positive integer, got ''"] },
  { args: ['info', '--threads', '100000'], code: 1, words: ['--threads expects at most', '8 per hardware thread', "got '100000'"] },
  { args: ['info', '--seed', '-1'], code: 1, words: ["--seed expects a non-negative integer, got '-1'"] },
  { args: ['info', '--seed', '1e300'], code: 1, words: ["--seed expects a non-negative integer, got '1e300'"] },
  { args: ['info', '--seed', '0x10'], code: 1, words: ["--seed expects a non-negative integer, got '0x10'"] },
  { args: ['info', '--seed', 'Infinity'], code: 1, words: ["--seed expects a non-negative integer, got 'Infinity'"] },
  { args: ['info', '--device', 'tpu'], code: 1, words: ["--device expects cpu, cuda, cuda:N", "got 'tpu'"] },
  { args: ['info', '--device', 'cpu:3'], code: 1, words: ['--device cpu:3', 'TESSERA_HOST_DEVICES=4'] },
  { args: ['info', '--device', 'cpu:1'], code: 1, words: ['--device cpu:1', 'TESSERA_HOST_DEVICES=2', 'none are set'], env: { TESSERA_HOST_DEVICES: '1' } },
  { args: ['info', '--device', 'cuda:7'], code: 1, words: ['--device cuda:7', /no CUDA device available|this machine has \d+ CUDA device/] },
  { args: ['bench', '--reps', '0'], code: 1, words: ["--reps expects a positive integer, got '0'"] },
  { args: ['bench', '--filter', 'zzz-no-such-case'], code: 2, words: ["--filter 'zzz-no-such-case' matches no case"] },
  // ---- demo
  { args: ['demo', '--budget', '0'], code: 1, words: ["--budget expects a positive number, got '0'"] },
  { args: ['demo', '--budget', 'soon'], code: 1, words: ["--budget expects a positive number, got 'soon'"] },
  { args: ['demo', '--budget', '1e300'], code: 1, words: ['--budget expects at most 30,000', "got '1e300'"] },
  { args: ['demo', '--precision', 'fp16'], code: 1, words: ["--precision expects fp32 or bf16, got 'fp16'"] },
  { args: ['demo', '--checkpoint-minutes', '0'], code: 1, words: ["--checkpoint-minutes expects a positive number, got '0'"] },
  { args: ['demo', '--out', '/sys/tessera-demo'], code: 1, words: ['--out /sys/tessera-demo: cannot write there'] },
  // ---- train-vae: flags
  { args: ['train-vae', '--minutes', 'soon'], code: 1, words: ["--minutes expects a positive number, got 'soon'"] },
  { args: ['train-vae', '--minutes', '0'], code: 1, words: ["--minutes expects a positive number, got '0'"] },
  { args: ['train-vae', '--minutes', '-5'], code: 1, words: ["--minutes expects a positive number, got '-5'"] },
  { args: ['train-vae', '--minutes', 'Infinity'], code: 1, words: ["--minutes expects a positive number, got 'Infinity'"] },
  { args: ['train-vae', '--minutes', '1e300'], code: 1, words: ['--minutes expects at most 30,000', "got '1e300'"] },
  { args: ['train-vae', '--steps', '0'], code: 1, words: ["--steps expects a positive integer, got '0'"] },
  { args: ['train-vae', '--steps', '1.5'], code: 1, words: ["--steps expects a positive integer, got '1.5'"] },
  { args: ['train-vae', '--steps', '1e8'], code: 1, words: ['--steps expects at most 10,000,000', "got '1e8'"] },
  { args: ['train-vae', '--steps', '1e12'], code: 1, words: ['--steps expects at most 10,000,000', "got '1e12'"] },
  { args: ['train-vae', '--minutes', '2', '--steps', '5'], code: 1, words: ['--minutes 2 and --steps 5 are exclusive'] },
  { args: ['train-vae', '--batch', '0'], code: 1, words: ["--batch expects a positive integer, got '0'"] },
  { args: ['train-vae', '--batch', '100000'], code: 1, words: ['--batch 100000', 'full VAE', 'needs about', 'TB of memory', 'this machine has'] },
  { args: ['train-vae', '--quick', '--batch', '100000'], code: 1, words: ['--batch 100000', 'quick VAE', 'of memory'] },
  { args: ['train-vae', '--batch', '1e9'], code: 1, words: ['--batch 1000000000', 'of memory'] },
  { args: ['train-vae', '--lr', '0'], code: 1, words: ["--lr expects a positive number, got '0'"] },
  { args: ['train-vae', '--lr', 'NaN'], code: 1, words: ["--lr expects a positive number, got 'NaN'"] },
  { args: ['train-vae', '--eval', '0'], code: 1, words: ["--eval expects a positive integer, got '0'"] },
  { args: ['train-vae', '--eval', '1000000'], code: 1, words: ['--eval expects at most 10,000', "got '1000000'"] },
  { args: ['train-vae', '--checkpoint-minutes', 'x'], code: 1, words: ["--checkpoint-minutes expects a positive number, got 'x'"] },
  { args: ['train-vae', '--precision', 'fp8'], code: 1, words: ["--precision expects fp32 or bf16, got 'fp8'"] },
  { args: ['train-vae', '--fps', '0', '--data', at('videos')], code: 1, words: ["--fps expects a positive number, got '0'"] },
  { args: ['train-vae', '--out', '/sys/tessera-vae'], code: 1, words: ['--out /sys/tessera-vae: cannot write there'] },
  { args: ['train-vae', '--out', at('a-file')], code: 1, words: [`--out ${at('a-file')}: cannot write there`] },
  // train-vae: the run in --out
  { args: ['train-vae', '--out', at('vaeq'), '--steps', '30'], code: 1, words: [`--out ${at('vaeq')} holds a --quick VAE run (step 5); this run asks for a full VAE`, 'baseChannels 8 (checkpoint) vs 16', '--fresh'] },
  { args: ['train-vae', '--quick', '--batch', '4', '--out', at('vaeq')], code: 1, words: ['holds a --quick VAE run (step 5) of other settings', '--batch 2 (checkpoint) vs 4'] },
  { args: ['train-vae', '--quick', '--seed', '3', '--out', at('vaeq')], code: 1, words: ['--seed 0 (checkpoint) vs 3'] },
  { args: ['train-vae', '--quick', '--lr', '0.01', '--out', at('vaeq')], code: 1, words: ['--lr 0.003 (checkpoint) vs 0.01'] },
  { args: ['train-vae', '--quick', '--steps', '2', '--out', at('vaeq')], code: 1, words: [`--steps 2: --out ${at('vaeq')} holds a run of 5 steps already`, '--fresh'] },
  { args: ['train-vae', '--quick', '--steps', '5', '--lr', '1e10', '--out', at('nan')], code: 1, words: ['train-vae: the loss became NaN at step', 'with --lr 10000000000 (the default is 0.003): lower --lr'] },
  { args: ['train-vae', '--data', at('no-such-folder'), '--out', at('d1')], code: 1, words: [`--data ${at('no-such-folder')}`, 'no such folder'] },
  { args: ['train-vae', '--data', at('videos'), '--out', at('d2')], code: 1, words: ['--data reads videos with ffmpeg and ffprobe', 'not found'], env: noFfmpeg },
  // ---- train-dit
  { args: ['train-dit', '--vae', at('missing.safetensors')], code: 1, words: [`--vae ${at('missing.safetensors')}: no such file`] },
  { args: ['train-dit', '--vae', at('garbage.safetensors')], code: 1, words: [`--vae ${at('garbage.safetensors')}: `] },
  { args: ['train-dit', '--vae', path.join(M, 'dit.safetensors')], code: 1, words: [`--vae ${path.join(M, 'dit.safetensors')}: holds a DiT, not a VAE`] },
  { args: ['train-dit', '--minutes', '0'], code: 1, words: ["--minutes expects a positive number, got '0'"] },
  { args: ['train-dit', '--steps', '1e8'], code: 1, words: ['--steps expects at most 10,000,000'] },
  { args: ['train-dit', '--minutes', '5', '--steps', '5'], code: 1, words: ['--minutes 5 and --steps 5 are exclusive'] },
  { args: ['train-dit', '--out', at('ditq')], code: 1, words: [`--out ${at('ditq')} holds a --quick DiT run (step 3); this run asks for a full DiT`, 'hiddenSize 32 (checkpoint) vs 192', `remove ${at('ditq', 'dit')}`] },
  { args: ['train-dit', '--quick', '--seed', '4', '--out', at('ditq')], code: 1, words: ['holds a --quick DiT run (step 3) of other settings', '--seed 0 (checkpoint) vs 4'] },
  { args: ['train-dit', '--quick', '--steps', '1', '--out', at('ditq')], code: 1, words: [`--steps 1: --out ${at('ditq')} holds a run of 3 steps already`] },
  { args: ['train-dit', '--vae', path.join(M, 'vae.safetensors'), '--out', '/sys/tessera-dit'], code: 1, words: ['--out /sys/tessera-dit: cannot write there'] },
  // ---- sample: flags
  { args: ['sample', '--checkpoint', M], code: 1, words: ['sample: give at least one --prompt'] },
  { args: sample('--frames', '16'), code: 1, words: ["--frames expects 1 + 4k frames (1, 5, 9, 13, 17, ...), got '16'"] },
  { args: sample('--frames', '0'), code: 1, words: ["--frames expects 1 + 4k frames", "got '0'"] },
  { args: sample('--frames', '1e300'), code: 1, words: ["--frames expects 1 + 4k frames", "got '1e300'"] },
  { args: sample('--frames', '400001'), code: 1, words: ['sampling 1 clip of 400001x64x64 (--frames 400001, --size 64x64) needs about', 'GB of memory', 'this machine has'] },
  { args: sample('--size', '64y'), code: 1, words: ["--size expects HEIGHTxWIDTH (e.g. 64x64) or one number, got '64y'"] },
  { args: sample('--size', '0'), code: 1, words: ["--size expects HEIGHTxWIDTH", "got '0'"] },
  { args: sample('--size', '99999999999999999999'), code: 1, words: ["--size expects HEIGHTxWIDTH", "got '99999999999999999999'"] },
  { args: sample('--size', '63x64'), code: 1, words: ["--frames 17 --size 63x64: the model's VAE takes 1 + 4k frames and sizes that are multiples of 4"] },
  { args: sample('--size', '100000'), code: 1, words: ['of 17x100000x100000', 'TB of memory'] },
  { args: sample('--steps', '0'), code: 1, words: ["--steps expects a positive integer, got '0'"] },
  { args: sample('--steps', '1e8'), code: 1, words: ['--steps expects at most 10,000', "got '1e8'"] },
  { args: sample('--steps', '1e12'), code: 1, words: ['--steps expects at most 10,000', "got '1e12'"] },
  { args: sample('--cfg', '-1'), code: 1, words: ["--cfg expects a positive number, got '-1'"] },
  { args: sample('--cfg', '0'), code: 1, words: ["--cfg expects a positive number, got '0'"] },
  { args: sample('--cfg', 'NaN'), code: 1, words: ["--cfg expects a positive number, got 'NaN'"] },
  { args: sample('--cfg', '1e308'), code: 1, words: ['--cfg expects at most 100', "got '1e308'"] },
  // sample: the output file
  { args: ['sample', '--checkpoint', M, '--prompt', S, '--out', at('x.txt')], code: 1, words: [`--out ${at('x.txt')}: expected a .gif, .png, .mp4 or .webm file`] },
  { args: ['sample', '--checkpoint', M, '--prompt', S, '--out', '/sys/tessera.gif'], code: 1, words: ['--out /sys/tessera.gif: cannot write to its folder /sys'] },
  { args: ['sample', '--checkpoint', M, '--prompt', S, '--out', path.join(at('a-file'), 'x.gif')], code: 1, words: ['cannot write to its folder'] },
  { args: ['sample', '--checkpoint', M, '--prompt', S, '--out', at('x.mp4')], code: 1, words: [`--out ${at('x.mp4')}: writing .mp4 needs ffmpeg`, 'write a .gif or .png instead'], env: noFfmpeg },
  { args: ['sample', '--checkpoint', M, '--prompt', S, '--out', at('x.webm')], code: 1, words: ['writing .webm needs ffmpeg'], env: noFfmpeg },
  { args: ['sample', '--checkpoint', M, '--prompt', S, '--out', at('dir.gif')], code: 1, words: [`--out ${at('dir.gif')}: is a directory`] },
  // sample: the model folder
  { args: ['sample', '--prompt', S, '--out', gif, '--checkpoint', at('no-such-dir')], code: 1, words: [`--checkpoint ${at('no-such-dir')}: no such directory`] },
  { args: ['sample', '--prompt', S, '--out', gif, '--checkpoint', at('empty')], code: 1, words: [`--checkpoint ${at('empty')}: no vae.safetensors in`] },
  { args: ['sample', '--prompt', S, '--out', gif, '--checkpoint', at('swapped')], code: 1, words: [`--checkpoint ${at('swapped')}: vae.safetensors in`, 'holds a DiT and dit.safetensors a VAE: the two files are swapped'] },
  { args: ['sample', '--prompt', S, '--out', gif, '--checkpoint', at('two-vaes')], code: 1, words: ['dit.safetensors in', 'holds a VAE, not a DiT'] },
  { args: ['sample', '--prompt', S, '--out', gif, '--checkpoint', at('two-dits')], code: 1, words: ['vae.safetensors in', 'holds a DiT, not a VAE'] },
  { args: ['sample', '--prompt', S, '--out', gif, '--checkpoint', at('garbage')], code: 1, words: [`--checkpoint ${at('garbage')}: `, /garbage\/(vae|dit)\.safetensors/] },
  // sample: TESSERA_PRETRAINED
  { args: ['sample', '--prompt', S, '--out', gif], code: 1, words: [`TESSERA_PRETRAINED=${at('no-such-dir')}: no such directory`], env: { TESSERA_PRETRAINED: at('no-such-dir') } },
  { args: ['sample', '--prompt', S, '--out', gif], code: 1, words: [`TESSERA_PRETRAINED=${at('empty')}: no vae.safetensors in`], env: { TESSERA_PRETRAINED: at('empty') } },
  { args: ['sample', '--prompt', S, '--out', gif], code: 1, words: [`TESSERA_PRETRAINED=${at('swapped')}: `, 'the two files are swapped'], env: { TESSERA_PRETRAINED: at('swapped') } },
  { args: ['sample', '--prompt', S, '--out', gif], code: 1, words: [`TESSERA_PRETRAINED=${at('garbage')}: `], env: { TESSERA_PRETRAINED: at('garbage') } },
  { args: ['eval', '--out', at('eval')], code: 1, words: [`TESSERA_PRETRAINED=${at('no-such-dir')}: no such directory`], env: { TESSERA_PRETRAINED: at('no-such-dir') } },
  { args: ['eval', '--out', at('eval')], code: 1, words: [`TESSERA_PRETRAINED=${at('two-vaes')}: `, 'holds a VAE, not a DiT'], env: { TESSERA_PRETRAINED: at('two-vaes') } },
  // sample: prompts (one rule with eval: every word known, or refused naming the words)
  { args: ['sample', '--checkpoint', M, '--out', gif, '--prompt', 'a cat jumps over the moon'], code: 1, words: ["--prompt 'a cat jumps over the moon': the model does not know 'a', 'cat', 'jumps', 'over', 'moon'", 'it knows 19 words'] },
  { args: ['sample', '--checkpoint', M, '--out', gif, '--prompt', ''], code: 1, words: ["--prompt '': no words to condition on"] },
  { args: ['sample', '--checkpoint', M, '--out', gif, '--prompt', '!!! ...'], code: 1, words: ["--prompt '!!! ...': no words to condition on"] },
  { args: ['sample', '--checkpoint', M, '--out', gif, '--prompt', '数字 7 moves right'], code: 1, words: ["the model does not know '数', '字'"] },
  { args: ['sample', '--checkpoint', M, '--out', gif, '--prompt', 'the digit 7 moves rïght'], code: 1, words: ["the model does not know 'rïght'"] },
  { args: ['sample', '--checkpoint', M, '--out', gif, '--prompt', S, '--prompt', 'the digit 7 zooms'], code: 1, words: ["--prompt 'the digit 7 zooms': the model does not know 'zooms'"] },
  { args: ['sample', '--checkpoint', M, '--out', gif, '--prompt', 'the digit 7 moves up and to the right and up'], code: 1, words: ['11 words, more than the 9 the model reads', "'and', 'up'"] },
  // ---- eval
  { args: evalIn('--prompt', 'a cat jumps over the moon'), code: 1, words: ["--prompt 'a cat jumps over the moon': the model does not know 'a', 'cat', 'jumps', 'over', 'moon'"] },
  { args: evalIn('--prompt', ''), code: 1, words: ["--prompt '': no words to condition on"] },
  { args: evalIn('--prompt', 'the digit 7 moves'), code: 1, words: ["--prompt 'the digit 7 moves': eval judges captions 'the digit <0-9> moves <direction>'"] },
  { args: evalIn('--prompt', 'the digit 7 moves right and left'), code: 1, words: ["--prompt 'the digit 7 moves right and left': eval judges captions"] },
  { args: evalIn('--samples-per-prompt', '0'), code: 1, words: ["--samples-per-prompt expects a positive integer, got '0'"] },
  { args: evalIn('--samples-per-prompt', '1000000'), code: 1, words: ['--samples-per-prompt 1000000: 10000000 samples of 17x64x64 for samples.gif needs about', 'TB of memory'] },
  { args: evalIn('--steps', '1e12'), code: 1, words: ['--steps expects at most 10,000'] },
  { args: evalIn('--cfg', '1e308'), code: 1, words: ['--cfg expects at most 100'] },
  { args: ['eval', '--checkpoint', M, '--out', '/sys/tessera-eval'], code: 1, words: ['--out /sys/tessera-eval: cannot write there'] },
  // ---- --config values (through the flags' parsers)
  { args: sample(), config: { device: 'tpu' }, code: 1, words: ["'device': expects cpu, cuda, cuda:N", "got 'tpu'"] },
  { args: sample(), config: { threads: 0 }, code: 1, words: ["'threads': expects a positive integer, got '0'"] },
  { args: sample(), config: { cfg: -3 }, code: 1, words: ["'cfg': expects a positive number, got '-3'"] },
  { args: sample(), config: { cfg: 1e308 }, code: 1, words: ["'cfg': expects at most 100"] },
  { args: sample(), config: { steps: 1e12 }, code: 1, words: ["'steps': expects at most 10,000"] },
  { args: sample(), config: { stepz: 3 }, code: 1, words: ["unknown key 'stepz' for 'sample' (did you mean 'steps'?)"] },
  { args: sample(), config: { frames: 400001 }, code: 1, words: ['(--frames 400001, --size 64x64) needs about', 'of memory'] },
  { args: sample(), config: { size: 'big' }, code: 1, words: ["'size': expects HEIGHTxWIDTH", "got 'big'"] },
  { args: sample(), config: { quick: true }, code: 1, words: ["unknown key 'quick' for 'sample'"] },
  { args: ['sample', '--checkpoint', M, '--out', gif], config: { prompt: ['a cat'] }, code: 1, words: ["--prompt 'a cat': the model does not know 'a', 'cat'"] },
  { args: ['train-vae'], config: { minutes: 1e300 }, code: 1, words: ["'minutes': expects at most 30,000"] },
  { args: ['train-vae'], config: { steps: 1e12 }, code: 1, words: ["'steps': expects at most 10,000,000"] },
  { args: ['train-vae'], config: { minutes: 2, steps: 5 }, code: 1, words: ['--minutes 2 and --steps 5 are exclusive'] },
  { args: ['train-vae'], config: { quick: 'yes' }, code: 1, words: ["'quick': expected true or false, got \"yes\""] },
  { args: ['train-vae'], config: { batch: 100000 }, code: 1, words: ['--batch 100000', 'of memory'] },
  { args: ['train-vae'], config: { eval: 1000000 }, code: 1, words: ["'eval': expects at most 10,000"] },
  { args: ['train-vae'], config: { fresh: 1 }, code: 1, words: ["'fresh': expected true or false, got 1"] },
  { args: ['train-dit'], config: { vae: at('missing.safetensors') }, code: 1, words: [`--vae ${at('missing.safetensors')}: no such file`] },
  { args: ['demo'], config: { budget: 1e300 }, code: 1, words: ["'budget': expects at most 30,000"] },
  { args: ['demo'], config: { budgit: 3 }, code: 1, words: ["unknown key 'budgit' for 'demo' (did you mean 'budget'?)"] },
  { args: evalIn(), config: { samplesPerPrompt: 0 }, code: 1, words: ["'samplesPerPrompt': expects a positive integer, got '0'"] },
  { args: evalIn(), config: { 'samples-per-prompt': 1e7 }, code: 1, words: ['--samples-per-prompt 10000000', 'of memory'] },
  { args: ['info'], config: { threads: 'two' }, code: 1, words: ["'threads': expects a positive integer, got 'two'"] },
  { args: ['info'], config: { seed: null }, code: 1, words: ["'seed': expected a value, got null"] },
  // ---- --config files
  { args: ['info', '--config', at('no-such.json')], code: 1, words: [`--config ${at('no-such.json')}: no such file`] },
  { args: ['info', '--config', at('array.json')], code: 1, words: [`--config ${at('array.json')}: expected a JSON object`] },
  { args: ['info', '--config', at('broken.json')], code: 1, words: [`--config ${at('broken.json')}: `, 'JSON'] },
  { args: ['info', '--config', at('empty')], code: 1, words: [`--config ${at('empty')}: `, 'EISDIR'] },
];

/** stderr lines a command may print besides its message: progress. */
const PROGRESS = /^(VAE|DiT|latents|sampling|eval) \d+\/\d+ /;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(row: Row, i: number): Promise<Result> {
  const args = [...row.args];
  if (row.config !== undefined) {
    const file = at(`config-${i}.json`);
    fs.writeFileSync(file, JSON.stringify(row.config));
    args.push('--config', file);
  }
  return new Promise((resolve) => {
    // One thread each (right after the command, so a row's trailing flag keeps its missing argument), unless the row sets threads.
    if (!args.includes('--threads') && !row.config && args.length > 1) args.splice(1, 0, '--threads', '1');
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: tmp, env: { ...process.env, ...row.env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    // 'close', not 'exit': 'exit' can come before the pipes are read to their end (under
    // load a row then saw empty stderr).
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const results: Result[] = [];

beforeAll(async () => {
  setNumThreads(1);
  for (const d of ['empty', 'swapped', 'two-vaes', 'two-dits', 'garbage', 'dir.gif', 'videos', 'model']) fs.mkdirSync(at(d), { recursive: true });
  fs.writeFileSync(at('a-file'), 'a file, not a folder');
  fs.writeFileSync(at('array.json'), '[1, 2]');
  fs.writeFileSync(at('broken.json'), '{"steps": 3,');
  fs.writeFileSync(at('garbage.safetensors'), 'not a safetensors file');
  for (const f of ['vae.safetensors', 'dit.safetensors']) fs.writeFileSync(at('garbage', f), 'not a safetensors file either');
  manualSeed(0);
  const vae = new VideoVAE(demoVAESettings.quick.vae);
  const dit = createDemoDiT(demoDiTSettings.quick, 4);
  vae.save(path.join(M, 'vae.safetensors'));
  saveDemoDiT(path.join(M, 'dit.safetensors'), dit, { scalingFactor: 1, flow: demoDiTSettings.quick.flow, latentChannels: 4 });
  fs.copyFileSync(path.join(M, 'vae.safetensors'), at('swapped', 'dit.safetensors'));
  fs.copyFileSync(path.join(M, 'dit.safetensors'), at('swapped', 'vae.safetensors'));
  for (const f of ['vae.safetensors', 'dit.safetensors']) fs.copyFileSync(path.join(M, 'vae.safetensors'), at('two-vaes', f));
  for (const f of ['vae.safetensors', 'dit.safetensors']) fs.copyFileSync(path.join(M, 'dit.safetensors'), at('two-dits', f));
  // A --quick VAE run of 5 steps (as train-vae --quick writes it) and a --quick DiT checkpoint of 3 steps beside its VAE.
  const s = demoVAESettings.quick;
  const data = movingMnistDataset(new MovingMNIST({ split: 'train', length: 4, frames: s.frames, size: s.size, numDigits: 1, seed: 0 }));
  const model = new VideoVAE(s.vae);
  const r = await trainVAE({
    model, data, steps: 5, batchSize: s.batchSize, lr: s.lr, klWeight: s.klWeight, mseWeight: s.mseWeight, crop: s.crop, seed: 0, ema: s.ema,
    checkpointDir: at('vaeq', 'checkpoint'),
  });
  r.ema?.dispose();
  model.dispose();
  fs.mkdirSync(at('ditq'));
  fs.copyFileSync(path.join(M, 'vae.safetensors'), at('ditq', 'vae.safetensors'));
  saveCheckpoint(at('ditq', 'dit', 'checkpoint'), { model: dit, step: 3, config: { dit: dit.config, train: { batchSize: 2, batchTokens: null, mixed: 'bucket', seed: 0 } } });
  vae.dispose();
  dit.dispose();
  // The rows, a few at a time (each a node process; most end at argument checking).
  const parallel = 4;
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < rows.length) {
      const i = next++;
      results[i] = await run(rows[i], i);
    }
  }));
}, 120000);

test('the table has at least 100 rows', () => {
  expect(rows.length).toBeGreaterThanOrEqual(100);
});

test.each(rows.map((r, i) => [i, `${r.args.join(' ')}${r.config ? ` --config ${JSON.stringify(r.config)}` : ''}${r.env ? ` (${Object.entries(r.env).map(([k, v]) => `${k}=${v}`).join(' ')})` : ''}`] as const))(
  'row %d: %s',
  (i) => {
    const row = rows[i], r = results[i];
    const lines = r.stderr.replace(/\n$/, '').split('\n');
    const last = lines[lines.length - 1];
    const where = `${row.args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    expect([where, r.code]).toEqual([where, row.code]);
    for (const w of row.words) {
      if (typeof w === 'string') expect([where, last.includes(w)]).toEqual([where, true]);
      else expect([where, w.test(last)]).toEqual([where, true]);
    }
    expect(last).toMatch(/^(tessera: |error: |bench: )/);
    for (const l of lines.slice(0, -1)) expect([where, PROGRESS.test(l)]).toEqual([where, true]); // one message; the rest is progress
    expect(r.stderr).not.toMatch(/\n\s+at .*:\d+:\d+/); // never a stack trace
  },
);
