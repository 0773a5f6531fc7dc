#include "pact.h"

#include <cmath>

namespace steport::quant {

PactParams MakePactParams(float alpha, int64_t bits) {
  const float levels = static_cast<float>((int64_t{1} << bits) - 1);
  return {alpha, levels / alpha};
}

void PactPortable(const float* x, float* y, int64_t n, PactParams p) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    if (v != v) { y[i] = v; continue; }  // NaN propagates
    v = v < 0.0f ? 0.0f : v;
    v = v > p.alpha ? p.alpha : v;
    y[i] = std::nearbyint(v * p.scale) / p.scale;  // default FE mode: half to even
  }
}

}  // namespace steport::quant
