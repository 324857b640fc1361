// tessera distributed: NCCL loaded at run time (contracts in nccl.h). The loader
// builds everywhere; the collectives need the CUDA backend (TESSERA_WITH_CUDA).
#include "dist/nccl.h"

#include <cstring>

#include "core/ops.h"

#ifndef _WIN32
#include <dlfcn.h>
#endif
#ifdef TESSERA_WITH_CUDA
#include <cuda_runtime_api.h>
namespace ts {
namespace cuda {  // cuda/runtime.cuh (its header needs nvcc's cuda_runtime.h; these are plain C++)
cudaStream_t stream(int device);
void set_device(int device);
void check(cudaError_t e, const char* op);
}  // namespace cuda
}  // namespace ts
#endif

namespace ts {
namespace dist {
namespace nccl {

namespace {

// ---- NCCL's C ABI (nccl.h, 2.x): only what we call --------------------------------------
// Enums are passed as int (C enums are int-sized); ncclUniqueId is a 128-byte struct
// passed by value.
typedef struct ncclComm* ncclComm_t;
typedef struct CUstream_st* Stream;  // = cudaStream_t
struct ncclUniqueId {
  char internal[128];
};
typedef int ncclResult_t;  // ncclSuccess = 0
enum : int {
  ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclUint32 = 3, ncclInt64 = 4, ncclUint64 = 5,
  ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9,
};
enum : int { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 };
constexpr int kMinVersion = 21000;  // 2.10.0: ncclAvg and bfloat16

struct Api {
  ncclResult_t (*GetVersion)(int*);
  const char* (*GetErrorString)(ncclResult_t);
  ncclResult_t (*GetUniqueId)(ncclUniqueId*);
  ncclResult_t (*CommInitRank)(ncclComm_t*, int, ncclUniqueId, int);
  ncclResult_t (*CommDestroy)(ncclComm_t);
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t*);
  ncclResult_t (*AllReduce)(const void*, void*, size_t, int, int, ncclComm_t, Stream);
  ncclResult_t (*Broadcast)(const void*, void*, size_t, int, int, ncclComm_t, Stream);
  ncclResult_t (*AllGather)(const void*, void*, size_t, int, ncclComm_t, Stream);
};

Api api;
LoadResult state;

// Resolves every entry point of Api from h; returns the first missing name, or null.
const char* resolve(void* h, Api* a) {
#ifdef _WIN32
  return "ncclGetVersion";
#else
  struct Entry {
    const char* name;
    void** slot;
  };
  const Entry entries[] = {
      {"ncclGetVersion", reinterpret_cast<void**>(&a->GetVersion)},
      {"ncclGetErrorString", reinterpret_cast<void**>(&a->GetErrorString)},
      {"ncclGetUniqueId", reinterpret_cast<void**>(&a->GetUniqueId)},
      {"ncclCommInitRank", reinterpret_cast<void**>(&a->CommInitRank)},
      {"ncclCommDestroy", reinterpret_cast<void**>(&a->CommDestroy)},
      {"ncclCommGetAsyncError", reinterpret_cast<void**>(&a->CommGetAsyncError)},
      {"ncclAllReduce", reinterpret_cast<void**>(&a->AllReduce)},
      {"ncclBroadcast", reinterpret_cast<void**>(&a->Broadcast)},
      {"ncclAllGather", reinterpret_cast<void**>(&a->AllGather)},
  };
  for (const Entry& e : entries) {
    *e.slot = dlsym(h, e.name);
    if (!*e.slot) return e.name;
  }
  return nullptr;
#endif
}

std::string version_str(int v) {
  // 2.9+: major*10000 + minor*100 + patch; before: major*1000 + minor*100 + patch
  int major = v >= 10000 ? v / 10000 : v / 1000;
  int minor = v >= 10000 ? (v / 100) % 100 : (v / 100) % 10;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(v % 100);
}

}  // namespace

LoadResult load(const std::vector<std::string>& candidates) {
  if (state.loaded) return state;
  LoadResult r;
#ifdef _WIN32
  r.why = "NCCL is not supported on Windows";
#else
  for (const std::string& c : candidates) {
    if (!r.why.empty()) r.why += "; ";
    void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      std::string msg = e ? e : "dlopen failed";
      r.why += msg.rfind(c, 0) == 0 ? msg : c + ": " + msg;  // dlerror usually starts with the name
      continue;
    }
    Api a{};
    if (const char* missing = resolve(h, &a)) {
      r.why += c + ": opened, but it does not export " + missing + " (not NCCL?)";
      dlclose(h);
      continue;
    }
    int v = 0;
    if (a.GetVersion(&v) != 0 || v < kMinVersion) {
      r.why += c + ": NCCL " + version_str(v) + ", expected 2.10 or newer";
      dlclose(h);
      continue;
    }
    api = a;
    r.loaded = true;
    r.path = c;
    r.version = v;
    r.why.clear();
    state = r;
    return r;
  }
  if (candidates.empty()) r.why = "no candidate path for libnccl was given";
#endif
  return r;
}

bool loaded() { return state.loaded; }

bool cuda_built() {
#ifdef TESSERA_WITH_CUDA
  return true;
#else
  return false;
#endif
}

#ifndef TESSERA_WITH_CUDA

namespace {
[[noreturn]] void no_cuda(const char* op) {
  fail(op, "CUDA tensors need NCCL and the CUDA backend, and this addon was built without the CUDA backend");
}
}  // namespace
WorkPtr all_reduce(Tensor&, Reduce) { no_cuda("allReduce"); }
WorkPtr all_reduce_coalesced(const std::vector<Tensor>&, Reduce, Tensor*) { no_cuda("allReduceCoalesced"); }
WorkPtr broadcast(Tensor&, int) { no_cuda("broadcast"); }
WorkPtr all_gather(const Tensor&, Tensor*) { no_cuda("allGather"); }
void finalize() {}

#else  // TESSERA_WITH_CUDA

namespace {

struct Comm {
  ncclComm_t comm = nullptr;
  int device = -1;
  cudaStream_t side = nullptr;  // DDP buckets
};
Comm comm;

void check_nccl(ncclResult_t r, const char* op, const char* call) {
  if (r != 0) fail(op, call, " failed: ", api.GetErrorString ? api.GetErrorString(r) : "unknown NCCL error");
}

void check_async(const char* op) {
  if (!comm.comm) return;
  ncclResult_t e = 0;
  check_nccl(api.CommGetAsyncError(comm.comm, &e), op, "ncclCommGetAsyncError");
  if (e != 0 && e != 7 /* ncclInProgress */) check_nccl(e, op, "an NCCL collective");
}

int nccl_type(DType d, Reduce r, const char* op) {
  switch (d) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::BFloat16: return ncclBfloat16;
    case DType::Float16: return ncclFloat16;
    case DType::Int32: if (r != Reduce::Mean) return ncclInt32; break;
    case DType::Int64: if (r != Reduce::Mean) return ncclInt64; break;
    case DType::UInt8:
    case DType::Bool: if (r == Reduce::Max) return ncclUint8; break;
  }
  fail(op, "the reduction '", reduce_name(r), "' is not defined for ", dtype_name(d));
}

int nccl_op(Reduce r) { return r == Reduce::Sum ? ncclSum : r == Reduce::Mean ? ncclAvg : ncclMax; }

// The communicator, created at the first CUDA collective on t's device.
Comm& comm_for(const Tensor& t, const char* op) {
  TS_CHECK(state.loaded, op, "NCCL is not loaded: ", state.why.empty() ? "distributed.init() did not look for it" : state.why);
  TS_CHECK(t.is_contiguous(), op, "expected a contiguous tensor, got strides ", shape_str(t.strides()));
  const int dev = t.device().index;
  if (comm.comm) {
    TS_CHECK(comm.device == dev, op, "this process's NCCL communicator is on cuda:", comm.device,
             ", got a tensor on cuda:", dev, " (one GPU per process: put each rank's tensors on cuda:<localRank>)");
    return comm;
  }
  const int rank = initialized() ? dist::rank() : 0, size = initialized() ? world_size() : 1;
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank == 0) check_nccl(api.GetUniqueId(&id), op, "ncclGetUniqueId");
  if (size > 1)
    run_on_comm_thread("the NCCL unique id broadcast",
                       [](void* p) { mpi_broadcast_bytes(p, static_cast<int64_t>(sizeof(ncclUniqueId)), 0); }, &id);
  cuda::set_device(dev);
  check_nccl(api.CommInitRank(&comm.comm, size, id, rank), op, "ncclCommInitRank");
  cuda::check(cudaStreamCreateWithFlags(&comm.side, cudaStreamNonBlocking), op);
  comm.device = dev;
  return comm;
}

