// PACT on the GPU: same fp32 operation order as core/quant/pact.h (bit-identical).
#pragma once
#include <cstdint>
#include <cuda_runtime_api.h>

namespace steport::cuda {
cudaError_t PactLaunch(cudaStream_t stream, const float* x, float* y, int64_t n, float alpha,
                       float scale);
}  // namespace steport::cuda
