// tessera CUDA backend: patchify / unpatchify as coalesced, vectorized copies.
// Work unit: a slab (b, t', h', channel chunk [c0, c0 + cc)). Its input is R = cc*pt*ph
// rows of W contiguous values (x rows (c, t'pt + i, h'ph + j)), its output the
// feature range [c0 pt ph pw, (c0 + cc) pt ph pw) of the W' tokens n0 .. n0 + W' - 1
// of row (t', h'): runs of Q = cc pt ph pw contiguous values, one per token.
//   patchify:   rows -> shared memory (16-byte loads along W when x rows are aligned
//               and unit-stride), then tokens written in order (16-byte stores when
//               Q and the token base allow).
//   unpatchify: the reverse (token runs read in order, x rows written along W).
// Shared rows are padded by 4 floats (row stride W + 4) so a warp reading one value
// from each of several rows spreads over the banks. cc is chosen so a slab fits
// 48 KB; when even one channel does not fit, or for odd strides the vector paths
// need, a direct one-thread-per-value gather/scatter is used (still exact).
#include "common.cuh"
#include "patchify.cuh"

namespace ts {
namespace cuda {

namespace {

constexpr int kSlabBytes = 48 * 1024;
constexpr int kPatchThreads = 256;

struct Geo {
  int64_t C, T, H, W, pt, ph, pw, Tg, Hg, Wg, N, F;
  int64_t cc, chunks;  // channels per slab, slabs per (b, t', h')
  int64_t ld;          // shared row stride (floats)
};

// Strides of x [B, C, T, H, W] and of tokens [B, N, F].
struct Strides {
  int64_t x[5];
  int64_t t[3];
};

// patchify (TO_TOKENS) or unpatchify. vec_rows: x rows are 16-byte aligned with unit
// stride and W % 4 == 0; vec_tok: tokens have unit feature stride and every run
// start (token base + c0 pt ph pw) is 16-byte aligned with Q % 4 == 0.
template <bool TO_TOKENS>
__global__ void __launch_bounds__(kPatchThreads) k_patch_slab(float* __restrict__ tokens, float* __restrict__ x,
                                                              Geo g, Strides st, bool vec_rows, bool vec_tok) {
  extern __shared__ float4 smem4[];
  float* sm = reinterpret_cast<float*>(smem4);
  int64_t slab = blockIdx.x;
  int64_t chunk = slab % g.chunks;
  int64_t rest = slab / g.chunks;
  int64_t hh = rest % g.Hg;
  rest /= g.Hg;
  int64_t tt = rest % g.Tg;
  int64_t b = rest / g.Tg;
  int64_t c0 = chunk * g.cc;
  int64_t cc = min(g.cc, g.C - c0);
  int64_t R = cc * g.pt * g.ph, Q = R * g.pw;
  int64_t n0 = (tt * g.Hg + hh) * g.Wg;
  // x offset of shared row r = ((c - c0) pt + i) ph + j
  auto xrow = [&](int64_t r) {
    int64_t j = r % g.ph, i = (r / g.ph) % g.pt, c = c0 + r / (g.ph * g.pt);
    return b * st.x[0] + c * st.x[1] + (tt * g.pt + i) * st.x[2] + (hh * g.ph + j) * st.x[3];
  };
  // token offset of (ww, q): q-th value of this slab's run in token n0 + ww
  int64_t tbase = b * st.t[0] + n0 * st.t[1] + c0 * g.pt * g.ph * g.pw * st.t[2];
  auto tok = [&](int64_t ww, int64_t q) { return tbase + ww * st.t[1] + q * st.t[2]; };
  // shared index of (ww, q)
  auto sidx = [&](int64_t ww, int64_t q) {
    int64_t r = q / g.pw, k = q - r * g.pw;
    return r * g.ld + ww * g.pw + k;
  };
  if (TO_TOKENS) {
    if (vec_rows) {
      int64_t w4 = g.W / 4;
      for (int64_t e = threadIdx.x; e < R * w4; e += blockDim.x) {
        int64_t r = e / w4, w = (e - r * w4) * 4;
        *reinterpret_cast<float4*>(sm + r * g.ld + w) = __ldg(reinterpret_cast<const float4*>(x + xrow(r) + w));
      }
    } else {
      for (int64_t e = threadIdx.x; e < R * g.W; e += blockDim.x) {
        int64_t r = e / g.W, w = e - r * g.W;
        sm[r * g.ld + w] = __ldg(x + xrow(r) + w * st.x[4]);
      }
    }
    __syncthreads();
    if (vec_tok) {
      int64_t q4 = Q / 4;
      for (int64_t e = threadIdx.x; e < g.Wg * q4; e += blockDim.x) {
        int64_t ww = e / q4, q = (e - ww * q4) * 4;
        float4 v;
        v.x = sm[sidx(ww, q)];
        v.y = sm[sidx(ww, q + 1)];
        v.z = sm[sidx(ww, q + 2)];
        v.w = sm[sidx(ww, q + 3)];
        *reinterpret_cast<float4*>(tokens + tok(ww, q)) = v;
      }
    } else {
      for (int64_t e = threadIdx.x; e < g.Wg * Q; e += blockDim.x) {
        int64_t ww = e / Q, q = e - ww * Q;
        tokens[tok(ww, q)] = sm[sidx(ww, q)];
      }
    }
  } else {
    if (vec_tok) {
      int64_t q4 = Q / 4;
      for (int64_t e = threadIdx.x; e < g.Wg * q4; e += blockDim.x) {
        int64_t ww = e / q4, q = (e - ww * q4) * 4;
        float4 v = __ldg(reinterpret_cast<const float4*>(tokens + tok(ww, q)));
        sm[sidx(ww, q)] = v.x;
        sm[sidx(ww, q + 1)] = v.y;
        sm[sidx(ww, q + 2)] = v.z;
        sm[sidx(ww, q + 3)] = v.w;
      }
    } else {
      for (int64_t e = threadIdx.x; e < g.Wg * Q; e += blockDim.x) {
        int64_t ww = e / Q, q = e - ww * Q;
        sm[sidx(ww, q)] = __ldg(tokens + tok(ww, q));
      }
    }
    __syncthreads();
    if (vec_rows) {
      int64_t w4 = g.W / 4;
      for (int64_t e = threadIdx.x; e < R * w4; e += blockDim.x) {
        int64_t r = e / w4, w = (e - r * w4) * 4;
        *reinterpret_cast<float4*>(x + xrow(r) + w) = *reinterpret_cast<const float4*>(sm + r * g.ld + w);
      }
    } else {
      for (int64_t e = threadIdx.x; e < R * g.W; e += blockDim.x) {
        int64_t r = e / g.W, w = e - r * g.W;
        x[xrow(r) + w * st.x[4]] = sm[r * g.ld + w];
      }
    }
  }
}

// Direct path: one thread per token value (token order: coalesced on the token side).
template <bool TO_TOKENS>
__global__ void k_patch_direct(float* __restrict__ tokens, float* __restrict__ x, Geo g, Strides st, int64_t total) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t q = e % g.F, r = e / g.F, n = r % g.N, b = r / g.N;
    int64_t tt = n / (g.Hg * g.Wg), hh = (n / g.Wg) % g.Hg, ww = n % g.Wg;
    int64_t c = q / (g.pt * g.ph * g.pw), i = (q / (g.ph * g.pw)) % g.pt, j = (q / g.pw) % g.ph, k = q % g.pw;
    int64_t xo = b * st.x[0] + c * st.x[1] + (tt * g.pt + i) * st.x[2] + (hh * g.ph + j) * st.x[3] +
                 (ww * g.pw + k) * st.x[4];
    int64_t to = b * st.t[0] + n * st.t[1] + q * st.t[2];
    if (TO_TOKENS)
      tokens[to] = x[xo];
    else
      x[xo] = tokens[to];
  }
}

bool a16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <bool TO_TOKENS>
void run(float* tokens, float* x, const Strides& st, int64_t B, int64_t C, int64_t T, int64_t H, int64_t W, int64_t pt,
         int64_t ph, int64_t pw, cudaStream_t s, const char* op) {
  Geo g;
  g.C = C, g.T = T, g.H = H, g.W = W, g.pt = pt, g.ph = ph, g.pw = pw;
  g.Tg = T / pt, g.Hg = H / ph, g.Wg = W / pw;
  g.N = g.Tg * g.Hg * g.Wg;
  g.F = C * pt * ph * pw;
  g.ld = W + 4;
  int64_t total = B * g.N * g.F;
  if (total == 0) return;
  int64_t row_bytes = pt * ph * g.ld * static_cast<int64_t>(sizeof(float));
  if (row_bytes > kSlabBytes) {
    k_patch_direct<TO_TOKENS><<<grid_for(total), kThreads, 0, s>>>(tokens, x, g, st, total);
    check_launch(op);
    return;
  }
  g.cc = std::min<int64_t>(C, kSlabBytes / row_bytes);
  g.chunks = (C + g.cc - 1) / g.cc;
  bool vec_rows = st.x[4] == 1 && W % 4 == 0 && a16(x) && st.x[0] % 4 == 0 && st.x[1] % 4 == 0 &&
                  st.x[2] % 4 == 0 && st.x[3] % 4 == 0;
  int64_t run_stride = pt * ph * pw;  // feature offset per channel
  bool vec_tok = st.t[2] == 1 && a16(tokens) && st.t[0] % 4 == 0 && st.t[1] % 4 == 0 && (g.cc * run_stride) % 4 == 0 &&
                 ((C - (g.chunks - 1) * g.cc) * run_stride) % 4 == 0;
  int64_t slabs = B * g.Tg * g.Hg * g.chunks;
  size_t smem = static_cast<size_t>(g.cc * pt * ph * g.ld) * sizeof(float);
  if (slabs > 0x7fffffffLL) {
    k_patch_direct<TO_TOKENS><<<grid_for(total), kThreads, 0, s>>>(tokens, x, g, st, total);
  } else {
    k_patch_slab<TO_TOKENS><<<static_cast<unsigned>(slabs), kPatchThreads, smem, s>>>(tokens, x, g, st, vec_rows,
                                                                                      vec_tok);
  }
  check_launch(op);
}

}  // namespace

