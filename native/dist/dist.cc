// tessera distributed: the MPI process group and its communication thread (the
// contracts are in dist.h). Built with or without MPI: without it, init() says
// why, and nothing else can be reached (the JS layer handles world size 1 itself).
#include "dist/dist.h"

#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "dist/nccl.h"

#ifndef _WIN32
#include <dlfcn.h>
#include <unistd.h>
#endif
#ifdef TESSERA_WITH_MPI
// The C API only: without these, a C++ compile of mpi.h pulls in the deprecated MPI
// C++ bindings, whose symbols live in libmpi_cxx (not linked).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace ts {
namespace dist {

Reduce reduce_from_name(const std::string& name, const char* op) {
  if (name == "sum") return Reduce::Sum;
  if (name == "mean") return Reduce::Mean;
  if (name == "max") return Reduce::Max;
  fail(op, "expected the reduction 'sum', 'mean' or 'max', got '", name, "'");
}

const char* reduce_name(Reduce r) {
  switch (r) {
    case Reduce::Sum: return "sum";
    case Reduce::Mean: return "mean";
    case Reduce::Max: return "max";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;

// A collective run by the communication thread. Owned by its callers (shared_ptr);
// the thread only holds a raw pointer while the work is queued or running, and the
// owner never releases it before it is done (the destructor waits).
class CpuWork final : public Work {
 public:
  CpuWork(std::string what, std::function<void()> run, std::vector<Tensor> keep)
      : what_(std::move(what)), run_(std::move(run)), keep_(std::move(keep)) {}
  ~CpuWork() override;
  bool done() override;
  void wait() override;
  const std::string& what() const override { return what_; }

  std::string what_;
  std::function<void()> run_;  // runs on the communication thread; captures raw pointers only
  std::vector<Tensor> keep_;   // released by wait(), on the caller's thread
  bool done_ = false;          // guarded by Group::mu
  bool submitted_ = false;
  std::string error_;
};

struct Group {
  std::mutex mu;
  std::condition_variable cv_queue, cv_done;
  std::deque<CpuWork*> queue;
  CpuWork* running = nullptr;
  Clock::time_point running_since;
  bool stop = false, exited = false;
  std::thread thread;
  bool up = false, finalized = false;
  int rank = 0, size = 1;
  double timeout = 300;
};
// Never destroyed: a static destructor must not meet a joinable thread at exit.
Group& g = *new Group;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string bytes_str(double n) {
  char buf[64];
  if (n >= 1 << 20) std::snprintf(buf, sizeof buf, "%.1f MB", n / (1 << 20));
  else if (n >= 1 << 10) std::snprintf(buf, sizeof buf, "%.1f KB", n / (1 << 10));
  else std::snprintf(buf, sizeof buf, "%.0f B", n);
  return buf;
}

std::string describe(const char* op, const Tensor& t) {
  return std::string(op) + " of " + bytes_str(static_cast<double>(t.nbytes())) + " " + dtype_name(t.dtype()) +
         " " + shape_str(t.shape());
}

// Blocks until w is done, ending the job when the collective the thread is running
// has run longer than the timeout (a lost or stuck rank). Caller holds lk on g.mu.
void wait_locked(std::unique_lock<std::mutex>& lk, const CpuWork& w) {
  while (!w.done_) {
    g.cv_done.wait_for(lk, std::chrono::milliseconds(200));
    if (w.done_) break;
    if (g.running && seconds_since(g.running_since) > g.timeout) {
      std::string msg = g.running->what_ + " has not completed after " + std::to_string(static_cast<int>(g.timeout)) +
                        " s: another rank has failed, hangs, or called a different collective; ending the job "
                        "(the limit is init({ timeoutSeconds }) or TESSERA_DIST_TIMEOUT)";
      lk.unlock();
      abort_job(msg, 1);
    }
  }
}

CpuWork::~CpuWork() {
  if (!submitted_) return;
  std::unique_lock<std::mutex> lk(g.mu);
  wait_locked(lk, *this);
}

bool CpuWork::done() {
  std::lock_guard<std::mutex> lk(g.mu);
  return done_;
}

void CpuWork::wait() {
  std::unique_lock<std::mutex> lk(g.mu);
  wait_locked(lk, *this);
  std::string err = error_;
  lk.unlock();
  keep_.clear();
  if (!err.empty()) throw Error(err);
}

std::shared_ptr<CpuWork> submit(std::shared_ptr<CpuWork> w) {
  {
    std::lock_guard<std::mutex> lk(g.mu);
    if (!g.up || g.stop) fail(w->what_.c_str(), "the process group is not initialized (call distributed.init() first)");
    g.queue.push_back(w.get());
    w->submitted_ = true;
  }
  g.cv_queue.notify_one();
  return w;
}

void check_cpu_tensor(const Tensor& t, const char* op) {
  TS_CHECK(t.defined(), op, "expected a tensor, got an undefined one");
  TS_CHECK(t.device().is_cpu(), op, "expected a host tensor (cpu or cpu:N) for MPI, got one on ", t.device().str());
  TS_CHECK(t.is_contiguous(), op, "expected a contiguous tensor (the collective works in place on its memory), got ",
           "shape ", shape_str(t.shape()), " with strides ", shape_str(t.strides()), "; call .contiguous() first");
}

#ifdef TESSERA_WITH_MPI
constexpr int64_t kMaxCount = 1 << 30;  // MPI counts are int: calls over more elements are split

void check_mpi(int rc, const char* op, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char s[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(rc, s, &n);
  fail(op, call, " failed: ", std::string(s, static_cast<size_t>(n)));
}

MPI_Datatype mpi_type(DType d, Reduce r, const char* op) {
  switch (d) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int32:
      if (r == Reduce::Mean) break;
      return MPI_INT32_T;
    case DType::Int64:
      if (r == Reduce::Mean) break;
      return MPI_INT64_T;
    case DType::UInt8:
    case DType::Bool:
      if (r != Reduce::Max) break;
      return MPI_UINT8_T;
    case DType::BFloat16:
    case DType::Float16:
      fail(op, dtype_name(d), " cannot be reduced over MPI (MPI has no such type); convert to float32 first");
  }
  fail(op, "the reduction '", reduce_name(r), "' is not defined for ", dtype_name(d),
       " (mean needs a floating dtype; uint8 and bool support max only)");
}

void reduce_in_place(void* data, int64_t n, DType d, Reduce r, const char* op) {
  MPI_Datatype dt = mpi_type(d, r, op);
  MPI_Op mop = r == Reduce::Max ? MPI_MAX : MPI_SUM;
  char* p = static_cast<char*>(data);
  const size_t item = dtype_size(d);
  for (int64_t i = 0; i < n; i += kMaxCount) {
    int count = static_cast<int>(std::min(kMaxCount, n - i));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, p + i * item, count, dt, mop, MPI_COMM_WORLD), op, "MPI_Allreduce");
  }
  if (r == Reduce::Mean) {
    if (d == DType::Float32) {
      float* x = static_cast<float*>(data);
      const float s = static_cast<float>(g.size);
      for (int64_t i = 0; i < n; i++) x[i] /= s;
    } else {
      double* x = static_cast<double*>(data);
      const double s = g.size;
      for (int64_t i = 0; i < n; i++) x[i] /= s;
    }
  }
}
#endif

}  // namespace

