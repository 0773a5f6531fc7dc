// Compiled with AVX-512 flags; only called after run-time detection (F+BW+VL+DQ). Uses only
// AVX-512F gathers here, so the VNNI/VPOPCNTDQ flags of this file never matter at run time.
// LUT GEMM: 16 rows of A per vector (one gather = 16 lookups), 8 weight columns per block.
#include <immintrin.h>

#include <algorithm>

#include "lut_gemm.h"

namespace steport::approx {
namespace {
template <int NB>
void Tile16(const GemmProblem& p, int64_t m0, int64_t mv, int64_t n0) {
  __m512i acc[NB];
  for (int j = 0; j < NB; ++j) acc[j] = _mm512_setzero_si512();
  for (int64_t k = 0; k < p.K; ++k) {
    const __m512i idx = _mm512_cvtepu8_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p.at + k * p.ld_at + m0)));
    const uint8_t* brow = p.b + k * p.N + n0;
    for (int j = 0; j < NB; ++j)
      acc[j] = _mm512_add_epi32(
          acc[j], _mm512_i32gather_epi32(idx, p.lut_t + int64_t(brow[j]) * 256, 4));
  }
  alignas(64) int32_t t[16];
  for (int j = 0; j < NB; ++j) {
    if (p.corr) acc[j] = _mm512_sub_epi32(acc[j], _mm512_set1_epi32(p.corr[n0 + j]));
    if (p.ldy_m == 1 && mv == 16) {
      _mm512_storeu_si512(p.y + m0 + (n0 + j) * p.ldy_n, acc[j]);
      continue;
    }
    _mm512_store_si512(t, acc[j]);
    for (int64_t i = 0; i < mv; ++i) p.y[(m0 + i) * p.ldy_m + (n0 + j) * p.ldy_n] = t[i];
  }
}
}  // namespace

void LutGemmAvx512(const GemmProblem& p, int64_t m_begin, int64_t m_end) {
  for (int64_t m0 = m_begin; m0 < m_end; m0 += 16) {
    const int64_t mv = std::min<int64_t>(16, m_end - m0);
    int64_t n = 0;
    for (; n + 8 <= p.N; n += 8) Tile16<8>(p, m0, mv, n);
    for (; n < p.N; ++n) Tile16<1>(p, m0, mv, n);
  }
}

void GatherAccAvx512(const int32_t* row, const uint8_t* idx, int64_t stride, int64_t n,
                     int32_t* acc) {
  if (stride != 1) return GatherAccPortable(row, idx, stride, n, acc);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i ix = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + i)));
    _mm512_storeu_si512(acc + i, _mm512_add_epi32(_mm512_loadu_si512(acc + i),
                                                  _mm512_i32gather_epi32(ix, row, 4)));
  }
  if (i < n) GatherAccAvx2(row, idx + i, 1, n - i, acc + i);
}

}  // namespace steport::approx
