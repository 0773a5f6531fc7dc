// PACT activation quantization on raw pointers (docs/ops.md "Pact"):
//   y = round(clamp(x, 0, alpha) * s) / s,  s = (2^bits - 1) / alpha  (fp32 division),
// round half to even; NaN propagates. Every variant does the same fp32 operations in the
// same order, so all are bit-identical to each other and to the PyTorch op.
#pragma once
#include <cstdint>

namespace steport::quant {

struct PactParams {
  float alpha;  // > 0, finite
  float scale;  // (2^bits - 1) / alpha
};
PactParams MakePactParams(float alpha, int64_t bits);

void PactPortable(const float* x, float* y, int64_t n, PactParams p);
void PactAvx2(const float* x, float* y, int64_t n, PactParams p);
void PactAvx512(const float* x, float* y, int64_t n, PactParams p);

}  // namespace steport::quant
