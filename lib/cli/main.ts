#!/usr/bin/env node
// The tessera CLI. Every command: flags, --config file.json, --threads, --seed,
// --device, --out. Bad flags or files print one clear line and exit non-zero;
// Ctrl-C during training saves a checkpoint, says where, and exits with 130.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Command, CommanderError, Option } from 'commander';
import * as ts from '../index';

export class CliError extends Error {}

/** Options every command takes. */
export interface CommonOptions {
  config?: string;
  device?: string;
  threads?: number;
  seed?: number;
  out?: string;
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new CliError(`--${name} expects a positive integer, got '${v}'`);
    return n;
  };
}

function nonNegativeInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new CliError(`--${name} expects a non-negative integer, got '${v}'`);
    return n;
  };
}

export function addCommon(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'JSON file with option defaults (flags win)')
    .addOption(new Option('--device <device>', 'cpu or cuda').choices(['cpu', 'cuda']).default('cpu'))
    .option('--threads <n>', 'CPU threads', positiveInt('threads'))
    .option('--seed <n>', 'random seed', nonNegativeInt('seed'))
    .option('--out <dir>', 'output directory');
}

/** Merges --config (a JSON object of option names to values) under the flags given. */
export function withConfig<T extends CommonOptions>(cmd: Command, opts: T): T {
  if (!opts.config) return opts;
  let cfg: unknown;
  try {
    cfg = JSON.parse(fs.readFileSync(opts.config, 'utf8'));
  } catch (e) {
    throw new CliError(`--config ${opts.config}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg)) throw new CliError(`--config ${opts.config}: expected a JSON object`);
  const merged: Record<string, unknown> = { ...(cfg as Record<string, unknown>) };
  for (const [k, v] of Object.entries(opts)) if (cmd.getOptionValueSource(k) !== 'default' || !(k in merged)) merged[k] = v;
  return merged as T;
}

export function applyRuntime(opts: CommonOptions): void {
  if (opts.threads) ts.setNumThreads(opts.threads);
  if (opts.seed !== undefined) ts.manualSeed(opts.seed);
  if (opts.device === 'cuda' && !ts.info().cuda.available)
    throw new CliError(`--device cuda: no CUDA device available (${ts.info().cuda.reason ?? 'unknown reason'})`);
}

function infoText(): string {
  const i = ts.info();
  const lines = [
    `tessera ${i.version}`,
    `backend: ${i.backend}`,
    `cpu: ${i.cpu.features.join(', ') || 'no AVX'}; ${i.cpu.threads} threads (${i.cpu.hardwareThreads} available); GEMM kernel ${i.cpu.gemmKernel}; OpenMP ${i.cpu.openmp ? 'on' : 'off'}`,
  ];
  if (i.cuda.available) for (const d of i.cuda.devices) lines.push(`cuda:${d.index}: ${d.name}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB, sm ${d.computeCapability}`);
  else lines.push(`cuda: not available (${i.cuda.reason})`);
  return lines.join('\n');
}

export function buildProgram(): Command {
  const program = new Command('tessera')
    .description('Sora-style video diffusion: video VAE, spacetime patches, Diffusion Transformer')
    .version(ts.version)
    .showSuggestionAfterError(true);

  addCommon(program.command('info').description('version, backend, CPU features and threads, CUDA devices')).action((o) => {
    applyRuntime(withConfig(program.commands.find((c) => c.name() === 'info')!, o));
    console.log(infoText());
  });

  addCommon(
    program
      .command('bench')
      .description('benchmark our ops against PyTorch (when python3-torch is installed)')
      .option('--filter <text>', 'only cases whose name or shape contains text')
      .option('--reps <n>', 'interleaved runs per side', positiveInt('reps'), 7)
      .option('--json <file>', 'also write machine-readable results'),
  ).action((o) => {
    const script = path.join(__dirname, '..', '..', 'benchmarks', 'run.js');
    if (!fs.existsSync(script)) throw new CliError(`bench: the benchmark suite is not in this installation (${script})`);
    const args = [script, '--reps', String(o.reps), '--threads', String(o.threads ?? 2)];
    if (o.filter) args.push('--filter', o.filter);
    if (o.json) args.push('--json', o.json);
    const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
    if (r.status !== 0) throw new CliError(`bench: the suite failed (exit ${r.status})`);
  });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return e.exitCode || 1; // commander already printed its one line
    }
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`tessera: ${msg}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
