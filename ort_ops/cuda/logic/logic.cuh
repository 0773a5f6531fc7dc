// Logic-gate networks on the GPU: same bit semantics as core/logic/logic.h. Samples are
// packed 64 per uint64 word on the device; each layer is one launch (thread = gate x word).
#pragma once
#include <cstdint>
#include <cuda_runtime_api.h>

namespace steport::cuda {
// table: host array of (idx_a, idx_b, gate_id) int32 triples, layers concatenated, already
// validated. num_classes > 0: y [n, num_classes] = GroupSum / tau; else y [n, last width].
cudaError_t LogicForwardLaunch(cudaStream_t stream, const float* x, int64_t n, int64_t n_in,
                               const int32_t* table, const int64_t* sizes, int num_layers,
                               int64_t num_classes, float tau, float* y);
}  // namespace steport::cuda
