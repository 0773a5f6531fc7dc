// Compiled with AVX-512 flags; only called after run-time detection (F+BW+VL+DQ). Uses only
// AVX-512F gathers here, so the VNNI/VPOPCNTDQ flags of this file never matter at run time.
// LUT GEMM: 16 rows of A per vector (one gather = 16 lookups), 8 weight columns per block.
#include <immintrin.h>

#include <algorithm>

#include "lut_gemm.h"

namespace steport::approx {
namespace {
// Cache blocking: a pass covers kRowsPerPass rows x 8 columns; per k-chunk of kKc, the 8*kKc
// LUT rows it touches (32 KiB) stay in L1 while every row block of the pass reuses them.
// Partial sums live in a small int32 scratch between k-chunks.
constexpr int64_t kRowsPerPass = 256;
constexpr int64_t kKc = 4;

template <int NB>
void Pass(const GemmProblem& p, int64_t m0, int64_t m1, int64_t n0, int32_t* scratch) {
  const int64_t rows = m1 - m0, blocks = (rows + 15) / 16;
  for (int64_t i = 0; i < NB * blocks * 16; ++i) scratch[i] = 0;
  for (int64_t k0 = 0; k0 < p.K; k0 += kKc) {
    const int64_t k1 = std::min(p.K, k0 + kKc);
    for (int64_t mb = 0; mb < blocks; ++mb) {
      __m512i acc[NB];
      for (int j = 0; j < NB; ++j) acc[j] = _mm512_loadu_si512(scratch + (j * blocks + mb) * 16);
      for (int64_t k = k0; k < k1; ++k) {
        // 16 codes; ld_at is padded to kMBlock so these bytes are inside the buffer.
        const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(
            reinterpret_cast<const __m128i*>(p.at + k * p.ld_at + m0 + mb * 16)));
        const uint8_t* brow = p.b + k * p.N + n0;
        for (int j = 0; j < NB; ++j)
          acc[j] = _mm512_add_epi32(
              acc[j], _mm512_i32gather_epi32(idx, p.lut_t + int64_t(brow[j]) * 256, 4));
      }
      for (int j = 0; j < NB; ++j) _mm512_storeu_si512(scratch + (j * blocks + mb) * 16, acc[j]);
    }
  }
  for (int j = 0; j < NB; ++j) {
    const int32_t c = p.corr ? p.corr[n0 + j] : 0;
    const int32_t* s = scratch + j * blocks * 16;
    for (int64_t i = 0; i < rows; ++i)
      p.y[(m0 + i) * p.ldy_m + (n0 + j) * p.ldy_n] =
          static_cast<int32_t>(static_cast<uint32_t>(s[i]) - static_cast<uint32_t>(c));
  }
}
}  // namespace

void LutGemmAvx512(const GemmProblem& p, int64_t m_begin, int64_t m_end) {
  alignas(64) int32_t scratch[8 * kRowsPerPass];
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kRowsPerPass) {
    const int64_t m1 = std::min(m_end, m0 + kRowsPerPass);
    int64_t n = 0;
    for (; n + 8 <= p.N; n += 8) Pass<8>(p, m0, m1, n, scratch);
    for (; n < p.N; ++n) Pass<1>(p, m0, m1, n, scratch);
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
