// tessera N-API: optimizer updates (in place on the tensors passed in).
#include "core/optim.h"
#include "napi_util.h"

using namespace tsn;

// adamwStep(param, m, v, grad, lr, beta1, beta2, eps, weightDecay, step): one fused
// AdamW step; param, m and v are overwritten in place.
TS_NAPI(adamwStep) {
  const char* op = "adamw";
  ts::AdamWStep s;
  s.lr = number_arg(info, 4, op);
  s.beta1 = number_arg(info, 5, op);
  s.beta2 = number_arg(info, 6, op);
  s.eps = number_arg(info, 7, op);
  s.weight_decay = number_arg(info, 8, op);
  s.step = int_arg(info, 9, op);
  ts::adamw_update_(tensor_arg(info, 0, op), tensor_arg(info, 1, op), tensor_arg(info, 2, op), tensor_arg(info, 3, op),
                    s);
  return info.Env().Undefined();
}

// sumOfSquares(tensors) -> handle: float64 [1] on their device, the sum of x^2 over all of them.
TS_NAPI(sumOfSquares) {
  const char* op = "sumOfSquares";
  return wrap(info.Env(), ts::sum_of_squares(tensor_list_arg(info, 0, op)));
}
// clipByNorm_(tensors, sumsq, maxNorm): x *= maxNorm / (sqrt(sumsq) + 1e-6) when below 1, on the device.
TS_NAPI(clipByNorm_) {
  const char* op = "clipByNorm_";
  ts::clip_by_norm_(tensor_list_arg(info, 0, op), tensor_arg(info, 1, op), number_arg(info, 2, op));
  return info.Env().Undefined();
}
// scale_(tensors, s): x *= s in place for each.
TS_NAPI(scale_) {
  const char* op = "scale_";
  ts::scale_(tensor_list_arg(info, 0, op), number_arg(info, 1, op));
  return info.Env().Undefined();
}
// emaUpdate(shadow, params, decay): shadow = decay * shadow + (1 - decay) * param, in place.
TS_NAPI(emaUpdate) {
  const char* op = "emaUpdate";
  ts::ema_update_(tensor_list_arg(info, 0, op), tensor_list_arg(info, 1, op), number_arg(info, 2, op));
  return info.Env().Undefined();
}
