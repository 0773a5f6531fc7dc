// Compiled with -mavx512f (+bw/vl/dq); only called after run-time detection.
#include <immintrin.h>

#include "pact.h"

namespace steport::quant {

void PactAvx512(const float* x, float* y, int64_t n, PactParams p) {
  const __m512 zero = _mm512_setzero_ps(), alpha = _mm512_set1_ps(p.alpha),
               scale = _mm512_set1_ps(p.scale);
  int64_t i = 0;
  for (; i < n; i += 16) {
    // Masked tail: one loop handles the remainder without a scalar epilogue.
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    v = _mm512_min_ps(alpha, _mm512_max_ps(zero, v));  // NaN-propagating operand order
    v = _mm512_roundscale_ps(_mm512_mul_ps(v, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_mask_storeu_ps(y + i, m, _mm512_div_ps(v, scale));
  }
}

}  // namespace steport::quant