void mpi_broadcast_bytes(void* data, int64_t n, int root) {
#ifdef TESSERA_WITH_MPI
  char* p = static_cast<char*>(data);
  for (int64_t i = 0; i < n; i += kMaxCount) {
    int count = static_cast<int>(std::min(kMaxCount, n - i));
    check_mpi(MPI_Bcast(p + i, count, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast", "MPI_Bcast");
  }
#else
  fail("broadcast", "built without MPI");
#endif
}

bool mpi_built() {
#ifdef TESSERA_WITH_MPI
  return true;
#else
  return false;
#endif
}

std::string mpi_library_version() {
#ifdef TESSERA_WITH_MPI
  char s[MPI_MAX_LIBRARY_VERSION_STRING];
  int n = 0;
  if (MPI_Get_library_version(s, &n) != MPI_SUCCESS) return "unknown";
  std::string v(s, static_cast<size_t>(n));
  size_t nl = v.find_first_of(",\n");  // "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4"
  return nl == std::string::npos ? v : v.substr(0, nl);
#else
  return "";
#endif
}

bool initialized() { return g.up; }
int rank() { return g.rank; }
int world_size() { return g.size; }
double timeout_seconds() { return g.timeout; }

InitResult init(double timeout_seconds, int expected_rank, int expected_size) {
  const char* op = "init";
#ifndef TESSERA_WITH_MPI
  (void)timeout_seconds;
  fail(op, "this tessera addon was built without MPI (mpi.h was not found when it was built): install Open MPI "
           "(apt-get install openmpi-bin libopenmpi-dev) and rebuild it (npm rebuild tessera)");
#else
  if (g.up) fail(op, "the process group is already initialized");
  if (g.finalized) fail(op, "MPI was finalized by destroy() and cannot be initialized again in this process (an MPI rule)");
  TS_CHECK(timeout_seconds > 0, op, "expected timeoutSeconds > 0, got ", timeout_seconds);
  InitResult res;
#ifndef _WIN32
  // Node loads the addon, and libmpi with it, with RTLD_LOCAL; Open MPI's plugins
  // (mca_*.so, opened during MPI_Init) need libmpi's symbols in the global scope.
  // Promote libmpi and its dependencies, as mpi4py does.
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) && info.dli_fname) {
    res.library = info.dli_fname;
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  }
#endif
  std::promise<InitResult> started;
  std::future<InitResult> ready = started.get_future();
  g.timeout = timeout_seconds;
  g.stop = g.exited = false;
  g.thread = std::thread([&started, lib = res.library] {
    InitResult r;
    r.library = lib;
    try {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init", "MPI_Init_thread");
      MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
      check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &r.rank), "init", "MPI_Comm_rank");
      check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &r.world_size), "init", "MPI_Comm_size");
      MPI_Comm node;
      check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, r.rank, MPI_INFO_NULL, &node), "init",
                "MPI_Comm_split_type");
      MPI_Comm_rank(node, &r.local_rank);
      MPI_Comm_size(node, &r.local_size);
      MPI_Comm_free(&node);
      if (provided < MPI_THREAD_FUNNELED)
        fail("init", "MPI provides thread level ", provided, ", expected at least MPI_THREAD_FUNNELED");
      started.set_value(r);
    } catch (...) {
      started.set_exception(std::current_exception());
      std::lock_guard<std::mutex> lk(g.mu);
      g.exited = true;
      return;
    }
    for (;;) {
      CpuWork* w;
      {
        std::unique_lock<std::mutex> lk(g.mu);
        g.cv_queue.wait(lk, [] { return g.stop || !g.queue.empty(); });
        if (g.queue.empty()) break;
        w = g.queue.front();
        g.queue.pop_front();
        g.running = w;
        g.running_since = Clock::now();
      }
      std::string err;
      try {
        w->run_();
      } catch (const std::exception& e) {
        err = e.what();
      }
      {
        std::lock_guard<std::mutex> lk(g.mu);
        w->error_ = err;
        w->done_ = true;  // w may be destroyed by its owner from here on
        g.running = nullptr;
      }
      g.cv_done.notify_all();
    }
    MPI_Finalize();
    std::lock_guard<std::mutex> lk(g.mu);
    g.exited = true;
    g.cv_done.notify_all();
  });
  try {
    res = ready.get();
  } catch (...) {
    g.thread.join();
    g.finalized = true;
    throw;
  }
  g.rank = res.rank;
  g.size = res.world_size;
  g.up = true;
  if ((expected_size >= 0 && expected_size != res.world_size) || (expected_rank >= 0 && expected_rank != res.rank)) {
    std::string got = "rank " + std::to_string(res.rank) + " of " + std::to_string(res.world_size);
    std::string want = "rank " + std::to_string(expected_rank) + " of " + std::to_string(expected_size);
    finalize();
    fail(op, "the launcher's environment says ", want, " but MPI reports ", got,
         ": this addon's MPI does not match the launcher (e.g. srun without --mpi=pmix, or an mpirun of another "
         "MPI than the one tessera was built with)");
  }
  return res;
