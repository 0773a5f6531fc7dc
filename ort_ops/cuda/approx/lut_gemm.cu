#include "cuda/approx/lut_gemm.cuh"

namespace steport::cuda {
namespace {
constexpr int kTileN = 16;   // weight columns per block
constexpr int kTileK = 4;    // k per shared-memory stage: kTileK * kTileN LUT columns
constexpr int kThreads = 256;

// Block = kTileN columns x a strip of rows. Per k-slice, the block copies the LUT columns
// LUT[:, B[k, n]] of its (k, n) pairs into shared memory (kTileK*kTileN*256 int32 = 64 KiB),
// then each thread accumulates rows m for one column through shared-memory lookups.
__global__ void LutGemmKernel(const uint8_t* __restrict__ a, const int8_t* __restrict__ b,
                              const int32_t* __restrict__ lut, int32_t zp, int64_t M, int64_t K,
                              int64_t N, int32_t* __restrict__ y, int64_t rows_per_block) {
  extern __shared__ int32_t cols[];  // [kTileK][kTileN][256]
  const int64_t n0 = int64_t(blockIdx.x) * kTileN;
  const int64_t m0 = int64_t(blockIdx.y) * rows_per_block;
  const int tn = threadIdx.x % kTileN;           // column in tile
  const int tm = threadIdx.x / kTileN;           // row lane
  const int lanes = kThreads / kTileN;
  const int64_t n = n0 + tn;
  // each thread owns rows m0 + tm + i*lanes, i < rows_per_block/lanes
  constexpr int kMaxRows = 16;
  unsigned acc[kMaxRows] = {0};
  unsigned colsum = 0;
  for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
    __syncthreads();
    for (int i = threadIdx.x; i < kTileK * kTileN * 256; i += kThreads) {
      const int kk = i / (kTileN * 256), jn = (i / 256) % kTileN, av = i % 256;
      const int64_t k = k0 + kk, nn = n0 + jn;
      int32_t v = 0;
      if (k < K && nn < N) v = lut[av * 256 + static_cast<uint8_t>(b[k * N + nn])];
      cols[i] = v;
    }
    __syncthreads();
    if (n >= N) continue;
    for (int kk = 0; kk < kTileK && k0 + kk < K; ++kk) {
      const int32_t* col = cols + (kk * kTileN + tn) * 256;
      if (tm == 0) colsum += static_cast<unsigned>(int32_t(b[(k0 + kk) * N + n]));
      for (int i = 0; i < kMaxRows; ++i) {
        const int64_t m = m0 + tm + int64_t(i) * lanes;
        if (i * lanes >= rows_per_block || m >= M) break;
        acc[i] += static_cast<unsigned>(col[a[m * K + k0 + kk]]);
      }
    }
  }
  if (n >= N) return;
  // column sums: recompute per thread (cheap; avoids a shared reduction)
  if (tm != 0) {
    colsum = 0;
    for (int64_t k = 0; k < K; ++k) colsum += static_cast<unsigned>(int32_t(b[k * N + n]));
  }
  const unsigned corr = colsum * static_cast<unsigned>(zp);
  for (int i = 0; i < kMaxRows; ++i) {
    const int64_t m = m0 + tm + int64_t(i) * lanes;
    if (i * lanes >= rows_per_block || m >= M) break;
    y[m * N + n] = static_cast<int32_t>(acc[i] - corr);
  }
}
}  // namespace

cudaError_t LutGemmLaunch(cudaStream_t stream, const uint8_t* a, const int8_t* b,
                          const int32_t* lut, int32_t zp, int64_t M, int64_t K, int64_t N,
                          int32_t* y) {
  if (M == 0 || N == 0) return cudaSuccess;
  const int64_t rows_per_block = 16 * (kThreads / kTileN);  // 16 rows per thread
  const size_t smem = size_t(kTileK) * kTileN * 256 * sizeof(int32_t);
  cudaError_t err = cudaFuncSetAttribute(LutGemmKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  const int64_t gy = (M + rows_per_block - 1) / rows_per_block;
  if (gy > 65535) return cudaErrorInvalidConfiguration;
  dim3 grid(static_cast<unsigned>((N + kTileN - 1) / kTileN), static_cast<unsigned>(gy));
  LutGemmKernel<<<grid, kThreads, smem, stream>>>(a, b, lut, zp, M, K, N, y, rows_per_block);
  return cudaGetLastError();
}
}  // namespace steport::cuda
