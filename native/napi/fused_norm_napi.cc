// tessera N-API: fused norms (see native/core/fused_norm.h). Converts arguments, calls
// the core, returns arrays of handles (null for a gradient that was not computed).
#include "core/fused_norm.h"
#include "napi_util.h"

using namespace tsn;

// groupNormSiLU(x, numGroups, weight?, bias?, eps, perFrame?) -> [out, mean, rstd]
TS_NAPI(groupNormSiLU) {
  const char* op = "groupNormSiLU";
  const bool per_frame = info.Length() > 5 && !info[5].IsUndefined() && bool_arg(info, 5, op);
  ts::NormOut r = ts::group_norm_silu(tensor_arg(info, 0, op), int_arg(info, 1, op), optional_tensor_arg(info, 2, op),
                                      optional_tensor_arg(info, 3, op), number_arg(info, 4, op), per_frame);
  return handles(info.Env(), {r.out, r.mean, r.rstd});
}
// groupNormSiLUBackward(dout, x, weight?, bias?, mean, rstd, numGroups, perFrame?) -> [dinp, dweight?, dbias?]
TS_NAPI(groupNormSiLUBackward) {
  const char* op = "groupNormSiLU";
  const bool per_frame = info.Length() > 7 && !info[7].IsUndefined() && bool_arg(info, 7, op);
  ts::NormGrads r = ts::group_norm_silu_backward(tensor_arg(info, 0, op), tensor_arg(info, 1, op),
                                                 optional_tensor_arg(info, 2, op), optional_tensor_arg(info, 3, op),
                                                 tensor_arg(info, 4, op), tensor_arg(info, 5, op), int_arg(info, 6, op),
                                                 per_frame);
  return handles(info.Env(), {r.dinp, r.dweight, r.dbias});
}

// layerNormModulate(x, shift, scale, eps) -> [out, mean, rstd]
TS_NAPI(layerNormModulate) {
  const char* op = "layerNormModulate";
  ts::NormOut r = ts::layer_norm_modulate(tensor_arg(info, 0, op), tensor_arg(info, 1, op), tensor_arg(info, 2, op),
                                          number_arg(info, 3, op));
  return handles(info.Env(), {r.out, r.mean, r.rstd});
}
// layerNormModulateBackward(dout, x, scale, mean, rstd) -> [dinp, dshift, dscale]
TS_NAPI(layerNormModulateBackward) {
  const char* op = "layerNormModulate";
  ts::ModulateGrads r = ts::layer_norm_modulate_backward(tensor_arg(info, 0, op), tensor_arg(info, 1, op),
                                                         tensor_arg(info, 2, op), tensor_arg(info, 3, op),
                                                         tensor_arg(info, 4, op));
  return handles(info.Env(), {r.dinp, r.dshift, r.dscale});
}
