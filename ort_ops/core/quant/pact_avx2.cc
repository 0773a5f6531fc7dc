// Compiled with -mavx2 -mfma; only called after run-time detection.
#include <immintrin.h>

#include "pact.h"

namespace steport::quant {

void PactAvx2(const float* x, float* y, int64_t n, PactParams p) {
  const __m256 zero = _mm256_setzero_ps(), alpha = _mm256_set1_ps(p.alpha),
               scale = _mm256_set1_ps(p.scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    // max/min return their second operand when either is NaN: order keeps NaN.
    v = _mm256_min_ps(alpha, _mm256_max_ps(zero, v));
    v = _mm256_round_ps(_mm256_mul_ps(v, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(y + i, _mm256_div_ps(v, scale));
  }
  if (i < n) PactPortable(x + i, y + i, n - i, p);
}

}  // namespace steport::quant
