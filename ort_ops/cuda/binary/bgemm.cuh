// BinaryGemm on the GPU: packs sign(A) into words, then one thread per output computes
// K - 2*popcount(a ^ b) (B's stray tail bits masked) and scale/bias with IEEE mul, add.
#pragma once
#include <cstdint>
#include <cuda_runtime_api.h>

namespace steport::cuda {
cudaError_t BinaryGemmLaunch(cudaStream_t stream, const float* a, int64_t m, int64_t k,
                             const uint64_t* b, int64_t n, const float* scale, const float* bias,
                             float* y);
}  // namespace steport::cuda
