// tessera N-API glue: argument conversion, tensor handles, error translation.
// No kernel work happens here: convert, call the core, convert back.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "core/ops.h"

namespace tsn {

// JS holds tensors as numeric handles into a native table: handle = generation *
// 2^26 + slot. dispose() empties the slot at once; a stale handle (its slot freed
// or reused) is detected by the generation and reported as disposed. Numbers, not
// N-API externals, because externals are freed only by finalizers that Node runs
// on event-loop turns: a synchronous training loop would pile them up.
Napi::Value wrap(Napi::Env env, ts::Tensor t);
// wrap(), or null for an undefined (not wanted) tensor.
Napi::Value opt_wrap(Napi::Env env, const ts::Tensor& t);
// Several results (e.g. out, mean, rstd) as a JS array of handles, null where undefined.
Napi::Array handles(Napi::Env env, std::initializer_list<ts::Tensor> tensors);
// The tensor behind argument i; throws a JS-visible ts::Error naming op when it is
// not a tensor handle or was disposed.
ts::Tensor& tensor_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
ts::Tensor optional_tensor_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
std::vector<ts::Tensor> tensor_list_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
ts::Shape shape_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
std::vector<int64_t> ints_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
double number_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
ts::DType dtype_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
ts::Device device_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
Napi::Array shape_to_js(Napi::Env env, const ts::Shape& s);

// Frees the tensor behind argument i now; a stale or disposed handle is a no-op.
void dispose_arg(const Napi::CallbackInfo& info, size_t i);
int64_t live_handles();
Napi::Object module_init(Napi::Env env, Napi::Object exports);

// Registration: each .cc registers its exports with TS_NAPI(name) { ... } at static
// init; the module init installs them all, each wrapped so that a C++ exception
// becomes a JS Error with the same message.
using NapiFn = Napi::Value (*)(const Napi::CallbackInfo&);
struct Registrar {
  Registrar(const char* name, NapiFn fn);
};

}  // namespace tsn

#define TS_NAPI(name)                                                   \
  static Napi::Value napi_##name(const Napi::CallbackInfo& info);      \
  static ::tsn::Registrar registrar_##name(#name, napi_##name);        \
  static Napi::Value napi_##name(const Napi::CallbackInfo& info)
