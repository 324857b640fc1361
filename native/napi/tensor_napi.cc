// tessera N-API: tensor creation, views, reading values, memory and runtime info.
#include <cstring>

#include "core/device_info.h"
#include "core/precision.h"
#include "core/parallel.h"
#include "cpu/cpu.h"
#include "napi_util.h"

using namespace tsn;

namespace {
// dtype of the elements a JS typed array holds
bool typed_array_dtype(const Napi::TypedArray& a, ts::DType* out) {
  switch (a.TypedArrayType()) {
    case napi_float32_array: *out = ts::DType::Float32; return true;
    case napi_float64_array: *out = ts::DType::Float64; return true;
    case napi_int32_array: *out = ts::DType::Int32; return true;
    case napi_bigint64_array: *out = ts::DType::Int64; return true;
    case napi_uint8_array: *out = ts::DType::UInt8; return true;
    case napi_uint16_array: *out = ts::DType::BFloat16; return true;  // raw 16-bit words, see fromData
    default: return false;
  }
}
}  // namespace

// fromData(typedArray, shape, dtype, device[, rawDtype]): rawDtype names the dtype
// of a Uint16Array's words ('bfloat16' or 'float16').
TS_NAPI(fromData) {
  const char* op = "tensor";
  if (info.Length() < 1 || !info[0].IsTypedArray()) ts::fail(op, "argument 0 must be a typed array");
  Napi::TypedArray a = info[0].As<Napi::TypedArray>();
  ts::DType src;
  if (!typed_array_dtype(a, &src)) ts::fail(op, "unsupported typed array type for tensor data");
  if (info.Length() > 4 && info[4].IsString()) src = dtype_arg(info, 4, op);
  ts::Shape shape = shape_arg(info, 1, op);
  ts::DType dt = dtype_arg(info, 2, op);
  ts::Device dev = device_arg(info, 3, op);
  const char* data = static_cast<const char*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  return wrap(info.Env(), ts::from_host(data, a.ByteLength(), src, shape, dt, dev));
}

TS_NAPI(full) {
  return wrap(info.Env(), ts::full(shape_arg(info, 0, "full"), number_arg(info, 1, "full"), dtype_arg(info, 2, "full"),
                                   device_arg(info, 3, "full")));
}

TS_NAPI(arange) {
  return wrap(info.Env(), ts::arange(number_arg(info, 0, "arange"), number_arg(info, 1, "arange"),
                                     number_arg(info, 2, "arange"), dtype_arg(info, 3, "arange"),
                                     device_arg(info, 4, "arange")));
}

TS_NAPI(rand) {
  return wrap(info.Env(), ts::rand(shape_arg(info, 0, "rand"), dtype_arg(info, 1, "rand"), device_arg(info, 2, "rand"),
                                   ts::default_generator()));
}

TS_NAPI(randn) {
  return wrap(info.Env(), ts::randn(shape_arg(info, 0, "randn"), dtype_arg(info, 1, "randn"),
                                    device_arg(info, 2, "randn"), ts::default_generator()));
}

// manualSeed(seed): seed is a non-negative integer below 2^53.
TS_NAPI(manualSeed) {
  int64_t s = int_arg(info, 0, "manualSeed");
  if (s < 0) ts::fail("manualSeed", "expected a non-negative integer seed, got ", s);
  ts::manual_seed(static_cast<uint64_t>(s));
  return info.Env().Undefined();
}

// rngState() -> [seed, offset]; setRngState(seed, offset): for checkpoints.
TS_NAPI(rngState) {
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(ts::default_generator().seed)));
  a.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(ts::default_generator().offset)));
  return a;
}
TS_NAPI(setRngState) {
  int64_t s = int_arg(info, 0, "setRngState"), o = int_arg(info, 1, "setRngState");
  if (s < 0 || o < 0) ts::fail("setRngState", "expected non-negative seed and offset, got ", s, " and ", o);
  ts::default_generator().seed = static_cast<uint64_t>(s);
  ts::default_generator().offset = static_cast<uint64_t>(o);
  return info.Env().Undefined();
}

// meta(h) -> [shape, dtype, device]
TS_NAPI(meta) {
  ts::Tensor& t = tensor_arg(info, 0, "meta");
  Napi::Array a = Napi::Array::New(info.Env(), 3);
  a.Set(0u, shape_to_js(info.Env(), t.shape()));
  a.Set(1u, Napi::String::New(info.Env(), ts::dtype_name(t.dtype())));
  a.Set(2u, Napi::String::New(info.Env(), t.device().str()));
  return a;
}

TS_NAPI(strides) { return shape_to_js(info.Env(), tensor_arg(info, 0, "strides").strides()); }
TS_NAPI(isContiguous) { return Napi::Boolean::New(info.Env(), tensor_arg(info, 0, "isContiguous").is_contiguous()); }

