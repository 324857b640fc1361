// tessera CUDA backend: embedding. Forward: one thread per output value (a gather of
// rows); ids out of [0, V) (the core checks them on the host only for host-memory
// devices, to avoid a sync here) give zero rows instead of reading out of bounds.
// Backward without atomics and without reading the ids back: a stable counting sort on
// the device (one thread per id value counts and then lists its positions in increasing
// order, an exclusive scan in between) gives rows [start[v], start[v+1]) of an order
// list; one thread per (v, d) then adds its rows in increasing position, the CPU's order,
// so dweight is bit-identical to the CPU's. O(V * n) compares, fine for the vocabularies
// and gathers the models use. Memory contract: out and dweight overwritten.
#include "common.cuh"
#include "embedding.cuh"

namespace ts {
namespace cuda {

namespace {

__global__ void k_embedding_fwd(float* __restrict__ out, const int64_t* __restrict__ ids,
                                const float* __restrict__ weight, int64_t n, int64_t V, int64_t D) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * D;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t r = i / D, d = i - r * D;
    const int64_t id = ids[r];
    out[i] = (id >= 0 && id < V) ? weight[id * D + d] : 0.0f;
  }
}

// counts[v + 1] = occurrences of v among ids (counts[0] = 0): one thread per value.
__global__ void k_embedding_count(int64_t* __restrict__ counts, const int64_t* __restrict__ ids, int64_t n, int64_t V) {
  for (int64_t v = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; v < V;
       v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; ++i) c += ids[i] == v;
    counts[v + 1] = c;
    if (v == 0) counts[0] = 0;
  }
}

// In-place inclusive scan of counts[0..V] by one thread: start offsets.
__global__ void k_embedding_scan(int64_t* __restrict__ start, int64_t V) {
  if (blockIdx.x == 0 && threadIdx.x == 0)
    for (int64_t v = 0; v < V; ++v) start[v + 1] += start[v];
}

// order[start[v] ..] = positions of v in increasing order: one thread per value.
__global__ void k_embedding_order(int64_t* __restrict__ order, const int64_t* __restrict__ start,
                                  const int64_t* __restrict__ ids, int64_t n, int64_t V) {
  for (int64_t v = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; v < V;
       v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t k = start[v];
    for (int64_t i = 0; i < n; ++i)
      if (ids[i] == v) order[k++] = i;
  }
}

__global__ void k_embedding_bwd(float* __restrict__ dweight, const float* __restrict__ dout,
                                const int64_t* __restrict__ order, const int64_t* __restrict__ start, int64_t V,
                                int64_t D) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < V * D;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t v = i / D, d = i - v * D;
    float acc = 0.0f;
    for (int64_t k = start[v]; k < start[v + 1]; ++k) acc += dout[order[k] * D + d];
    dweight[i] = acc;
  }
}

}  // namespace

void embedding_forward(float* out, const int64_t* ids, const float* weight, int64_t n, int64_t V, int64_t D) {
  if (n * D == 0) return;
  cudaStream_t s = prepare_ptr(out);
  k_embedding_fwd<<<grid_for(n * D), kThreads, 0, s>>>(out, ids, weight, n, V, D);
  check_launch("embedding");
}

void embedding_backward(float* dweight, const float* dout, const int64_t* ids, int64_t n, int64_t V, int64_t D) {
  if (V * D == 0) return;
  int dev = 0;
  cudaStream_t s = prepare_ptr(dweight, &dev);
  Tensor dstart = workspace(V + 1, DType::Int64, dev, "embedding");
  Tensor dorder = workspace(std::max<int64_t>(n, 1), DType::Int64, dev, "embedding");
  int64_t* start = dstart.data<int64_t>();
  int64_t* order = dorder.data<int64_t>();
  k_embedding_count<<<grid_for(V), kThreads, 0, s>>>(start, ids, n, V);
  check_launch("embedding");
  k_embedding_scan<<<1, 32, 0, s>>>(start, V);
  check_launch("embedding");
  k_embedding_order<<<grid_for(V), kThreads, 0, s>>>(order, start, ids, n, V);
  check_launch("embedding");
  k_embedding_bwd<<<grid_for(V * D), kThreads, 0, s>>>(dweight, dout, order, start, V, D);
  check_launch("embedding");
}

}  // namespace cuda
}  // namespace ts