#endif
}

void finalize() {
  nccl::finalize();  // before MPI: a world-size-1 NCCL communicator exists without it
  if (!g.up) return;
  std::unique_lock<std::mutex> lk(g.mu);
  g.stop = true;
  g.cv_queue.notify_all();
  // The thread drains the queue first; a collective stuck there ends the job.
  while (!g.exited) {
    g.cv_done.wait_for(lk, std::chrono::milliseconds(200));
    if (!g.exited && g.running && seconds_since(g.running_since) > g.timeout) {
      std::string msg = g.running->what_ + " has not completed after " + std::to_string(static_cast<int>(g.timeout)) +
                        " s while finalizing; ending the job";
      lk.unlock();
      abort_job(msg, 1);
    }
  }
  lk.unlock();
  g.thread.join();
  g.up = false;
  g.finalized = true;
}

void abort_job(const std::string& message, int code) {
  std::fprintf(stderr, "tessera.distributed: rank %d of %d: %s\n", g.rank, g.size, message.c_str());
  std::fflush(stderr);
#ifndef _WIN32
  std::thread([code] {
    sleep(10);
    _exit(code);
  }).detach();
#endif
#ifdef TESSERA_WITH_MPI
  if (g.up) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::_Exit(code);
}

void run_on_comm_thread(const std::string& what, void (*fn)(void*), void* arg) {
  auto w = submit(std::make_shared<CpuWork>(what, [fn, arg] { fn(arg); }, std::vector<Tensor>{}));
  w->wait();
}

