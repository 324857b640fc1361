// tessera distributed: NCCL for CUDA tensors, loaded at run time. No NCCL header or
// library is needed to build: nccl.cc declares the few entry points and types it
// calls (NCCL's C ABI, stable since 2.x) and dlopens libnccl.so.2 from the paths it
// is given (the system's dynamic loader path, an explicit file, the nvidia-nccl
// Python wheel). One communicator per process, on the device of the first CUDA
// tensor it carries; its unique id goes from rank 0 to the others over MPI.
//
// Streams. all_reduce / broadcast / all_gather run on the tensor's own stream (the
// stream every CUDA op of that device uses), so they are ordered after the kernels
// that wrote the tensor and before those that read it, with no host wait.
// all_reduce_coalesced (DDP buckets) runs on a side stream that waits for an event
// on the compute stream, so later backward kernels overlap it; its Work's wait()
// orders the compute stream after it.
#pragma once
#include <string>
#include <vector>

#include "dist.h"

namespace ts {
namespace dist {
namespace nccl {

struct LoadResult {
  bool loaded = false;
  std::string path;    // the file (or soname) that loaded
  int version = 0;     // ncclGetVersion, e.g. 22005 for 2.20.5
  std::string why;     // when not loaded: every candidate tried and why it failed
};
// Tries each candidate in order (a file path, or a soname for the dynamic loader's
// search) and keeps the first that opens and exports every entry point used. Once
// one has loaded, later calls return it without trying again.
LoadResult load(const std::vector<std::string>& candidates);
bool loaded();
// Whether this build can run NCCL collectives (the CUDA backend is linked).
bool cuda_built();

// CUDA tensor collectives (contracts as in dist.h; see the header for streams).
// They throw naming the call when NCCL is not loaded, the CUDA backend is not
// built, or the tensor is on another device than the communicator's.
WorkPtr all_reduce(Tensor& t, Reduce op);
WorkPtr all_reduce_coalesced(const std::vector<Tensor>& parts, Reduce op, Tensor* out);
WorkPtr broadcast(Tensor& t, int root);
WorkPtr all_gather(const Tensor& t, Tensor* out);
// Destroys the communicator (before MPI is finalized).
void finalize();

}  // namespace nccl
}  // namespace dist
}  // namespace ts
