// AVX2 XNOR-popcount tiles: nibble-LUT popcount (vpshufb) summed with vpsadbw, 2x2 register
// tiles; words past the last full 256-bit vector use the popcnt instruction.
#include <immintrin.h>

#include "core/binary/bgemm.h"

namespace steport::binary {
namespace {

inline __m256i Pop8(__m256i v, __m256i lut, __m256i low) {
  const __m256i lo = _mm256_and_si256(v, low);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
  const __m256i c = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
  return _mm256_sad_epu8(c, _mm256_setzero_si256());  // 4 x u64 partial sums
}

inline int64_t HSum(__m256i v) {
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

template <int MR, int NR>
inline void Tile(const uint64_t* a, int64_t lda, const uint64_t* b, int64_t ldb, int64_t kw,
                 int32_t* out, int64_t ldo) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  __m256i acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_si256();
  int64_t w = 0;
  for (; w + 4 <= kw; w += 4) {
    __m256i va[MR], vb[NR];
    for (int i = 0; i < MR; ++i) va[i] = _mm256_loadu_si256((const __m256i*)(a + i * lda + w));
    for (int j = 0; j < NR; ++j) vb[j] = _mm256_loadu_si256((const __m256i*)(b + j * ldb + w));
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        acc[i][j] = _mm256_add_epi64(acc[i][j], Pop8(_mm256_xor_si256(va[i], vb[j]), lut, low));
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      int64_t s = HSum(acc[i][j]);
      for (int64_t t = w; t < kw; ++t) s += _mm_popcnt_u64(a[i * lda + t] ^ b[j * ldb + t]);
      out[i * ldo + j] = static_cast<int32_t>(s);
    }
}

}  // namespace

void XorPopAvx2(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b, int64_t ldb,
                int64_t n, int64_t kw, int32_t* out, int64_t ldo) {
  int64_t i = 0;
  for (; i + 2 <= m; i += 2) {
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) Tile<2, 2>(a + i * lda, lda, b + j * ldb, ldb, kw, out + i * ldo + j, ldo);
    for (; j < n; ++j) Tile<2, 1>(a + i * lda, lda, b + j * ldb, ldb, kw, out + i * ldo + j, ldo);
  }
  for (; i < m; ++i) {
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) Tile<1, 4>(a + i * lda, lda, b + j * ldb, ldb, kw, out + i * ldo + j, ldo);
    for (; j < n; ++j) Tile<1, 1>(a + i * lda, lda, b + j * ldb, ldb, kw, out + i * ldo + j, ldo);
  }
}

}  // namespace steport::binary
