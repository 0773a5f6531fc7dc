// Compiled with -mavx2: the fixed-width word loops of logic_impl.h become 256-bit bit ops
// (one gate = 256 samples); only called after run-time detection.
#include <immintrin.h>

#include "logic_impl.h"

namespace steport::logic {
namespace {

// Per row, one compare per 8 features gives a byte mask (m[chunk][sample]); then per chunk
// and 64 samples, shifting bit i to each byte's top and vpmovmskb gives the word of feature
// 8c+i, 32 samples at a time. NaN != 0 (unordered compare), -0.0 == 0.
struct PackAvx2 {
  template <int W>
  static void Pack(const float* x, int64_t n_in, int64_t r0, int64_t rows, uint64_t* words,
                   uint64_t* tmp) {
    constexpr int64_t kBlock = 64 * W;
    const int64_t full = n_in / 8, chunks = (n_in + 7) / 8;
    uint8_t* m = reinterpret_cast<uint8_t*>(tmp);  // chunks * kBlock <= (n_in + 7) * W * 8
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t s = 0; s < rows; ++s) {
      const float* row = x + (r0 + s) * n_in;
      for (int64_t c = 0; c < full; ++c)
        m[c * kBlock + s] = uint8_t(_mm256_movemask_ps(
            _mm256_cmp_ps(_mm256_loadu_ps(row + 8 * c), zero, _CMP_NEQ_UQ)));
      if (full < chunks) {
        unsigned bits = 0;
        for (int64_t f = 8 * full; f < n_in; ++f) bits |= unsigned(row[f] != 0.0f) << (f - 8 * full);
        m[full * kBlock + s] = uint8_t(bits);
      }
    }
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t s = rows; s < kBlock; ++s) m[c * kBlock + s] = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      const int nf = c < full ? 8 : int(n_in - 8 * full);
      for (int w = 0; w < W; ++w) {
        const uint8_t* src = m + c * kBlock + 64 * w;
        const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
        const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32));
        for (int i = 0; i < nf; ++i) {
          const __m128i sh = _mm_cvtsi32_si128(7 - i);
          const uint64_t a = uint32_t(_mm256_movemask_epi8(_mm256_sll_epi16(lo, sh)));
          const uint64_t b = uint32_t(_mm256_movemask_epi8(_mm256_sll_epi16(hi, sh)));
          words[(8 * c + i) * W + w] = a | (b << 32);
        }
      }
    }
  }
};

}  // namespace

template <int W>
void ForwardAvx2(const NetPlan& p, const float* x, int64_t n, int64_t n_in, int64_t b,
                 int64_t e, float* y) {
  impl::Forward<W, PackAvx2>(p, x, n, n_in, b, e, y);
}
template void ForwardAvx2<1>(const NetPlan&, const float*, int64_t, int64_t, int64_t,
                             int64_t, float*);
template void ForwardAvx2<2>(const NetPlan&, const float*, int64_t, int64_t, int64_t,
                             int64_t, float*);
template void ForwardAvx2<4>(const NetPlan&, const float*, int64_t, int64_t, int64_t,
                             int64_t, float*);
}  // namespace steport::logic