// A collective on a CUDA stream. `done` (or null when it ran on the compute stream,
// already in order) is recorded after it on the side stream; wait() makes the
// compute stream wait for it and then releases the tensors (the caching allocator
// reuses blocks in compute-stream order, so that is safe).
class NcclWork final : public Work {
 public:
  NcclWork(std::string what, int device, cudaEvent_t done, std::vector<Tensor> keep)
      : what_(std::move(what)), device_(device), done_(done), keep_(std::move(keep)) {}
  ~NcclWork() override {
    try {
      wait();
    } catch (...) {
    }
    if (done_) cudaEventDestroy(done_);
  }
  bool done() override { return !done_ || cudaEventQuery(done_) == cudaSuccess; }
  void wait() override {
    if (done_ && !waited_) {
      cuda::set_device(device_);
      cuda::check(cudaStreamWaitEvent(cuda::stream(device_), done_, 0), "wait");
      waited_ = true;
    }
    keep_.clear();
    check_async(what_.c_str());
  }
  const std::string& what() const override { return what_; }

 private:
  std::string what_;
  int device_;
  cudaEvent_t done_;
  std::vector<Tensor> keep_;
  bool waited_ = false;
};

}  // namespace

WorkPtr all_reduce(Tensor& t, Reduce r) {
  const char* op = "allReduce";
  Comm& c = comm_for(t, op);
  const int dt = nccl_type(t.dtype(), r, op);
  cuda::set_device(c.device);
  check_nccl(api.AllReduce(t.raw(), t.raw(), static_cast<size_t>(t.numel()), dt, nccl_op(r), c.comm,
                           cuda::stream(c.device)),
             op, "ncclAllReduce");
  return std::make_shared<NcclWork>(op, c.device, nullptr, std::vector<Tensor>{});
}

