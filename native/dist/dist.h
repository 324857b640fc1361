// tessera distributed: one process group per process, over MPI for tensors in host
// memory (cpu, cpu:N) and NCCL for CUDA tensors (nccl.h). A plain C++ library like
// the core: it knows nothing of N-API.
//
// Threads. Every MPI call after MPI_Init is made by one communication thread that
// this module owns (MPI_THREAD_FUNNELED: that thread initializes and finalizes MPI
// too). Callers enqueue collectives and get a Work back; the thread runs them in the
// order they were enqueued (every rank must enqueue the same collectives in the same
// order), so a collective overlaps whatever the caller does until it waits: DDP
// enqueues gradient buckets during backward and waits once at its end.
//
// Memory. A Work keeps the tensors it reads and writes alive until it is waited on;
// tensors are created and released only on the caller's thread (the allocator's
// statistics are not thread safe), the communication thread only reads and writes
// their bytes. A tensor being written by a pending collective must not be read or
// written by the caller until wait().
//
// Faults. A collective that has run for longer than the timeout (init's
// timeout_seconds) while the caller waits for it means a rank is gone or has stopped
// calling collectives: wait() then ends the whole job with abort_job(), naming this
// rank and the collective, rather than hang. A rank killed outright is reported by
// mpirun itself, which ends the other ranks.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ts {
namespace dist {

enum class Reduce { Sum, Mean, Max };
// "sum" | "mean" | "max"; throws naming op otherwise.
Reduce reduce_from_name(const std::string& name, const char* op);
const char* reduce_name(Reduce r);

// ---- what this build and machine offer -------------------------------------------------
// Whether this library was compiled with mpi.h (TESSERA_WITH_MPI). The build links
// libmpi when CMake (find_package(MPI)) or node-gyp (mpicc --showme) finds it.
bool mpi_built();
// MPI_Get_library_version (callable before init), or "" when not built with MPI.
std::string mpi_library_version();

struct InitResult {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;   // rank among the processes of this machine (MPI_COMM_TYPE_SHARED)
  int local_size = 1;
  std::string library;  // the libmpi file in use
};
// Initializes MPI on the communication thread (once per process: MPI cannot be
// initialized again after finalize). expected_rank/size (>= 0) are what the
// launcher's environment said; a mismatch with what MPI reports is an error that
// names both (e.g. an srun without --mpi=pmix starts N singletons of size 1).
InitResult init(double timeout_seconds, int expected_rank, int expected_size);
bool initialized();
// Rank and size; 0 and 1 before init.
int rank();
int world_size();
double timeout_seconds();

// A collective in flight: wait() returns when this rank's part is done and the
// tensors it wrote hold the result (for CUDA tensors: once the tensor's stream is
// ordered after the collective; the host does not block).
class Work {
 public:
  virtual ~Work() = default;
  virtual bool done() = 0;
  virtual void wait() = 0;
  virtual const std::string& what() const = 0;
};
using WorkPtr = std::shared_ptr<Work>;

// In place on t (contiguous): every rank ends with the reduction over all ranks.
// Mean is the sum divided by the world size (floating dtypes only).
WorkPtr all_reduce(Tensor& t, Reduce op);
// The parts (one dtype and device) are copied one after the other into a fresh 1-D
// tensor of their total size, which is reduced in place and returned in *out: the
// gradient buckets of DDP. The parts are only read.
WorkPtr all_reduce_coalesced(const std::vector<Tensor>& parts, Reduce op, Tensor* out);
// In place on t (contiguous): every rank ends with root's values.
WorkPtr broadcast(Tensor& t, int root);
// out = [world_size, ...t.shape]: row r holds rank r's t.
WorkPtr all_gather(const Tensor& t, Tensor* out);
WorkPtr barrier();

// Waits for every pending collective, stops the communication thread and finalizes
// MPI. A no-op when not initialized.
void finalize();

// Ends every rank of the job: prints "tessera.distributed: rank R of N: <message>"
// on stderr and calls MPI_Abort (which makes mpirun end the other ranks); exits the
// process itself if MPI_Abort has not within 10 s or MPI is not initialized. The one
// place this library ends the process: a distributed job whose rank has failed
// cannot continue, and the alternative is every other rank hanging in a collective.
[[noreturn]] void abort_job(const std::string& message, int code);

// ---- internal: shared with nccl.cc ---------------------------------------------------
// Runs fn on the communication thread in collective order and waits for it (the
// NCCL unique id travels this way). Throws what fn threw.
void run_on_comm_thread(const std::string& what, void (*fn)(void*), void* arg);
// MPI_Bcast of n bytes from root; only valid on the communication thread.
void mpi_broadcast_bytes(void* data, int64_t n, int root);

}  // namespace dist
}  // namespace ts
