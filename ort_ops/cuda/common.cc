#include "cuda/common.h"

#include "steport/glue.h"

namespace steport::cuda {
void Check(cudaError_t err, const char* op) {
  if (err != cudaSuccess) Fail(op, ": CUDA error ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
}
}  // namespace steport::cuda