// ---- collectives: dispatch by device -------------------------------------------------

WorkPtr all_reduce(Tensor& t, Reduce r) {
  const char* op = "allReduce";
  TS_CHECK(t.defined(), op, "expected a tensor, got an undefined one");
  if (t.device().type == DeviceType::CUDA) return nccl::all_reduce(t, r);
  check_cpu_tensor(t, op);
#ifdef TESSERA_WITH_MPI
  mpi_type(t.dtype(), r, op);  // unsupported dtypes fail here, on the caller's thread
  void* p = t.raw();
  int64_t n = t.numel();
  DType d = t.dtype();
  return submit(std::make_shared<CpuWork>(describe(op, t) + " (" + reduce_name(r) + ")",
                                          [p, n, d, r, op] { reduce_in_place(p, n, d, r, op); }, std::vector<Tensor>{t}));
#else
  fail(op, "built without MPI");
#endif
}

WorkPtr all_reduce_coalesced(const std::vector<Tensor>& parts, Reduce r, Tensor* out) {
  const char* op = "allReduceCoalesced";
  TS_CHECK(!parts.empty(), op, "expected at least one tensor");
  for (size_t i = 0; i < parts.size(); i++) {
    TS_CHECK(parts[i].defined(), op, "tensor ", i, " is undefined");
    TS_CHECK(parts[i].dtype() == parts[0].dtype() && parts[i].device() == parts[0].device(), op,
             "expected every tensor to have the dtype and device of the first (", dtype_name(parts[0].dtype()), " on ",
             parts[0].device().str(), "), got ", dtype_name(parts[i].dtype()), " on ", parts[i].device().str(),
             " at index ", i);
  }
  if (parts[0].device().type == DeviceType::CUDA) return nccl::all_reduce_coalesced(parts, r, out);
#ifdef TESSERA_WITH_MPI
  const DType d = parts[0].dtype();
  mpi_type(d, r, op);
  std::vector<Tensor> keep;
  std::vector<std::pair<const void*, size_t>> src;
  int64_t total = 0;
  for (const Tensor& p : parts) {
    TS_CHECK(p.device().is_cpu(), op, "expected host tensors (cpu or cpu:N) for MPI, got one on ", p.device().str());
    keep.push_back(p.contiguous());  // the tensor itself when contiguous already
    src.emplace_back(keep.back().raw(), keep.back().nbytes());
    total += p.numel();
  }
  *out = Tensor::empty({total}, d, parts[0].device(), op);
  keep.push_back(*out);
  void* dst = out->raw();
  std::string what = describe(op, *out) + " (" + reduce_name(r) + ", " + std::to_string(parts.size()) + " tensors)";
  return submit(std::make_shared<CpuWork>(
      what,
      [src = std::move(src), dst, total, d, r, op] {
        char* q = static_cast<char*>(dst);
        for (const auto& [p, n] : src) {
          std::memcpy(q, p, n);
          q += n;
        }
        reduce_in_place(dst, total, d, r, op);
      },
      std::move(keep)));
#else
  fail(op, "built without MPI");
#endif
}

