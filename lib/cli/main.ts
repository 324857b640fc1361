#!/usr/bin/env node
// The tessera CLI. Every command: flags, --config file.json, --threads, --seed,
// --device, --out. Bad flags or files print one clear line and exit non-zero;
// Ctrl-C during training saves a checkpoint, says where, and exits with 130.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Command, CommanderError } from 'commander';
import { info, version } from '../runtime';
import { findFfmpeg } from '../io/video';
import { addTrainingCommands } from './commands';
import { endJobOnError, joinLauncherJob } from './distributed';
import { addCommon, applyRuntime, CliError, Interrupted, positiveInt, withConfig } from './options';

export { addCommon, applyRuntime, CliError, withConfig };
export type { CommonOptions } from './options';

function infoText(): string {
  const i = info();
  const lines = [
    `tessera ${i.version}`,
    `backend: ${i.backend}`,
    `cpu: ${i.cpu.features.join(', ') || 'no AVX'}; ${i.cpu.threads} threads (${i.cpu.hardwareThreads} available); GEMM kernel ${i.cpu.gemmKernel}; OpenMP ${i.cpu.openmp ? 'on' : 'off'}`,
  ];
  lines.push(`devices: cpu${i.hostDevices > 1 ? `, ${i.hostDevices > 2 ? `cpu:1 to cpu:${i.hostDevices - 1}` : 'cpu:1'} (simulated host devices, TESSERA_HOST_DEVICES=${i.hostDevices})` : ''}${i.cuda.available ? `, ${i.cuda.devices.map((d) => `cuda:${d.index}`).join(', ')}` : ''}`);
  if (i.cuda.available) {
    for (const d of i.cuda.devices) lines.push(`cuda:${d.index}: ${d.name}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB, sm ${d.computeCapability}`);
    lines.push('cuda precision: training defaults to bf16 (tensor cores); fp32 attention and conv use scalar kernels, with no TF32 or fp32 flash path yet: use bf16 for speed');
  } else lines.push(`cuda: not available (${i.cuda.reason})`);
  const ff = findFfmpeg();
  lines.push(ff.ffmpeg && ff.ffprobe
    ? `ffmpeg: ${ff.version} (with ffprobe): video files and --data work`
    : `ffmpeg: not found (${[!ff.ffmpeg && 'ffmpeg', !ff.ffprobe && 'ffprobe'].filter(Boolean).join(' and ')} missing): --data and .mp4/.webm files need it (Debian/Ubuntu: apt-get install ffmpeg)`);
  return lines.join('\n');
}

export function buildProgram(): Command {
  const program = new Command('tessera')
    .description('Sora-style video diffusion: video VAE, spacetime patches, Diffusion Transformer')
    .version(version)
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
    if (r.status === 2) throw new SilentExit(2); // a bad option: the suite printed its one line
    if (r.status !== 0) throw new CliError(`bench: the suite failed (exit ${r.status})`);
  });

  addTrainingCommands(program);
  return program;
}

/** Ends a command with an exit code after its one line was already printed (by a child process). */
class SilentExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    joinLauncherJob(); // started by mpirun/srun: join the job; rank 0 alone prints
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return e.exitCode || 1; // commander already printed its one line
    }
    if (e instanceof SilentExit) return e.code;
    let msg = e instanceof Error ? e.message : String(e);
    // A write that found no room: say so in words (a checkpoint save never touches the previous one).
    const full = /\b(ENOSPC|EFBIG|EDQUOT): ([^,]+)/.exec(msg);
    if (full) {
      const save = /^saveCheckpoint: (.+?): /.exec(msg);
      msg = save
        ? `could not save a checkpoint in ${save[1]}: ${full[1]}: ${full[2]} (the disk is full or a file size limit was reached; the previous checkpoint is kept)`
        : `${msg} (the disk is full or a file size limit was reached)`;
    }
    const code = e instanceof Interrupted ? 130 : 1;
    endJobOnError(msg, code); // several ranks: every one ends now, with this message
    process.stderr.write(`tessera: ${msg}\n`);
    return code;
  }
}

if (require.main === module) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
