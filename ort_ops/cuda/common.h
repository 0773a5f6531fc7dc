// CUDA error handling for bindings (plain C++; compiled with the CUDA runtime headers).
#pragma once
#include <cuda_runtime_api.h>

namespace steport::cuda {
// Throws OpError naming the op when a launch or the runtime failed.
void Check(cudaError_t err, const char* op);
}  // namespace steport::cuda
