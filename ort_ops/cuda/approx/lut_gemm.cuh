// LUT GEMM on the GPU (ApproxMatMulInteger): the 256 KiB LUT does not fit one block's
// shared memory, so each block stages the LUT columns of its weight tile (LUT[:, b] for the
// distinct b of its columns, one k-slice at a time) -- weight-stationary, as on the CPU.
// Same integer semantics as core/approx/lut_gemm.h (int32, wrapping).
#pragma once
#include <cstdint>
#include <cuda_runtime_api.h>

namespace steport::cuda {
// Y[m, n] = sum_k lut[A[m, k] * 256 + uint8(B[k, n])] - zp * sum_k B[k, n].
// All pointers on the device; lut is [65536] int32.
cudaError_t LutGemmLaunch(cudaStream_t stream, const uint8_t* a, const int8_t* b,
                          const int32_t* lut, int32_t zp, int64_t M, int64_t K, int64_t N,
                          int32_t* y);
}  // namespace steport::cuda
