// tessera: Sora-style video diffusion in TypeScript on a native C++/CUDA core.
export { Tensor, tidy, keep } from './tensor';
export type { DType, Device, TensorOptions, TensorData, NestedArray } from './tensor';
export {
  tensor, zeros, ones, full, zerosLike, onesLike, arange, rand, randn, manualSeed, getRngState, setRngState,
} from './creation';
export {
  add, sub, mul, div, pow, clamp, neg, exp, log, sqrt, rsqrt, abs, tanh, sigmoid, relu, square, sin, cos, maximum, minimum,
  sum, mean, max, min, matmul, reshape, flatten, permute, transpose, unsqueeze, squeeze, expand, contiguous, clone,
  detach, slice, chunk, cat, stack, to,
} from './ops/basic';
export * as F from './ops/functional';
export { noGrad, enableGrad, isGradEnabled } from './autograd/node';
export { backward, backwardMany } from './autograd/engine';
export { checkpoint } from './autograd/checkpoint';
export {
  memory, resetPeakMemory, cpuCache, setNumThreads, getNumThreads, setReferenceKernels, info, version,
  setFloat32MatmulPrecision, getFloat32MatmulPrecision, autocast, cuda,
} from './runtime';
export type { MatmulPrecision } from './runtime';
export type { MemoryInfo, Info } from './runtime';
export { MovingMNIST, DIRECTIONS, captionFor } from './data/moving_mnist';
export type { MovingMnistOptions, MovingMnistSample, Direction } from './data/moving_mnist';
export { mnistDigits, digitImage, MNIST_SIZE } from './data/mnist';
export { saveVideo, loadVideo } from './io/video';
export type { SaveVideoOptions, LoadVideoOptions } from './io/video';
export { psnr, ssim, mse, psnrValues, ssimValues, mseValues } from './eval/metrics';
export * as nn from './nn';
export * as optim from './optim';
export { saveSafetensors, loadSafetensors, readSafetensorsHeader } from './io/safetensors';
export type { Safetensors, SafetensorsHeader, SafetensorsEntry } from './io/safetensors';
export { saveCheckpoint, loadCheckpoint, restoreCheckpoint, disposeCheckpoint } from './train/checkpoint';
export type { Checkpoint, CheckpointInput, RngState } from './train/checkpoint';
export { Patchifier } from './models/patchifier';
export type { PatchifierOptions, Packed, Bucket, Grid, PositionKind, PatchOrder } from './models/patchifier';
export { DiT, DiTBlock, FinalLayer, TimestepEmbedder, LabelEmbedder, TokenLayout, ditPresets } from './models/dit';
export type { DiTConfig, ResolvedDiTConfig, DiTCondition, DiTConditionKind, DiTAttention, AttentionMode, TextContext } from './models/dit';
export { TextEncoder, TextBlock, packTokens, unpackTokens, maskedMean } from './models/text';
export type { TextEncoderConfig, TextEncoding, PackedText } from './models/text';
export { Tokenizer } from './models/tokenizer';
export type { TokenizerState } from './models/tokenizer';
export { sincos1d, sincos2dDiT, sincos3d, rope3d, applyRotary } from './models/positions';
export {
  GaussianDiffusion, GaussianSchedule, RectifiedFlow, classifierFreeGuidance, concatCond, randomConditionFrames, betaSchedule,
  spacedTimesteps, timestepShift,
} from './diffusion';
export type {
  ModelFn, NoiseFn, ConditionFrames, GuidanceOptions, GaussianDiffusionOptions, GaussianSampleOptions, GaussianSampler,
  TrainingLossOptions, TrainingLoss, RectifiedFlowOptions, FlowLossOptions, FlowLoss, FlowSampleOptions,
} from './diffusion';
export {
  DigitClassifier, loadDigitClassifier, classifyVideoDigits, estimateDirection, estimateDirections, evaluatePromptAdherence,
  parsePrompt,
} from './eval';
export type { DigitPrediction, MotionEstimate, AdherenceOptions, AdherenceReport, PromptAdherence, PromptInput } from './eval';
export { trainDiT, sample, latentDataset, withFirstFrameImages } from './train/dit';
export type { TrainDiTOptions, TrainDiTResult, TrainDiTStep, SampleOptions, LatentDataset, LatentSample, LatentDecoder } from './train/dit';
export {
  VideoVAE, vaePresets, DiagonalGaussian, CausalCache, toModelRange, fromModelRange, toUint8, fromUint8,
} from './models/vae';
export type { VideoVAEConfig, EncodeOptions } from './models/vae';
export type { ChunkOptions } from './models/vae_tiling';
export { trainVAE, evaluateVAE } from './train/vae';
export type { TrainVAEOptions, TrainVAEResult, VAEStepInfo, VAECrop, EvaluateVAEOptions } from './train/vae';
export { encodeDataset, loadLatentCache, LatentCache } from './data/latent_cache';
export type { EncodeDatasetOptions, LatentCacheIndex, LatentSample as CachedLatent } from './data/latent_cache';
export { movingMnistDataset, subset } from './data/dataset';
export type { VideoDataset, VideoSample } from './data/dataset';
export { ImageFolder, VideoFolder, resizeCenterCrop } from './data/folders';
export type { FolderOptions, VideoFolderOptions, SkippedFile } from './data/folders';
export { trainDemoVAE, loadDemoVAE, demoVAESettings, demoVAEFiles, demoHeldOut } from './demo/vae_stage';
export type { DemoVAESettings, TrainDemoVAEOptions, DemoVAEMetrics, DemoVAEResult } from './demo/vae_stage';
export {
  demoDiTSettings, HELD_OUT_PROMPTS, encodeDemoLatents, trainDemoDiT, evaluateDemo, sampleVideos, createDemoDiT, saveDemoDiT, loadDemoDiT,
  demoTrainClips,
} from './demo/dit_stage';
export type { DemoDiTSettings, SamplingInfo, SampleVideosOptions, TrainDemoDiTResult } from './demo/dit_stage';
export {
  runDemo, planDemo, describePlan, loadDemoModels, demoFiles, writeDemoReport, encodeLatentsUntil, DEMO_BUDGETS, DEMO_STAGES,
} from './demo/pipeline';
export type { RunDemoOptions, RunDemoResult, DemoPlan, DemoState, DemoStage, DemoMetrics } from './demo/pipeline';
export { savePretrained, loadPretrained, PRETRAINED_DIR } from './demo/pretrained';
export type { Pretrained } from './demo/pretrained';
export { renderReport, writeReport, lossCurveSvg, readLossLog, REPORT_FIGURES } from './demo/report';
export type { DemoReportInput, LossPoint } from './demo/report';
