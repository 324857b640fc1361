// ts.nn: modules, layers and initialization.
export { Module, Parameter } from './module';
export type { StateDict, LoadStateDictResult } from './module';
export { Linear, Identity, SiLU, GELU, ModuleList, Sequential, MLP } from './layers';
export { Conv3d, GroupNorm, LayerNorm, RMSNorm, Embedding, Dropout, MultiHeadAttention } from './layers_more';
export type { Conv3dLayerOptions, AttentionCallOptions } from './layers_more';
export type { LayerOptions, MLPOptions } from './layers';
export * as init from './init';
