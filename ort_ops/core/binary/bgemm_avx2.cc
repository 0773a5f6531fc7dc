// AVX2 binary primitives: nibble-LUT popcount (vpshufb) with byte accumulation and vpsadbw.
// Row-major 2x2 tiles for thin GEMMs; transposed tiles (one weight word broadcast against
// 4 columns per vector) for convolutions and batched GEMMs.
#include <immintrin.h>

#include "core/binary/bgemm.h"
#include "core/binary/generic_inl.h"

namespace steport::binary {
namespace {

// Per-byte popcounts (each <= 8) of v.
inline __m256i PopBytes(__m256i v, __m256i lut, __m256i low) {
  const __m256i lo = _mm256_and_si256(v, low);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

inline __m256i Pop8(__m256i v, __m256i lut, __m256i low) {
  return _mm256_sad_epu8(PopBytes(v, lut, low), _mm256_setzero_si256());  // 4 x u64 sums
}

inline __m256i Lut() {
  return _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                          0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
}

inline int64_t HSum(__m256i v) {
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

template <int MR, int NR>
inline void Tile(const uint64_t* a, int64_t lda, const uint64_t* b, int64_t ldb, int64_t kw,
                 int32_t* out, int64_t ldo) {
  const __m256i lut = Lut(), low = _mm256_set1_epi8(0x0f);
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

// MR rows of a against 8 columns (2 vectors of 4) of bt. Byte counters take at most 31
// words (31 * 8 = 248 < 256) before they are widened with vpsadbw.
template <int MR>
void TileT(const uint64_t* a, int64_t lda, const uint64_t* bt, int64_t ldb, int64_t kw,
           int32_t* out, int64_t ldo) {
  const __m256i lut = Lut(), low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
  __m256i acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = zero;
  for (int64_t w0 = 0; w0 < kw; w0 += 31) {
    const int64_t w1 = kw - w0 < 31 ? kw : w0 + 31;
    __m256i cnt[MR][2];
    for (int i = 0; i < MR; ++i) cnt[i][0] = cnt[i][1] = zero;
    for (int64_t w = w0; w < w1; ++w) {
      const __m256i b0 = _mm256_loadu_si256((const __m256i*)(bt + w * ldb));
      const __m256i b1 = _mm256_loadu_si256((const __m256i*)(bt + w * ldb + 4));
      for (int i = 0; i < MR; ++i) {
        const __m256i va = _mm256_set1_epi64x(static_cast<long long>(a[i * lda + w]));
        cnt[i][0] = _mm256_add_epi8(cnt[i][0], PopBytes(_mm256_xor_si256(va, b0), lut, low));
        cnt[i][1] = _mm256_add_epi8(cnt[i][1], PopBytes(_mm256_xor_si256(va, b1), lut, low));
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 2; ++j) acc[i][j] = _mm256_add_epi64(acc[i][j], _mm256_sad_epu8(cnt[i][j], zero));
  }
  const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 2; ++j)  // low 32 bits of each u64 lane (sums < 2^31)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i * ldo + 4 * j),
                       _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(acc[i][j], even)));
}

}  // namespace

void PackSignRowsAvx2(const float* src, int64_t rows, int64_t k, int64_t ld, uint64_t* dst,
                      int64_t kw) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    for (int64_t w = 0; w < kw; ++w) {
      const int64_t c0 = w * 64;
      uint64_t word = 0;
      if (k - c0 >= 64) {
        for (int q = 0; q < 8; ++q) {
          const __m256 ge = _mm256_cmp_ps(_mm256_loadu_ps(s + c0 + 8 * q), zero, _CMP_GE_OQ);
          word |= uint64_t(static_cast<uint32_t>(_mm256_movemask_ps(ge))) << (8 * q);
        }
      } else {
        for (int64_t b = 0; b < k - c0; ++b) word |= uint64_t(s[c0 + b] >= 0.0f) << b;
      }
      dst[r * kw + w] = word;
    }
  }
}

void PackChannelsAvx2(const float* src, int64_t cstride, int64_t c, int64_t npx,
                      uint64_t* dst, int64_t dstride) {
  PackChannelsGeneric(src, cstride, c, npx, dst, dstride);
}

void ConvOutAvx2(const int32_t* pop, int64_t n, int32_t base, float sc, float bi, float* y) {
  ConvOutGeneric(pop, n, base, sc, bi, y);
}

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

void XorPopTAvx2(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* bt, int64_t ldb,
                 int64_t n, int64_t kw, int32_t* out, int64_t ldo) {
  for (int64_t j = 0; j < n; j += kColVec) {
    int64_t i = 0;
    for (; i + 3 <= m; i += 3) TileT<3>(a + i * lda, lda, bt + j, ldb, kw, out + i * ldo + j, ldo);
    if (m - i == 2) TileT<2>(a + i * lda, lda, bt + j, ldb, kw, out + i * ldo + j, ldo);
    if (m - i == 1) TileT<1>(a + i * lda, lda, bt + j, ldb, kw, out + i * ldo + j, ldo);
  }
}

}  // namespace steport::binary
