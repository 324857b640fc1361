// tessera CUDA backend: device runtime (device query, one stream per device,
// caching allocator) and error translation. Dimension letters: none.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace ts {
namespace cuda {

// Throws ts::Error "<op>: CUDA error <name>: <text>" when e is not cudaSuccess.
void check(cudaError_t e, const char* op);
cudaStream_t stream(int device);
void set_device(int device);
void synchronize(int device);

// Caching allocator: freed blocks return to per-device size-class free lists and
// are reused; empty_cache() gives them back to the driver (and leaves the caller's
// device current). cached_alloc returns nullptr when the device is out of memory (after
// emptying the cache and trying again); any other CUDA error (a sticky fault of an
// earlier kernel, a lost device) throws "<op>: allocating ... failed with CUDA error ...".
void* cached_alloc(size_t nbytes, int device, const char* op);
void cached_free(void* p, size_t nbytes, int device);
int64_t reserved_bytes();
void empty_cache();

}  // namespace cuda
}  // namespace ts
