// ts.distributed: process groups (MPI for host tensors, NCCL for CUDA tensors),
// collectives and DistributedDataParallel. See group.ts and ddp.ts.
export {
  init, isInitialized, rank, worldSize, localRank, available, loadNccl, ncclCandidates, allReduce, broadcast, allGather,
  barrier, destroy, abort,
} from './group';
export type { ReduceOp, InitOptions, ProcessGroupInfo, Availability } from './group';
export { allReduceNumbers, broadcastObject, allGatherObject } from './objects';
export { launcherEnv } from './env';
export type { LauncherEnv } from './env';
export { DistributedDataParallel } from './ddp';
export type { DDPOptions, DDPSyncStats } from './ddp';
