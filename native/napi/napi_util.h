// tessera N-API glue: argument conversion, tensor handles, error translation.
// No kernel work happens here: convert, call the core, convert back.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "core/ops.h"

namespace tsn {

// A JS-held tensor. dispose() drops the reference to the storage at once; the
// finalizer deletes the box (and the storage, if still held).
struct TensorBox {
  ts::Tensor t;
  int64_t reported = 0;  // bytes reported to V8 as external memory
  bool live = false;     // counted in live_handles()
};
// Drops the box's tensor now (dispose); the box itself goes with its finalizer.
void release_box(Napi::Env env, TensorBox* box);
// The box behind argument i (disposed or not); throws when it is not a tensor handle.
TensorBox* box_arg(const Napi::CallbackInfo& info, size_t i, const char* op);

Napi::Value wrap(Napi::Env env, ts::Tensor t);
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
