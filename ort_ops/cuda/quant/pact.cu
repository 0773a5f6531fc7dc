#include "cuda/quant/pact.cuh"

namespace steport::cuda {
namespace {
__global__ void PactKernel(const float* __restrict__ x, float* __restrict__ y, int64_t n,
                           float alpha, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = x[i];
    if (v == v) {  // NaN propagates
      v = fminf(fmaxf(v, 0.0f), alpha);
      // __fmul_rn / __fdiv_rn: IEEE round-to-nearest, never contracted or approximated.
      v = __fdiv_rn(rintf(__fmul_rn(v, scale)), scale);
    }
    y[i] = v;
  }
}
}  // namespace

cudaError_t PactLaunch(cudaStream_t stream, const float* x, float* y, int64_t n, float alpha,
                       float scale) {
  if (n == 0) return cudaSuccess;
  const int threads = 256;
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65535 * 4) blocks = 65535 * 4;
  PactKernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(x, y, n, alpha, scale);
  return cudaGetLastError();
}
}  // namespace steport::cuda
