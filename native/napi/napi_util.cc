#include "napi_util.h"

#include <atomic>
#include <cmath>
#include <utility>

namespace tsn {

namespace {
const napi_type_tag kTensorTag = {0x7e55e7a0c0ffee01ULL, 0x5ea5ca1e7e500001ULL};
std::atomic<int64_t> g_live{0};

std::vector<std::pair<const char*, NapiFn>>& registry() {
  static std::vector<std::pair<const char*, NapiFn>> r;
  return r;
}

[[noreturn]] void arg_error(const char* op, size_t i, const char* expected, const Napi::Value& v) {
  const char* got = "unknown";
  switch (v.Type()) {
    case napi_undefined: got = "undefined"; break;
    case napi_null: got = "null"; break;
    case napi_boolean: got = "boolean"; break;
    case napi_number: got = "number"; break;
    case napi_string: got = "string"; break;
    case napi_symbol: got = "symbol"; break;
    case napi_object: got = v.IsArray() ? "array" : "object"; break;
    case napi_function: got = "function"; break;
    case napi_external: got = "external"; break;
    case napi_bigint: got = "bigint"; break;
  }
  ts::fail(op, "argument ", i, " must be ", expected, ", got ", got);
}

void finalize_box(Napi::Env env, TensorBox* box) {
  if (box->reported) Napi::MemoryManagement::AdjustExternalMemory(env, -box->reported);
  if (box->live) --g_live;
  delete box;
}

Napi::Value dispatch(const Napi::CallbackInfo& info) {
  NapiFn fn = reinterpret_cast<NapiFn>(info.Data());
  try {
    return fn(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), "out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

}  // namespace

Napi::Object module_init(Napi::Env env, Napi::Object exports) {
  for (auto& [name, fn] : registry())
    exports.Set(name, Napi::Function::New(env, dispatch, name, reinterpret_cast<void*>(fn)));
  return exports;
}

Registrar::Registrar(const char* name, NapiFn fn) { registry().emplace_back(name, fn); }

int64_t live_handles() { return g_live.load(); }

void release_box(Napi::Env env, TensorBox* box) {
  box->t = ts::Tensor();
  if (box->live) {
    box->live = false;
    --g_live;
  }
  if (box->reported) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -box->reported);
    box->reported = 0;
  }
}

Napi::Value wrap(Napi::Env env, ts::Tensor t) {
  auto* box = new TensorBox();
  // Report fresh storages to V8 so its GC sees native memory pressure.
  if (t.defined() && t.storage().use_count() == 1) box->reported = static_cast<int64_t>(t.storage()->nbytes);
  box->t = std::move(t);
  box->live = true;
  ++g_live;
  if (box->reported) Napi::MemoryManagement::AdjustExternalMemory(env, box->reported);
  auto ext = Napi::External<TensorBox>::New(env, box, finalize_box);
  ext.TypeTag(&kTensorTag);
  return ext;
}

TensorBox* box_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length()) ts::fail(op, "missing argument ", i, " (a tensor)");
  Napi::Value v = info[i];
  if (!v.IsExternal()) arg_error(op, i, "a tensor", v);
  auto ext = v.As<Napi::External<TensorBox>>();
  if (!ext.CheckTypeTag(&kTensorTag)) arg_error(op, i, "a tensor", v);
  return ext.Data();
}

ts::Tensor& tensor_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  TensorBox* b = box_arg(info, i, op);
  if (!b->t.defined()) ts::fail(op, "tensor argument ", i, " was disposed");
  return b->t;
}

ts::Tensor optional_tensor_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return ts::Tensor();
  return tensor_arg(info, i, op);
}

std::vector<ts::Tensor> tensor_list_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsArray()) arg_error(op, i, "an array of tensors", i < info.Length() ? info[i] : info.Env().Undefined());
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<ts::Tensor> out;
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value v = a.Get(k);
    if (!v.IsExternal()) ts::fail(op, "element ", k, " of argument ", i, " must be a tensor");
    auto ext = v.As<Napi::External<TensorBox>>();
    if (!ext.CheckTypeTag(&kTensorTag)) ts::fail(op, "element ", k, " of argument ", i, " must be a tensor");
    if (!ext.Data()->t.defined()) ts::fail(op, "tensor ", k, " of argument ", i, " was disposed");
    out.push_back(ext.Data()->t);
  }
  return out;
}

double number_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsNumber()) arg_error(op, i, "a number", i < info.Length() ? info[i] : info.Env().Undefined());
  return info[i].As<Napi::Number>().DoubleValue();
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  double d = number_arg(info, i, op);
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0)
    ts::fail(op, "argument ", i, " must be an integer, got ", d);
  return static_cast<int64_t>(d);
}

bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsBoolean()) arg_error(op, i, "a boolean", i < info.Length() ? info[i] : info.Env().Undefined());
  return info[i].As<Napi::Boolean>().Value();
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsString()) arg_error(op, i, "a string", i < info.Length() ? info[i] : info.Env().Undefined());
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> ints_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsArray()) arg_error(op, i, "an array of integers", i < info.Length() ? info[i] : info.Env().Undefined());
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<int64_t> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value v = a.Get(k);
    if (!v.IsNumber()) ts::fail(op, "element ", k, " of argument ", i, " must be an integer");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0)
      ts::fail(op, "element ", k, " of argument ", i, " must be an integer, got ", d);
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

ts::Shape shape_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  ts::Shape s = ints_arg(info, i, op);
  ts::check_shape(s, op);
  return s;
}

ts::DType dtype_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  std::string n = string_arg(info, i, op);
  ts::DType d;
  if (!ts::dtype_from_name(n, &d))
    ts::fail(op, "unknown dtype '", n, "' (expected float32, float64, bfloat16, float16, int32, int64, uint8 or bool)");
  return d;
}

ts::Device device_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  std::string n = string_arg(info, i, op);
  ts::Device d;
  if (!ts::device_from_name(n, &d)) ts::fail(op, "unknown device '", n, "' (expected 'cpu', 'cuda' or 'cuda:N')");
  return d;
}

Napi::Array shape_to_js(Napi::Env env, const ts::Shape& s) {
  Napi::Array a = Napi::Array::New(env, s.size());
  for (size_t k = 0; k < s.size(); ++k) a.Set(static_cast<uint32_t>(k), Napi::Number::New(env, static_cast<double>(s[k])));
  return a;
}

}  // namespace tsn

static Napi::Object tessera_init(Napi::Env env, Napi::Object exports) { return tsn::module_init(env, exports); }
NODE_API_MODULE(tessera, tessera_init)
