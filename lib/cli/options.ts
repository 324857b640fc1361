// The CLI's shared options (--config, --device, --threads, --seed, --out), flag
// parsers, and the errors that become one line and an exit code.
import * as fs from 'fs';
import { Command, Option } from 'commander';
import { manualSeed } from '../creation';
import { info, setNumThreads } from '../runtime';
import { Device } from '../tensor';
import { canonicalDevice, isDeviceName } from '../checks';
import { launcherEnv } from '../distributed/env';

/** A user error: printed as one line (no stack), exit 1. */
export class CliError extends Error {}

/** Options every command takes. */
export interface CommonOptions {
  config?: string;
  device?: Device;
  threads?: number;
  seed?: number;
  out?: string;
}

/** A number written as a plain decimal or in exponent form ('1e3'); '', ' ', '0x10' and the like are not numbers here. */
const numberText = (v: string): number => (/^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(v) ? Number(v) : NaN);

export function positiveInt(name: string) {
  return (v: string): number => {
    const n = numberText(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new CliError(`--${name} expects a positive integer, got '${v}'`);
    return n;
  };
}

export function nonNegativeInt(name: string) {
  return (v: string): number => {
    const n = numberText(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new CliError(`--${name} expects a non-negative integer, got '${v}'`);
    return n;
  };
}

/** A positive integer up to `max`; `why` says where the bound comes from. */
export function boundedInt(name: string, max: number, why: string) {
  const parse = positiveInt(name);
  return (v: string): number => {
    const n = parse(v);
    if (n > max) throw new CliError(`--${name} expects at most ${max.toLocaleString('en-US')} (${why}), got '${v}'`);
    return n;
  };
}

/** A positive number up to `max`; `why` says where the bound comes from. */
export function boundedNumber(name: string, max: number, why: string) {
  const parse = positiveNumber(name);
  return (v: string): number => {
    const n = parse(v);
    if (n > max) throw new CliError(`--${name} expects at most ${max.toLocaleString('en-US')} (${why}), got '${v}'`);
    return n;
  };
}

/**
 * The longest time budget, in minutes: about 3 weeks (the budget's timer holds at most
 * 2^31 - 1 ms, 35,791 minutes). A longer run is a rerun: it extends the run in --out.
 */
export const MAX_MINUTES = 30000;
/** The most training steps one command is asked for (a rerun with a larger --steps extends the run). */
export const MAX_TRAIN_STEPS = 10_000_000;
/** The most sampling steps: the samplers converge in tens of steps (the demo uses 30). */
export const MAX_SAMPLE_STEPS = 10000;

/** --minutes / --budget: a positive number of minutes up to MAX_MINUTES. */
export const minutesBudget = (name: string, why = 'about 3 weeks') => boundedNumber(name, MAX_MINUTES, why);
/** --steps of a training command: total optimizer steps. */
export const trainSteps = boundedInt('steps', MAX_TRAIN_STEPS, 'a rerun with a larger --steps extends the run');
/** --steps of sample and eval: sampler steps. */
export const sampleSteps = boundedInt('steps', MAX_SAMPLE_STEPS, 'sampling converges in tens of steps; the demo uses 30');
/** --cfg: a classifier-free guidance scale; a huge one (1e308) turns the guided velocity into Inf/NaN in float32. */
export const guidanceScale = boundedNumber('cfg', 100, 'guidance scales of 1 to 10 are usual');

/** --threads: at most 8 per hardware thread of this machine. */
export function threadCount(v: string): number {
  const n = positiveInt('threads')(v);
  const hw = info().cpu.hardwareThreads;
  if (n > 8 * hw) throw new CliError(`--threads expects at most ${8 * hw} on this machine (8 per hardware thread; it has ${hw}), got '${v}'`);
  return n;
}

/** --device: 'cpu', 'cpu:N' (a simulated host device, TESSERA_HOST_DEVICES), 'cuda', 'cuda:N' or 'cuda:local' (the local rank's GPU). */
export function deviceName(v: string): Device {
  if (v === 'cuda:local') v = `cuda:${launcherEnv().localRank ?? 0}`; // one rank per GPU under mpirun/srun
  if (!isDeviceName(v)) throw new CliError(`--device expects cpu, cuda, cuda:N (or cpu:N with TESSERA_HOST_DEVICES), got '${v}'`);
  return canonicalDevice(v);
}

/** --precision: fp32, or bf16 (CUDA only; the default there). */
export function precisionName(v: string): 'fp32' | 'bf16' {
  if (v !== 'fp32' && v !== 'bf16') throw new CliError(`--precision expects fp32 or bf16, got '${v}'`);
  return v;
}

/** The common options; `out` is the --out flag as help shows it (a directory unless a command writes one file). */
export function addCommon(cmd: Command, outHelp = 'output directory', out = '--out <dir>'): Command {
  return cmd
    .option('--config <file>', 'JSON file with option defaults (flags win)')
    .addOption(new Option('--device <device>', 'cpu, cuda, cuda:N, or cuda:local under mpirun: the GPU of the local rank (cpu:N: a simulated device, TESSERA_HOST_DEVICES=N)').argParser(deviceName).default('cpu'))
    .option('--threads <n>', 'CPU threads', threadCount)
    .option('--seed <n>', 'random seed', nonNegativeInt('seed'))
    .option(out, outHelp);
}

/** Edit distance (for "did you mean"). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

/**
 * Merges --config (a JSON object of option names to values) under the flags given. Every
 * value goes through the same parser and checks as its flag (so a bad value fails the
 * same way, naming the key and the file); a key no option has is an error that names the
 * nearest known one. Keys are the options' names (`samplesPerPrompt`, or the flag's
 * spelling `samples-per-prompt`).
 */
export function withConfig<T extends CommonOptions>(cmd: Command, opts: T): T {
  if (!opts.config) return opts;
  const file = opts.config;
  let cfg: unknown;
  try {
    cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CliError(`--config ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg)) throw new CliError(`--config ${file}: expected a JSON object`);
  const options = cmd.options.filter((o) => o.attributeName() !== 'config');
  const byName = new Map<string, Option>();
  for (const o of options) {
    byName.set(o.attributeName(), o);
    if (o.long) byName.set(o.long.replace(/^--/, ''), o);
  }
  const merged: Record<string, unknown> = { ...(opts as Record<string, unknown>) };
  for (const [key, raw] of Object.entries(cfg as Record<string, unknown>)) {
    const o = byName.get(key);
    if (!o) {
      const names = [...new Set(options.map((x) => x.attributeName()))];
      const near = names.map((n) => [n, distance(key.toLowerCase(), n.toLowerCase())] as const).sort((x, y) => x[1] - y[1])[0];
      throw new CliError(`--config ${file}: unknown key '${key}' for '${cmd.name()}'${near && near[1] <= Math.max(2, key.length / 3) ? ` (did you mean '${near[0]}'?)` : ''}; known: ${names.join(', ')}`);
    }
    const name = o.attributeName();
    if (cmd.getOptionValueSource(name) === 'cli') continue; // the flag given wins
    const where = `--config ${file}: '${key}'`;
    const reword = (e: unknown): never => {
      const m = e instanceof Error ? e.message : String(e);
      throw new CliError(`${where}: ${m.replace(/^--[\w-]+ /, '')}`);
    };
    let v: unknown;
    if (o.isBoolean() && !o.required && !o.optional) {
      if (typeof raw !== 'boolean') throw new CliError(`${where}: expected true or false, got ${JSON.stringify(raw)}`);
      v = raw;
    } else {
      const items = Array.isArray(raw) ? raw : [raw];
      if (!Array.isArray(raw) && (raw === null || typeof raw === 'object')) throw new CliError(`${where}: expected a value, got ${JSON.stringify(raw)}`);
      if (items.some((x) => x === null || typeof x === 'object')) throw new CliError(`${where}: expected plain values, got ${JSON.stringify(raw)}`);
      const parse = (o as Option & { parseArg?: (value: string, previous: unknown) => unknown }).parseArg;
      let acc: unknown = Array.isArray(raw) ? [] : undefined;
      for (const x of items) {
        const text = String(x);
        if (o.argChoices && !o.argChoices.includes(text)) throw new CliError(`${where}: expected one of ${o.argChoices.join(', ')}, got '${text}'`);
        try {
          acc = parse ? parse(text, acc) : text;
        } catch (e) {
          reword(e);
        }
      }
      v = acc;
    }
    merged[name] = v;
  }
  return merged as T;
}

export function applyRuntime(opts: CommonOptions): void {
  if (opts.threads) setNumThreads(opts.threads);
  if (opts.seed !== undefined) manualSeed(opts.seed);
  if (opts.device !== undefined) checkDeviceAvailable(opts.device);
}

/** Throws a CliError naming --device when the device does not exist on this machine. */
export function checkDeviceAvailable(d: unknown): Device {
  const dev = typeof d === 'string' ? deviceName(d) : deviceName(String(d));
  const i = info();
  const [kind, n] = dev.includes(':') ? [dev.split(':')[0], Number(dev.split(':')[1])] : [dev, 0];
  if (kind === 'cuda') {
    if (!i.cuda.available) throw new CliError(`--device ${dev}: no CUDA device available (${i.cuda.reason ?? 'unknown reason'})`);
    if (n >= i.cuda.devices.length) throw new CliError(`--device ${dev}: this machine has ${i.cuda.devices.length} CUDA device${i.cuda.devices.length === 1 ? '' : 's'} (cuda:0 to cuda:${i.cuda.devices.length - 1})`);
  } else if (n >= i.hostDevices) {
    throw new CliError(`--device ${dev}: simulated host devices cpu:1.. need TESSERA_HOST_DEVICES=${n + 1} (or more); ${i.hostDevices === 1 ? 'none are set' : `it is ${i.hostDevices}`}`);
  }
  return dev;
}


/** Ctrl-C stopped a command: printed as one line (where the checkpoint is), exit 130. */
export class Interrupted extends Error {}

export function positiveNumber(name: string) {
  return (v: string): number => {
    const n = numberText(v);
    if (!(Number.isFinite(n) && n > 0)) throw new CliError(`--${name} expects a positive number, got '${v}'`);
    return n;
  };
}

/** Frames a causal 4x-in-time VAE accepts: 1 + 4k. */
export function frameCount(v: string): number {
  const n = numberText(v);
  if (!Number.isSafeInteger(n) || n < 1 || (n - 1) % 4) throw new CliError(`--frames expects 1 + 4k frames (1, 5, 9, 13, 17, ...), got '${v}'`);
  return n;
}

/** 'HxW' or one number for both: [height, width]. */
export function frameSize(v: string): [number, number] {
  const m = /^(\d+)(?:x(\d+))?$/.exec(v.trim());
  const h = m ? Number(m[1]) : NaN, w = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(Number.isSafeInteger(h) && Number.isSafeInteger(w) && h > 0 && w > 0)) throw new CliError(`--size expects HEIGHTxWIDTH (e.g. 64x64) or one number, got '${v}'`);
  return [h, w];
}

/** Repeatable option: collects every value. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}