WorkPtr all_reduce_coalesced(const std::vector<Tensor>& parts, Reduce r, Tensor* out) {
  const char* op = "allReduceCoalesced";
  Comm& c = comm_for(parts[0], op);
  const int dt = nccl_type(parts[0].dtype(), r, op);
  int64_t total = 0;
  for (const Tensor& p : parts) {
    TS_CHECK(p.device() == parts[0].device(), op, "expected every tensor on ", parts[0].device().str());
    total += p.numel();
  }
  *out = Tensor::empty({total}, parts[0].dtype(), parts[0].device(), op);
  int64_t off = 0;
  for (const Tensor& p : parts) {  // copies on the compute stream, after the kernels that wrote p
    Tensor dst = out->slice(0, off, off + p.numel()).view(p.shape());
    copy_(dst, p);
    off += p.numel();
  }
  cuda::set_device(c.device);
  cudaStream_t compute = cuda::stream(c.device);
  cudaEvent_t ready = nullptr, done = nullptr;
  cuda::check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), op);
  cuda::check(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), op);
  cuda::check(cudaEventRecord(ready, compute), op);
  cuda::check(cudaStreamWaitEvent(c.side, ready, 0), op);
  cudaEventDestroy(ready);  // released once the wait has been satisfied
  check_nccl(api.AllReduce(out->raw(), out->raw(), static_cast<size_t>(total), dt, nccl_op(r), c.comm, c.side), op,
             "ncclAllReduce");
  cuda::check(cudaEventRecord(done, c.side), op);
  return std::make_shared<NcclWork>(op, c.device, done, std::vector<Tensor>{*out});
}

WorkPtr broadcast(Tensor& t, int root) {
  const char* op = "broadcast";
  Comm& c = comm_for(t, op);
  cuda::set_device(c.device);
  check_nccl(api.Broadcast(t.raw(), t.raw(), t.nbytes(), ncclUint8, root, c.comm, cuda::stream(c.device)), op,
             "ncclBroadcast");
  return std::make_shared<NcclWork>(op, c.device, nullptr, std::vector<Tensor>{});
}

WorkPtr all_gather(const Tensor& t, Tensor* out) {
  const char* op = "allGather";
  Comm& c = comm_for(t, op);
  Shape shape = t.shape();
  shape.insert(shape.begin(), initialized() ? world_size() : 1);
  *out = Tensor::empty(shape, t.dtype(), t.device(), op);
  cuda::set_device(c.device);
  check_nccl(api.AllGather(t.raw(), out->raw(), t.nbytes(), ncclUint8, c.comm, cuda::stream(c.device)), op,
             "ncclAllGather");
  return std::make_shared<NcclWork>(op, c.device, nullptr, std::vector<Tensor>{});
}

void finalize() {
  if (!comm.comm) return;
  cuda::set_device(comm.device);
  cudaStreamSynchronize(comm.side);
  api.CommDestroy(comm.comm);
  cudaStreamDestroy(comm.side);
  comm = Comm{};
}

#endif  // TESSERA_WITH_CUDA

}  // namespace nccl
}  // namespace dist
}  // namespace ts
