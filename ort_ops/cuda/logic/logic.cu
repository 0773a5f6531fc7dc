#include "cuda/logic/logic.cuh"

namespace steport::cuda {
namespace {
// Word-wide gate from the id's truth table (algebraic normal form, branch-free):
// f = c0 ^ c1 a ^ c2 b ^ c3 ab with c0 = f00, c1 = f00^f10, c2 = f00^f01, c3 = f00^f01^f10^f11.
__device__ __forceinline__ uint64_t GateWord(int id, uint64_t a, uint64_t b) {
  const uint64_t f00 = 0 - uint64_t((id >> 3) & 1), f01 = 0 - uint64_t((id >> 2) & 1),
                 f10 = 0 - uint64_t((id >> 1) & 1), f11 = 0 - uint64_t(id & 1);
  return f00 ^ ((f00 ^ f10) & a) ^ ((f00 ^ f01) & b) ^ ((f00 ^ f01 ^ f10 ^ f11) & a & b);
}

// packed[f * words + w]: one thread per (feature, word) gathers 64 samples.
__global__ void PackKernel(const float* __restrict__ x, int64_t n, int64_t n_in, int64_t words,
                           uint64_t* __restrict__ packed) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t >= n_in * words) return;
  const int64_t f = t / words, w = t % words;
  uint64_t v = 0;
  for (int i = 0; i < 64; ++i) {
    const int64_t s = w * 64 + i;
    if (s < n && x[s * n_in + f] != 0.0f) v |= uint64_t{1} << i;
  }
  packed[t] = v;
}

__global__ void LayerKernel(const uint64_t* __restrict__ in, uint64_t* __restrict__ out,
                            const int32_t* __restrict__ table, int64_t width, int64_t words) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t >= width * words) return;
  const int64_t j = t / words, w = t % words;
  const int32_t* g = table + 3 * j;
  out[t] = GateWord(g[2], in[int64_t(g[0]) * words + w], in[int64_t(g[1]) * words + w]);
}

__global__ void GroupSumKernel(const uint64_t* __restrict__ h, int64_t n, int64_t width,
                               int64_t words, int64_t k, float tau, float* __restrict__ y) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t >= n * k) return;
  const int64_t s = t / k, c = t % k, g = width / k;
  const int64_t w = s >> 6;
  const int sh = int(s & 63);
  int64_t count = 0;
  for (int64_t u = c * g; u < (c + 1) * g; ++u) count += (h[u * words + w] >> sh) & 1;
  y[t] = __fdiv_rn(float(count), tau);
}

__global__ void UnpackKernel(const uint64_t* __restrict__ h, int64_t n, int64_t width,
                             int64_t words, float* __restrict__ y) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t >= n * width) return;
  const int64_t s = t / width, j = t % width;
  y[t] = float((h[j * words + (s >> 6)] >> (s & 63)) & 1);
}

unsigned Blocks(int64_t items, int threads) { return unsigned((items + threads - 1) / threads); }
}  // namespace

cudaError_t LogicForwardLaunch(cudaStream_t stream, const float* x, int64_t n, int64_t n_in,
                               const int32_t* table, const int64_t* sizes, int num_layers,
                               int64_t num_classes, float tau, float* y) {
  if (n == 0 || num_layers == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t words = (n + 63) / 64;
  int64_t total = 0, max_width = n_in;
  for (int l = 0; l < num_layers; ++l) {
    total += sizes[l];
    if (sizes[l] > max_width) max_width = sizes[l];
  }
  int32_t* d_table = nullptr;
  uint64_t* buf = nullptr;
  cudaError_t err = cudaMallocAsync(&d_table, sizeof(int32_t) * 3 * total, stream);
  if (err == cudaSuccess)
    err = cudaMallocAsync(&buf, sizeof(uint64_t) * 2 * max_width * words, stream);
  if (err == cudaSuccess)
    err = cudaMemcpyAsync(d_table, table, sizeof(int32_t) * 3 * total, cudaMemcpyHostToDevice,
                          stream);
  if (err == cudaSuccess) {
    uint64_t* cur = buf;
    uint64_t* nxt = buf + max_width * words;
    PackKernel<<<Blocks(n_in * words, threads), threads, 0, stream>>>(x, n, n_in, words, cur);
    int64_t off = 0;
    for (int l = 0; l < num_layers; ++l) {
      LayerKernel<<<Blocks(sizes[l] * words, threads), threads, 0, stream>>>(
          cur, nxt, d_table + 3 * off, sizes[l], words);
      off += sizes[l];
      uint64_t* tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
    const int64_t width = sizes[num_layers - 1];
    if (num_classes > 0)
      GroupSumKernel<<<Blocks(n * num_classes, threads), threads, 0, stream>>>(
          cur, n, width, words, num_classes, tau, y);
    else
      UnpackKernel<<<Blocks(n * width, threads), threads, 0, stream>>>(cur, n, width, words, y);
    err = cudaGetLastError();
  }
  // The table upload is from pageable memory (synchronous w.r.t. the host), so freeing on
  // the stream after the launches is safe.
  if (buf) cudaFreeAsync(buf, stream);
  if (d_table) cudaFreeAsync(d_table, stream);
  return err;
}
}  // namespace steport::cuda
