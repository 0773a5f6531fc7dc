// Compiled with -mavx512f/bw...: the word loops of logic_impl.h become 512-bit (W = 8) or
// 256-bit (W = 4) bit ops; only called after run-time detection.
#include <immintrin.h>

#include "logic_impl.h"

namespace steport::logic {
namespace {

// Per row, one compare per 16 features gives a 16-bit mask (m[chunk][sample]); then per
// chunk and 64 samples, vptestmw picks bit i of 32 masks at a time: word of feature 16c+i.
// Reads each float once; NaN != 0 (unordered compare), -0.0 == 0.
struct PackAvx512 {
  template <int W>
  static void Pack(const float* x, int64_t n_in, int64_t r0, int64_t rows, uint64_t* words,
                   uint64_t* tmp) {
    constexpr int64_t kBlock = 64 * W;
    const int64_t chunks = (n_in + 15) / 16;
    const int left = int(n_in - 16 * (chunks - 1));
    const __mmask16 tail = __mmask16((1u << left) - 1);
    uint16_t* m = reinterpret_cast<uint16_t*>(tmp);  // chunks * kBlock <= (n_in + 15) * W * 4
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t s = 0; s < rows; ++s) {
      const float* row = x + (r0 + s) * n_in;
      for (int64_t c = 0; c + 1 < chunks; ++c)
        m[c * kBlock + s] = _mm512_cmpneq_ps_mask(_mm512_loadu_ps(row + 16 * c), zero);
      const int64_t c = chunks - 1;
      m[c * kBlock + s] =
          _mm512_mask_cmpneq_ps_mask(tail, _mm512_maskz_loadu_ps(tail, row + 16 * c), zero);
    }
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t s = rows; s < kBlock; ++s) m[c * kBlock + s] = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      const int nf = c + 1 < chunks ? 16 : left;
      for (int w = 0; w < W; ++w) {
        const uint16_t* src = m + c * kBlock + 64 * w;
        const __m512i lo = _mm512_loadu_si512(src), hi = _mm512_loadu_si512(src + 32);
        for (int i = 0; i < nf; ++i) {
          const __m512i bit = _mm512_set1_epi16(short(1 << i));
          const uint64_t a = _cvtmask32_u32(_mm512_test_epi16_mask(lo, bit));
          const uint64_t b = _cvtmask32_u32(_mm512_test_epi16_mask(hi, bit));
          words[(16 * c + i) * W + w] = a | (b << 32);
        }
      }
    }
  }
};

}  // namespace

template <int W>
void ForwardAvx512(const NetPlan& p, const float* x, int64_t n, int64_t n_in, int64_t b,
                   int64_t e, float* y) {
  impl::Forward<W, PackAvx512>(p, x, n, n_in, b, e, y);
}
template void ForwardAvx512<1>(const NetPlan&, const float*, int64_t, int64_t, int64_t,
                               int64_t, float*);
template void ForwardAvx512<2>(const NetPlan&, const float*, int64_t, int64_t, int64_t,
                               int64_t, float*);
template void ForwardAvx512<4>(const NetPlan&, const float*, int64_t, int64_t, int64_t,
                               int64_t, float*);
template void ForwardAvx512<8>(const NetPlan&, const float*, int64_t, int64_t, int64_t,
                               int64_t, float*);
}  // namespace steport::logic
