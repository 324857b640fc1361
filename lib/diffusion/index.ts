// Diffusion processes behind one interface (diffusion.ts), samplers and guidance (see
// common.ts for the model interface).
export type { Diffusion, TrainingBatch, TrainingLoss, TrainingLossOptions, DiffusionSampleOptions } from './diffusion';
export {
  classifierFreeGuidance, concatCond, randomConditionFrames, randomFrameMask, frameMaskedMean, frameTimesteps, keepFrames,
} from './common';
export type { ModelFn, NoiseFn, ConditionFrames, SampleOptionsBase, GuidanceOptions } from './common';
export { GaussianDiffusion, GaussianSchedule, betaSchedule, spacedTimesteps, discretizedGaussianLogLikelihood } from './gaussian';
export type { GaussianDiffusionOptions, GaussianSampleOptions, GaussianSampler, BetaSchedule, Prediction } from './gaussian';
export { RectifiedFlow, timestepShift } from './flow';
export type { RectifiedFlowOptions, FlowLossOptions, FlowLoss, FlowSampleOptions } from './flow';
