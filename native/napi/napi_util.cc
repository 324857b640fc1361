#include "napi_util.h"

#include <atomic>
#include <deque>
#include <mutex>
#include <cmath>
#include <utility>

namespace tsn {

namespace {
constexpr double kSlotSpan = 67108864.0;  // 2^26 slots
constexpr uint32_t kGenMask = (1u << 26) - 1;

struct Slot {
  ts::Tensor t;
  uint32_t gen = 0;
  int64_t reported = 0;  // bytes reported to V8 as external memory
  bool live = false;
};
std::mutex g_mu;  // worker threads share this addon's statics
std::deque<Slot> g_slots;  // deque: growing never moves a slot that a caller references
std::vector<uint32_t> g_free_slots;
int64_t g_live = 0;

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

// Slot index of a live handle; -1: not a handle; -2: disposed or stale. Caller holds g_mu.
int64_t find_slot(const Napi::Value& v) {
  if (!v.IsNumber()) return -1;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d) return -1;
  double gen = std::floor(d / kSlotSpan);
  uint64_t slot = static_cast<uint64_t>(d - gen * kSlotSpan);
  if (slot >= g_slots.size()) return -1;
  const Slot& s = g_slots[slot];
  if (!s.live || s.gen != static_cast<uint32_t>(gen)) return -2;
  return static_cast<int64_t>(slot);
}
}  // namespace

Napi::Object module_init(Napi::Env env, Napi::Object exports) {
  for (auto& [name, fn] : registry())
    exports.Set(name, Napi::Function::New(env, dispatch, name, reinterpret_cast<void*>(fn)));
  return exports;
}

Registrar::Registrar(const char* name, NapiFn fn) { registry().emplace_back(name, fn); }

int64_t live_handles() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_live;
}

Napi::Value wrap(Napi::Env env, ts::Tensor t) {
  // Report fresh storages to V8 so its GC sees native memory pressure.
  int64_t reported = (t.defined() && t.storage().use_count() == 1) ? static_cast<int64_t>(t.storage()->nbytes) : 0;
  uint32_t slot, gen;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    if (!g_free_slots.empty()) {
      slot = g_free_slots.back();
      g_free_slots.pop_back();
    } else {
      if (g_slots.size() >= static_cast<size_t>(kSlotSpan)) ts::fail("tensor", "too many live tensors (2^26)");
      slot = static_cast<uint32_t>(g_slots.size());
      g_slots.emplace_back();
    }
    Slot& s = g_slots[slot];
    s.gen = (s.gen + 1) & kGenMask;
    s.t = std::move(t);
    s.reported = reported;
    s.live = true;
    gen = s.gen;
    ++g_live;
  }
  if (reported) Napi::MemoryManagement::AdjustExternalMemory(env, reported);
  return Napi::Number::New(env, static_cast<double>(gen) * kSlotSpan + slot);
}

Napi::Value opt_wrap(Napi::Env env, const ts::Tensor& t) { return t.defined() ? wrap(env, t) : env.Null(); }

Napi::Array handles(Napi::Env env, std::initializer_list<ts::Tensor> tensors) {
  Napi::Array a = Napi::Array::New(env, tensors.size());
  uint32_t i = 0;
  for (const ts::Tensor& t : tensors) a.Set(i++, opt_wrap(env, t));
  return a;
}

ts::Tensor& tensor_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length()) ts::fail(op, "missing argument ", i, " (a tensor)");
  std::lock_guard<std::mutex> lk(g_mu);
  int64_t slot = find_slot(info[i]);
  if (slot == -2) ts::fail(op, "tensor argument ", i, " was disposed");
  if (slot < 0) arg_error(op, i, "a tensor", info[i]);
  return g_slots[slot].t;
}

void dispose_arg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length()) return;
  int64_t reported = 0;
  ts::Tensor dropped;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    int64_t slot = find_slot(info[i]);
    if (slot == -1) arg_error("dispose", i, "a tensor", info[i]);
    if (slot < 0) return;
    Slot& s = g_slots[slot];
    dropped = std::move(s.t);  // the storage is freed after the lock is released
    s.t = ts::Tensor();
    s.live = false;
    reported = s.reported;
    s.reported = 0;
    --g_live;
    g_free_slots.push_back(static_cast<uint32_t>(slot));
  }
  if (reported) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -reported);
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
    std::lock_guard<std::mutex> lk(g_mu);
    int64_t slot = find_slot(v);
    if (slot == -2) ts::fail(op, "tensor ", k, " of argument ", i, " was disposed");
    if (slot < 0) ts::fail(op, "element ", k, " of argument ", i, " must be a tensor");
    out.push_back(g_slots[slot].t);
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
  if (!ts::device_from_name(n, &d)) ts::fail(op, "unknown device '", n, "' (expected 'cpu', 'cpu:N', 'cuda' or 'cuda:N')");
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
