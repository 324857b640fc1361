// Diffusion processes, samplers and guidance (see common.ts for the model interface).
export {
  classifierFreeGuidance, concatCond, randomConditionFrames, maskedMean,
} from './common';
export type { ModelFn, NoiseFn, ConditionFrames, SampleOptionsBase, GuidanceOptions } from './common';
export { GaussianDiffusion, GaussianSchedule, betaSchedule, spacedTimesteps, discretizedGaussianLogLikelihood } from './gaussian';
export type {
  GaussianDiffusionOptions, GaussianSampleOptions, GaussianSampler, TrainingLossOptions, TrainingLoss, BetaSchedule, Prediction,
} from './gaussian';
export { RectifiedFlow, timestepShift } from './flow';
export type { RectifiedFlowOptions, FlowLossOptions, FlowLoss, FlowSampleOptions } from './flow';
