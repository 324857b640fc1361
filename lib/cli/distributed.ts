// The CLI under a launcher: `mpirun -np N npx tessera train-dit ...` (or srun) starts N
// copies of the CLI. Each joins the job at start (ts.distributed.init), the training
// commands then split their work over the ranks (train/distributed.ts), rank 0 alone
// prints and writes, and a command that fails on any rank ends every rank with its
// message (instead of leaving the others waiting in a collective).
import { abort, available, init, isInitialized, rank, worldSize } from '../distributed/group';
import { launcherEnv } from '../distributed/env';
import { CliError } from './options';

/**
 * Joins the launcher's job when there is one with several ranks: a clear CliError when
 * this build cannot (no MPI); on ranks other than 0, console.log prints nothing.
 */
export function joinLauncherJob(): void {
  let env;
  try {
    env = launcherEnv();
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (env.launcher === null || env.worldSize === 1) return;
  const a = available();
  if (!a.mpi) {
    const why = a.why.split(/; (?=(?:mpi|nccl): )/).filter((c) => c.startsWith('mpi:')).join('; '); // the MPI clause
    throw new CliError(`started by ${env.launcher} as rank ${env.rank} of ${env.worldSize} (${env.source}), but this build cannot train on several processes: ${why}`);
  }
  init();
  if (rank() !== 0) console.log = () => {};
}

/** With several ranks: ends them all now with this rank's message and exit code (does not return). */
export function endJobOnError(message: string, code: number): void {
  if (isInitialized() && worldSize() > 1) abort(`tessera: ${message}`, code);
}