void patchify_launch(float* tokens, const float* x, const int64_t xs[5], int64_t B, int64_t C, int64_t T, int64_t H,
                     int64_t W, int64_t pt, int64_t ph, int64_t pw, void* stream) {
  int64_t N = (T / pt) * (H / ph) * (W / pw), F = C * pt * ph * pw;
  Strides st{{xs[0], xs[1], xs[2], xs[3], xs[4]}, {N * F, F, 1}};
  run<true>(tokens, const_cast<float*>(x), st, B, C, T, H, W, pt, ph, pw, static_cast<cudaStream_t>(stream),
            "patchify");
}

void patchify(float* tokens, const float* x, const int64_t xs[5], int64_t B, int64_t C, int64_t T, int64_t H,
              int64_t W, int64_t pt, int64_t ph, int64_t pw) {
  cudaStream_t s = prepare_ptr(tokens);
  patchify_launch(tokens, x, xs, B, C, T, H, W, pt, ph, pw, s);
}

void unpatchify(float* x, const float* tokens, const int64_t ts[3], int64_t B, int64_t C, int64_t T, int64_t H,
                int64_t W, int64_t pt, int64_t ph, int64_t pw) {
  cudaStream_t s = prepare_ptr(x);
  Strides st{{C * T * H * W, T * H * W, H * W, W, 1}, {ts[0], ts[1], ts[2]}};
  run<false>(const_cast<float*>(tokens), x, st, B, C, T, H, W, pt, ph, pw, s, "unpatchify");
}

}  // namespace cuda
}  // namespace ts