// read(h, dtype) -> a typed array of the values in C order, converted to dtype
// (float32/bfloat16/float16 -> Float32Array, float64 -> Float64Array, int32 ->
// Int32Array, int64 -> BigInt64Array, uint8/bool -> Uint8Array).
TS_NAPI(read) {
  ts::Tensor& t = tensor_arg(info, 0, "read");
  ts::DType want = dtype_arg(info, 1, "read");
  if (want == ts::DType::BFloat16 || want == ts::DType::Float16) want = ts::DType::Float32;
  size_t n = static_cast<size_t>(t.numel());
  Napi::Env env = info.Env();
  auto buf = Napi::ArrayBuffer::New(env, n * ts::dtype_size(want));
  ts::to_host(t, want, buf.Data(), n * ts::dtype_size(want));
  switch (want) {
    case ts::DType::Float32: return Napi::Float32Array::New(env, n, buf, 0);
    case ts::DType::Float64: return Napi::Float64Array::New(env, n, buf, 0);
    case ts::DType::Int32: return Napi::Int32Array::New(env, n, buf, 0);
    case ts::DType::Int64: return Napi::BigInt64Array::New(env, n, buf, 0);
    default: return Napi::Uint8Array::New(env, n, buf, 0);
  }
}

// readRaw(h) -> Uint8Array of the raw bytes (C order, own dtype): for file writers.
TS_NAPI(readRaw) {
  ts::Tensor& t = tensor_arg(info, 0, "readRaw");
  size_t n = t.nbytes();
  auto buf = Napi::Uint8Array::New(info.Env(), n);
  ts::to_host(t, t.dtype(), buf.Data(), n);
  return buf;
}

TS_NAPI(dispose) {
  dispose_arg(info, 0);
  return info.Env().Undefined();
}

TS_NAPI(reshape) { return wrap(info.Env(), tensor_arg(info, 0, "reshape").reshape(ints_arg(info, 1, "reshape"))); }
TS_NAPI(view) { return wrap(info.Env(), tensor_arg(info, 0, "view").view(ints_arg(info, 1, "view"))); }
TS_NAPI(permute) { return wrap(info.Env(), tensor_arg(info, 0, "permute").permute(ints_arg(info, 1, "permute"))); }
TS_NAPI(transpose) {
  return wrap(info.Env(), tensor_arg(info, 0, "transpose").transpose(int_arg(info, 1, "transpose"), int_arg(info, 2, "transpose")));
}
TS_NAPI(slice) {
  return wrap(info.Env(), tensor_arg(info, 0, "slice").slice(int_arg(info, 1, "slice"), int_arg(info, 2, "slice"),
                                                             int_arg(info, 3, "slice"), int_arg(info, 4, "slice")));
}
TS_NAPI(expand) { return wrap(info.Env(), tensor_arg(info, 0, "expand").expand(shape_arg(info, 1, "expand"))); }
TS_NAPI(contiguous) { return wrap(info.Env(), tensor_arg(info, 0, "contiguous").contiguous()); }
TS_NAPI(clone) { return wrap(info.Env(), tensor_arg(info, 0, "clone").clone()); }
TS_NAPI(alias) { return wrap(info.Env(), tensor_arg(info, 0, "alias").alias()); }
TS_NAPI(toDtype) { return wrap(info.Env(), ts::to_dtype(tensor_arg(info, 0, "to"), dtype_arg(info, 1, "to"))); }
TS_NAPI(toDevice) { return wrap(info.Env(), ts::to_device(tensor_arg(info, 0, "to"), device_arg(info, 1, "to"))); }
TS_NAPI(cat) { return wrap(info.Env(), ts::cat(tensor_list_arg(info, 0, "cat"), int_arg(info, 1, "cat"))); }
// copyInto(dst, src): writes src's values into dst (same shape), in place.
TS_NAPI(copyInto) {
  ts::Tensor& dst = tensor_arg(info, 0, "copy");
  ts::copy_(dst, tensor_arg(info, 1, "copy"));
  return info.Env().Undefined();
}

TS_NAPI(memory) {
  ts::MemoryStats s = ts::memory_stats();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("tensors", Napi::Number::New(env, static_cast<double>(live_handles())));
  o.Set("storages", Napi::Number::New(env, static_cast<double>(s.storages)));
  Napi::Object bytes = Napi::Object::New(env);
  bytes.Set("cpu", Napi::Number::New(env, static_cast<double>(s.cpu_bytes)));
  bytes.Set("cuda", Napi::Number::New(env, static_cast<double>(s.cuda_bytes)));
  o.Set("bytes", bytes);
  o.Set("peakBytes", Napi::Number::New(env, static_cast<double>(s.peak_bytes)));
  o.Set("cudaReservedBytes", Napi::Number::New(env, static_cast<double>(s.cuda_reserved)));
  o.Set("cpuCachedBytes", Napi::Number::New(env, static_cast<double>(s.cpu_cached)));
  o.Set("hostReads", Napi::Number::New(env, static_cast<double>(s.host_reads)));
  o.Set("hostReadBytes", Napi::Number::New(env, static_cast<double>(s.host_read_bytes)));
  Napi::Object devs = Napi::Object::New(env);
  for (const ts::DeviceMemory& d : ts::device_memory()) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("bytes", Napi::Number::New(env, static_cast<double>(d.bytes)));
    e.Set("peakBytes", Napi::Number::New(env, static_cast<double>(d.peak)));
    devs.Set(d.device.str(), e);
  }
  o.Set("devices", devs);
  return o;
}

