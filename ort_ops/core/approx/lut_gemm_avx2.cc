// Compiled with -mavx2 -mfma; only called after run-time detection.
// LUT GEMM: 8 rows of A per vector (one _mm256_i32gather_epi32 = 8 LUT lookups), 4 weight
// columns per block so each loaded activation vector feeds 4 gathers.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "lut_gemm.h"

namespace steport::approx {
namespace {
// Cache blocking as in lut_gemm_avx512.cc: per k-chunk the 4*kKc LUT rows stay in L1 while
// every row block of the pass reuses them; partial sums in a small scratch.
constexpr int64_t kRowsPerPass = 256;
constexpr int64_t kKc = 8;

template <int NB>
void Pass(const GemmProblem& p, int64_t m0, int64_t m1, int64_t n0, int32_t* scratch) {
  const int64_t rows = m1 - m0, blocks = (rows + 7) / 8;
  for (int64_t i = 0; i < NB * blocks * 8; ++i) scratch[i] = 0;
  for (int64_t k0 = 0; k0 < p.K; k0 += kKc) {
    const int64_t k1 = std::min(p.K, k0 + kKc);
    for (int64_t mb = 0; mb < blocks; ++mb) {
      __m256i acc[NB];
      for (int j = 0; j < NB; ++j)
        acc[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(scratch + (j * blocks + mb) * 8));
      for (int64_t k = k0; k < k1; ++k) {
        // 8 codes; ld_at is padded to kMBlock so these bytes are inside the buffer.
        const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(
            reinterpret_cast<const __m128i*>(p.at + k * p.ld_at + m0 + mb * 8)));
        const uint8_t* brow = p.b + k * p.N + n0;
        for (int j = 0; j < NB; ++j)
          acc[j] = _mm256_add_epi32(
              acc[j], _mm256_i32gather_epi32(p.lut_t + int64_t(brow[j]) * 256, idx, 4));
      }
      for (int j = 0; j < NB; ++j)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(scratch + (j * blocks + mb) * 8), acc[j]);
    }
  }
  for (int j = 0; j < NB; ++j) {
    const int32_t c = p.corr ? p.corr[n0 + j] : 0;
    const int32_t* s = scratch + j * blocks * 8;
    for (int64_t i = 0; i < rows; ++i)
      p.y[(m0 + i) * p.ldy_m + (n0 + j) * p.ldy_n] =
          static_cast<int32_t>(static_cast<uint32_t>(s[i]) - static_cast<uint32_t>(c));
  }
}
}  // namespace

void LutGemmAvx2(const GemmProblem& p, int64_t m_begin, int64_t m_end) {
  alignas(32) int32_t scratch[4 * kRowsPerPass];
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kRowsPerPass) {
    const int64_t m1 = std::min(m_end, m0 + kRowsPerPass);
    int64_t n = 0;
    for (; n + 4 <= p.N; n += 4) Pass<4>(p, m0, m1, n, scratch);
    for (; n < p.N; ++n) Pass<1>(p, m0, m1, n, scratch);
  }
}

void GatherAccAvx2(const int32_t* row, const uint8_t* idx, int64_t stride, int64_t n,
                   int32_t* acc) {
  if (stride != 1) return GatherAccPortable(row, idx, stride, n, acc);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i ix = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(idx + i)));
    __m256i* a = reinterpret_cast<__m256i*>(acc + i);
    _mm256_storeu_si256(a, _mm256_add_epi32(_mm256_loadu_si256(a), _mm256_i32gather_epi32(row, ix, 4)));
  }
  if (i < n) GatherAccPortable(row, idx + i, 1, n - i, acc + i);
}

// Separable path: exact int16 x int16 -> int32 multiply-adds (|f|, |g| <= 32767 so a pair sum
// never overflows). Microkernel 4 rows x 16 columns.
void SepGemmAvx2(const SepProblem& p, int64_t m_begin, int64_t m_end) {
  const int64_t kp2 = p.Kp / 2;
  for (int64_t m0 = m_begin; m0 < m_end; m0 += 4) {
    const int64_t mr = std::min<int64_t>(4, m_end - m0);
    int64_t n0 = 0;
    if (mr == 4) {
      for (; n0 + 16 <= p.N; n0 += 16) {
        __m256i acc[4][2];
        for (auto& r : acc) r[0] = r[1] = _mm256_setzero_si256();
        for (int64_t k = 0; k < kp2; ++k) {
          const int16_t* g = p.gb + (k * p.N + n0) * 2;
          const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g));
          const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + 16));
          for (int i = 0; i < 4; ++i) {
            int32_t pair;
            std::memcpy(&pair, p.fa + (m0 + i) * p.Kp + 2 * k, 4);
            const __m256i a = _mm256_set1_epi32(pair);
            acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(a, b0));
            acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(a, b1));
          }
        }
        alignas(32) int32_t t[16];
        for (int i = 0; i < 4; ++i) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(t), acc[i][0]);
          _mm256_store_si256(reinterpret_cast<__m256i*>(t + 8), acc[i][1]);
          for (int j = 0; j < 16; ++j) {
            const int32_t c = p.corr ? p.corr[n0 + j] : 0;
            p.y[(m0 + i) * p.ldy_m + (n0 + j) * p.ldy_n] =
                static_cast<int32_t>(static_cast<uint32_t>(t[j]) - static_cast<uint32_t>(c));
          }
        }
      }
    }
    if (n0 < p.N) {  // column tail and short row blocks: scalar
      for (int64_t m = m0; m < m0 + mr; ++m)
        for (int64_t n = n0; n < p.N; ++n) {
          uint32_t acc = 0;
          for (int64_t k = 0; k < p.Kp; ++k)
            acc += static_cast<uint32_t>(int32_t(p.fa[m * p.Kp + k]) *
                                         int32_t(p.gb[(k >> 1) * p.N * 2 + n * 2 + (k & 1)]));
          if (p.corr) acc -= static_cast<uint32_t>(p.corr[n]);
          p.y[m * p.ldy_m + n * p.ldy_n] = static_cast<int32_t>(acc);
        }
    }
  }
}

}  // namespace steport::approx