WorkPtr broadcast(Tensor& t, int root) {
  const char* op = "broadcast";
  TS_CHECK(t.defined(), op, "expected a tensor, got an undefined one");
  TS_CHECK(root >= 0 && root < std::max(g.size, 1), op, "expected a root rank in [0, ", std::max(g.size, 1) - 1,
           "], got ", root);
  if (t.device().type == DeviceType::CUDA) return nccl::broadcast(t, root);
  check_cpu_tensor(t, op);
  void* p = t.raw();
  int64_t n = static_cast<int64_t>(t.nbytes());
  return submit(std::make_shared<CpuWork>(describe(op, t) + " from rank " + std::to_string(root),
                                          [p, n, root] { mpi_broadcast_bytes(p, n, root); }, std::vector<Tensor>{t}));
}

WorkPtr all_gather(const Tensor& t, Tensor* out) {
  const char* op = "allGather";
  TS_CHECK(t.defined(), op, "expected a tensor, got an undefined one");
  if (t.device().type == DeviceType::CUDA) return nccl::all_gather(t, out);
  check_cpu_tensor(t, op);
#ifdef TESSERA_WITH_MPI
  TS_CHECK(t.nbytes() <= static_cast<size_t>(INT_MAX), op, "expected at most 2 GiB per rank, got ", t.nbytes(),
           " bytes");
  Shape shape = t.shape();
  shape.insert(shape.begin(), g.size);
  *out = Tensor::empty(shape, t.dtype(), t.device(), op);
  const void* src = t.raw();
  void* dst = out->raw();
  int n = static_cast<int>(t.nbytes());
  return submit(std::make_shared<CpuWork>(describe(op, t), [src, dst, n, op] {
    check_mpi(MPI_Allgather(src, n, MPI_BYTE, dst, n, MPI_BYTE, MPI_COMM_WORLD), op, "MPI_Allgather");
  }, std::vector<Tensor>{t, *out}));
#else
  fail(op, "built without MPI");
#endif
}

WorkPtr barrier() {
#ifdef TESSERA_WITH_MPI
  return submit(std::make_shared<CpuWork>("barrier", [] {
    check_mpi(MPI_Barrier(MPI_COMM_WORLD), "barrier", "MPI_Barrier");
  }, std::vector<Tensor>{}));
#else
  fail("barrier", "built without MPI");
#endif
}

}  // namespace dist
}  // namespace ts
