// Which rank this process is, as its launcher says, read before MPI starts (so a
// process started without a launcher never touches MPI). Launchers, in order:
//   Open MPI's mpirun/mpiexec  OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK
//   PMI (MPICH hydra, Intel MPI) PMI_RANK / PMI_SIZE (MPI_LOCALRANKID)
//   Slurm's srun               SLURM_PROCID / SLURM_STEP_NUM_TASKS or SLURM_NTASKS / SLURM_LOCALID
// Slurm comes last: mpirun inside a Slurm allocation sets both, and Open MPI's
// numbers are the ones that describe the job.

export interface LauncherEnv {
  /** 'openmpi' | 'pmi' | 'slurm', or null when no launcher started this process. */
  launcher: 'openmpi' | 'pmi' | 'slurm' | null;
  rank: number;
  worldSize: number;
  /** The rank among this machine's processes, or null when the launcher does not say. */
  localRank: number | null;
  /** The variables the numbers came from, for messages ('OMPI_COMM_WORLD_RANK=1, ...'). */
  source: string;
}

/** The environment, typed structurally so the declarations need no @types/node. */
type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string): number | null {
  const v = env[name];
  if (v === undefined || v === '') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`distributed.init: expected ${name} to be a non-negative integer, got '${v}'`);
  return n;
}

export function launcherEnv(env: Env = process.env): LauncherEnv {
  const tables: [LauncherEnv['launcher'], string, string[], string[]][] = [
    ['openmpi', 'OMPI_COMM_WORLD_RANK', ['OMPI_COMM_WORLD_SIZE'], ['OMPI_COMM_WORLD_LOCAL_RANK']],
    ['pmi', 'PMI_RANK', ['PMI_SIZE'], ['MPI_LOCALRANKID']],
    ['slurm', 'SLURM_PROCID', ['SLURM_STEP_NUM_TASKS', 'SLURM_NTASKS'], ['SLURM_LOCALID']],
  ];
  for (const [launcher, rankVar, sizeVars, localVars] of tables) {
    const rank = intVar(env, rankVar);
    if (rank === null) continue;
    const sizeVar = sizeVars.find((v) => intVar(env, v) !== null);
    if (!sizeVar) throw new Error(`distributed.init: ${rankVar}=${rank} is set but ${sizeVars.join(' / ')} is not`);
    const worldSize = intVar(env, sizeVar)!;
    if (rank >= worldSize)
      throw new Error(`distributed.init: ${rankVar}=${rank} is not below ${sizeVar}=${worldSize}`);
    const localVar = localVars.find((v) => intVar(env, v) !== null);
    const localRank = localVar ? intVar(env, localVar) : null;
    const source = [`${rankVar}=${rank}`, `${sizeVar}=${worldSize}`, ...(localVar ? [`${localVar}=${localRank}`] : [])].join(', ');
    return { launcher, rank, worldSize, localRank, source };
  }
  return { launcher: null, rank: 0, worldSize: 1, localRank: 0, source: 'no launcher variables' };
}
