// tessera: Sora-style video diffusion in TypeScript on a native C++/CUDA core. The public
// API: tensors, ops, nn, optim, models, diffusion, training loops, data, io and metrics.
// The Moving MNIST demo (its pipeline, stages, report, pretrained bundle and digit
// classifier) is 'tessera/demo'. Nothing inside lib/ imports this file.
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
export * as checks from './checks';
export * as nn from './nn';
export * as optim from './optim';
export * as distributed from './distributed';
export { saveSafetensors, loadSafetensors, readSafetensorsHeader } from './io/safetensors';
export type { Safetensors, SafetensorsHeader, SafetensorsEntry } from './io/safetensors';
export { saveCheckpoint, loadCheckpoint, restoreCheckpoint, disposeCheckpoint, latestCheckpoint } from './train/checkpoint';
export type { Checkpoint, CheckpointInput, RngState } from './train/checkpoint';
export { Patchifier } from './models/patchifier';
export type { PatchifierOptions, Packed, Bucket, Grid, PositionKind, PatchOrder } from './models/patchifier';
export { DiT, DiTBlock, FinalLayer, TimestepEmbedder, LabelEmbedder, SpacetimeAttention, TokenLayout, ditPresets } from './models/dit';
export type { DiTConfig, ResolvedDiTConfig, DiTCondition, DiTConditionKind, DiTAttention, AttentionMode, TextContext, Timesteps } from './models/dit';
export { TextEncoder, TextBlock, packTokens, unpackTokens, maskedTokenMean } from './models/text';
export type { TextEncoderConfig, TextEncoding, PackedText } from './models/text';
export { Tokenizer } from './models/tokenizer';
export type { TokenizerState, Tokenized } from './models/tokenizer';
export { sincos1d, sincos2dDiT, sincos3d, rope3d, applyRotary } from './models/positions';
export {
  GaussianDiffusion, GaussianSchedule, RectifiedFlow, classifierFreeGuidance, concatCond, randomConditionFrames, randomFrameMask, betaSchedule,
  spacedTimesteps, timestepShift, frameMaskedMean, frameTimesteps, keepFrames,
} from './diffusion';
export type {
  Diffusion, TrainingBatch, DiffusionSampleOptions, ModelFn, NoiseFn, ConditionFrames, GuidanceOptions, GaussianDiffusionOptions,
  GaussianSampleOptions, GaussianSampler, TrainingLossOptions, TrainingLoss, RectifiedFlowOptions, FlowLossOptions, FlowLoss, FlowSampleOptions,
} from './diffusion';
export { trainDiT, sample, latentDataset, withFirstFrameImages, packedTrainingStep } from './train/dit';
export type { Precision } from './train/precision';
export type { DistributedOption, DataParallelOptions } from './train/distributed';
export type { TrainDiTOptions, TrainDiTResult, TrainDiTStep, SampleOptions, LatentDataset, LatentSample, LatentDecoder, PackedPart } from './train/dit';
export {
  VideoVAE, vaePresets, DiagonalGaussian, CausalCache, toModelRange, fromModelRange, toUint8, fromUint8,
} from './models/vae';
export type { VideoVAEConfig, EncodeOptions } from './models/vae';
export type { ChunkOptions } from './models/vae_tiling';
export { trainVAE, evaluateVAE } from './train/vae';
export type { TrainVAEOptions, TrainVAEResult, VAEStepInfo, VAECrop, EvaluateVAEOptions } from './train/vae';
export { loadLatentCache, LatentCache, LatentCacheWriter } from './data/latent_cache';
export type { LatentCacheIndex, LatentSample as CachedLatent } from './data/latent_cache';
export { encodeDataset } from './train/encode';
export type { EncodeDatasetOptions } from './train/encode';
export { movingMnistDataset, subset } from './data/dataset';
export type { VideoDataset, VideoSample } from './data/dataset';
export { ImageFolder, VideoFolder, resizeCenterCrop } from './data/folders';
export type { FolderOptions, VideoFolderOptions, SkippedFile } from './data/folders';
export { openVideoDataset, VideoClipDataset, VideoClipView, DEFAULT_BUCKET_SIZES, DEFAULT_BUCKET_FRAMES } from './data/video_dataset';
export type { VideoDatasetOptions, VideoBucketOptions, VideoEntry, ClipSpec, VideoBucket, VideoBatch } from './data/video_dataset';
export { findFfmpeg, probeVideo, decodeClipSync, clipWindowArgs, coverCropFilter, rgbFramesToPlanar } from './io/video';
export type { FfmpegInfo, VideoProbe, ClipWindow } from './io/video';
export { encodeBuckets, loadLatentBuckets, latentBucketsDataset } from './train/encode_buckets';
export type { LatentBucketsIndex } from './train/encode_buckets';
