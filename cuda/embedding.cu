// tessera CUDA backend: embedding. Forward: one thread per output value (a gather of
// rows). Backward without atomics: the ids are read back to the host (they are small)
// and sorted stably by id (counting sort) into rows [start[v], start[v+1]) of an
// order list; one thread per (v, d) then adds its rows in increasing position, the
// CPU's order, so dweight is bit-identical to the CPU's. Memory contract: out and
// dweight overwritten.
#include <vector>

#include "common.cuh"
#include "embedding.cuh"

namespace ts {
namespace cuda {

namespace {

__global__ void k_embedding_fwd(float* __restrict__ out, const int64_t* __restrict__ ids,
                                const float* __restrict__ weight, int64_t n, int64_t D) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * D;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t r = i / D, d = i - r * D;
    out[i] = weight[ids[r] * D + d];
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
  k_embedding_fwd<<<grid_for(n * D), kThreads, 0, s>>>(out, ids, weight, n, D);
  check_launch("embedding");
}

void embedding_backward(float* dweight, const float* dout, const int64_t* ids, int64_t n, int64_t V, int64_t D) {
  if (V * D == 0) return;
  int dev = 0;
  cudaStream_t s = prepare_ptr(dweight, &dev);
  std::vector<int64_t> host(static_cast<size_t>(n)), start(static_cast<size_t>(V + 1), 0), order(static_cast<size_t>(n));
  if (n) {
    check(cudaMemcpyAsync(host.data(), ids, n * sizeof(int64_t), cudaMemcpyDeviceToHost, s), "embedding");
    check(cudaStreamSynchronize(s), "embedding");
  }
  for (int64_t i = 0; i < n; ++i) ++start[host[i] + 1];
  for (int64_t v = 0; v < V; ++v) start[v + 1] += start[v];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n; ++i) order[fill[host[i]]++] = i;
  Tensor dstart = workspace(V + 1, DType::Int64, dev, "embedding");
  Tensor dorder = workspace(std::max<int64_t>(n, 1), DType::Int64, dev, "embedding");
  check(cudaMemcpyAsync(dstart.raw(), start.data(), (V + 1) * sizeof(int64_t), cudaMemcpyHostToDevice, s), "embedding");
  if (n) check(cudaMemcpyAsync(dorder.raw(), order.data(), n * sizeof(int64_t), cudaMemcpyHostToDevice, s), "embedding");
  k_embedding_bwd<<<grid_for(V * D), kThreads, 0, s>>>(dweight, dout, dorder.data<int64_t>(), dstart.data<int64_t>(),
                                                        V, D);
  check_launch("embedding");
  // The host vectors are pageable: the copies above were staged before returning, but
  // wait anyway so no launch can outlive them.
  check(cudaStreamSynchronize(s), "embedding");
}

}  // namespace cuda
}  // namespace ts
