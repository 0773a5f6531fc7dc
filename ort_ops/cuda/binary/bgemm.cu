#include "cuda/binary/bgemm.cuh"

namespace steport::cuda {
namespace {

__global__ void PackKernel(const float* __restrict__ a, int64_t m, int64_t k, int64_t kw,
                           unsigned long long* __restrict__ ap) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < m * kw;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / kw, c0 = (i % kw) * 64;
    const float* s = a + r * k;
    const int64_t cnt = k - c0 < 64 ? k - c0 : 64;
    unsigned long long word = 0;
    for (int64_t b = 0; b < cnt; ++b) word |= (unsigned long long)(s[c0 + b] >= 0.0f) << b;
    ap[i] = word;
  }
}

__global__ void GemmKernel(const unsigned long long* __restrict__ ap,
                           const unsigned long long* __restrict__ b, int64_t m, int64_t n,
                           int64_t k, int64_t kw, unsigned long long last_mask,
                           const float* __restrict__ scale, const float* __restrict__ bias,
                           float* __restrict__ y) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t i = blockIdx.y;
  if (j >= n || i >= m) return;
  const unsigned long long* ar = ap + i * kw;
  const unsigned long long* br = b + j * kw;
  int64_t pc = 0;
  for (int64_t w = 0; w + 1 < kw; ++w) pc += __popcll(ar[w] ^ br[w]);
  pc += __popcll((ar[kw - 1] ^ br[kw - 1]) & last_mask);
  const float dot = static_cast<float>(k - 2 * pc);
  y[i * n + j] = __fadd_rn(__fmul_rn(dot, scale[j]), bias[j]);
}

}  // namespace

cudaError_t BinaryGemmLaunch(cudaStream_t stream, const float* a, int64_t m, int64_t k,
                             const uint64_t* b, int64_t n, const float* scale, const float* bias,
                             float* y) {
  if (m == 0 || n == 0) return cudaSuccess;
  if (m > 65535) return cudaErrorInvalidConfiguration;  // grid.y limit; caller validates
  const int64_t kw = (k + 63) / 64;
  unsigned long long* ap = nullptr;
  cudaError_t err = cudaMallocAsync(reinterpret_cast<void**>(&ap),
                                    static_cast<size_t>(m * kw) * sizeof(unsigned long long), stream);
  if (err != cudaSuccess) return err;
  const int threads = 256;
  int64_t blocks = (m * kw + threads - 1) / threads;
  if (blocks > 65535 * 4) blocks = 65535 * 4;
  PackKernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(a, m, k, kw, ap);
  const int r = static_cast<int>(k % 64);
  const unsigned long long mask = r == 0 ? ~0ull : ((1ull << r) - 1);
  dim3 grid(static_cast<unsigned>((n + threads - 1) / threads), static_cast<unsigned>(m));
  GemmKernel<<<grid, threads, 0, stream>>>(ap, reinterpret_cast<const unsigned long long*>(b), m,
                                            n, k, kw, mask, scale, bias, y);
  err = cudaGetLastError();
  cudaError_t ferr = cudaFreeAsync(ap, stream);
  return err != cudaSuccess ? err : ferr;
}

}  // namespace steport::cuda
