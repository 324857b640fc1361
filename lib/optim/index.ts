// ts.optim: optimizers, learning-rate schedules, gradient clipping, EMA.
export { Optimizer } from './optimizer';
export type { OptimizerStateDict, ParamGroup, ParamGroupInput, ParamsInput, ParamState } from './optimizer';
export { AdamW } from './adamw';
export type { AdamWHyper, AdamWOptions } from './adamw';
export { SGD } from './sgd';
export type { SGDHyper, SGDOptions } from './sgd';
export { constantLR, linearWarmup, cosineDecay, warmupCosine } from './schedule';
export type { Schedule } from './schedule';
export { clipGradNorm } from './clip';
export { EMA } from './ema';
export type { EMAStateDict } from './ema';