TS_NAPI(resetPeakMemory) {
  ts::reset_peak_memory();
  return info.Env().Undefined();
}

TS_NAPI(setNumThreads) {
  int64_t n = int_arg(info, 0, "setNumThreads");
  if (n < 1 || n > 1024) ts::fail("setNumThreads", "expected 1 to 1024 threads, got ", n);
  ts::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}
TS_NAPI(getNumThreads) { return Napi::Number::New(info.Env(), ts::num_threads()); }

TS_NAPI(setReferenceKernels) {
  ts::cpu::set_reference_kernels(bool_arg(info, 0, "setReferenceKernels"));
  return info.Env().Undefined();
}

// measurePeakGflops(seconds): this machine's fp32 FMA peak on the current threads.
TS_NAPI(measurePeakGflops) {
  double s = number_arg(info, 0, "measurePeakGflops");
  if (!(s > 0 && s <= 10)) ts::fail("measurePeakGflops", "expected 0 < seconds <= 10, got ", s);
  return Napi::Number::New(info.Env(), ts::cpu::measure_peak_gflops(s));
}

// setMatmulPrecision('highest' | 'high' | 'medium'); getMatmulPrecision() -> name.
TS_NAPI(setMatmulPrecision) {
  std::string n = string_arg(info, 0, "setFloat32MatmulPrecision");
  ts::MatmulPrecision p;
  if (n == "highest") p = ts::MatmulPrecision::Highest;
  else if (n == "high") p = ts::MatmulPrecision::High;
  else if (n == "medium") p = ts::MatmulPrecision::Medium;
  else ts::fail("setFloat32MatmulPrecision", "expected 'highest', 'high' or 'medium', got '", n, "'");
  ts::set_float32_matmul_precision(p);
  return info.Env().Undefined();
}
TS_NAPI(getMatmulPrecision) {
  return Napi::String::New(info.Env(), ts::matmul_precision_name(ts::float32_matmul_precision()));
}
TS_NAPI(cudaEmptyCache) {
  ts::cuda_empty_cache();
  return info.Env().Undefined();
}
TS_NAPI(cpuEmptyCache) {
  ts::cpu_empty_cache();
  return info.Env().Undefined();
}
TS_NAPI(cpuCacheLimit) { return Napi::Number::New(info.Env(), static_cast<double>(ts::cpu_cache_limit())); }
TS_NAPI(setCpuCacheLimit) {
  int64_t n = int_arg(info, 0, "setCpuCacheLimit");
  if (n < 0) ts::fail("setCpuCacheLimit", "expected a limit of 0 or more bytes, got ", n);
  ts::set_cpu_cache_limit(static_cast<size_t>(n));
  return info.Env().Undefined();
}

TS_NAPI(info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Object cpu = Napi::Object::New(env);
  const auto& f = ts::cpu::features();
  Napi::Array feats = Napi::Array::New(env);
  uint32_t k = 0;
  if (f.avx2) feats.Set(k++, "avx2");
  if (f.fma) feats.Set(k++, "fma");
  if (f.avx512f) feats.Set(k++, "avx512f");
  if (f.avx512bw) feats.Set(k++, "avx512bw");
  if (f.avx512_bf16) feats.Set(k++, "avx512bf16");
  cpu.Set("features", feats);
  cpu.Set("threads", Napi::Number::New(env, ts::num_threads()));
  cpu.Set("hardwareThreads", Napi::Number::New(env, ts::hardware_threads()));
  cpu.Set("gemmKernel", f.avx512f && f.fma ? "avx512 12x32" : (f.avx2 && f.fma ? "avx2 6x16" : "scalar 4x8"));
#ifdef _OPENMP
  cpu.Set("openmp", true);
#else
  cpu.Set("openmp", false);
#endif
  o.Set("cpu", cpu);
  std::string why;
  std::vector<ts::CudaDeviceInfo> devs;
  bool ok = ts::cuda_available(&why, &devs);
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("available", ok);
#ifdef TESSERA_WITH_CUDA
  cuda.Set("built", true);
#else
  cuda.Set("built", false);
#endif
  Napi::Array da = Napi::Array::New(env, devs.size());
  for (size_t i = 0; i < devs.size(); ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", devs[i].index);
    d.Set("name", devs[i].name);
    d.Set("totalMemory", static_cast<double>(devs[i].total_memory));
    d.Set("computeCapability", std::to_string(devs[i].major) + "." + std::to_string(devs[i].minor));
    da.Set(static_cast<uint32_t>(i), d);
  }
  cuda.Set("devices", da);
  o.Set("hostDevices", Napi::Number::New(env, ts::host_device_count()));
  if (!ok) cuda.Set("reason", why);
  o.Set("cuda", cuda);
  return o;
}
