// AVX-512 binary primitives with VPOPCNTDQ (vpopcntq). Row-major tiles (4x4 / 1x8, masked
// tail loads) for thin GEMMs; transposed tiles (one weight word broadcast against 8 columns
// per vector, up to 8x16 / 4x32 register blocks) for convolutions and batched GEMMs, where
// the per-output horizontal sums would otherwise dominate. Only called when the CPU has
// VPOPCNTDQ.
#include <immintrin.h>

#include "core/binary/bgemm.h"

namespace steport::binary {
namespace {

template <int MR, int NR>
inline void Tile(const uint64_t* a, int64_t lda, const uint64_t* b, int64_t ldb, int64_t kw,
                 int32_t* out, int64_t ldo) {
  __m512i acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_si512();
  for (int64_t w = 0; w < kw; w += 8) {
    const int64_t left = kw - w;
    const __mmask8 mk = left >= 8 ? __mmask8(0xff) : __mmask8((1u << left) - 1);
    __m512i va[MR], vb[NR];
    for (int i = 0; i < MR; ++i) va[i] = _mm512_maskz_loadu_epi64(mk, a + i * lda + w);
    for (int j = 0; j < NR; ++j) vb[j] = _mm512_maskz_loadu_epi64(mk, b + j * ldb + w);
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(va[i], vb[j])));
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      out[i * ldo + j] = static_cast<int32_t>(_mm512_reduce_add_epi64(acc[i][j]));
}

// MR rows of a against NV vectors (8 columns each) of bt; per word one broadcast per row.
template <int MR, int NV>
void TileT(const uint64_t* a, int64_t lda, const uint64_t* bt, int64_t ldb, int64_t kw,
           int32_t* out, int64_t ldo) {
  __m512i acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_si512();
  for (int64_t w = 0; w < kw; ++w) {
    __m512i vb[NV];
    for (int j = 0; j < NV; ++j) vb[j] = _mm512_loadu_si512(bt + w * ldb + 8 * j);
    for (int i = 0; i < MR; ++i) {
      const __m512i va = _mm512_set1_epi64(static_cast<long long>(a[i * lda + w]));
      for (int j = 0; j < NV; ++j)
        acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(va, vb[j])));
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i * ldo + 8 * j),
                          _mm512_cvtepi64_epi32(acc[i][j]));
}

using TileTFn = void (*)(const uint64_t*, int64_t, const uint64_t*, int64_t, int64_t, int32_t*,
                         int64_t);

// All rows against NV column vectors: blocks of MAXR rows, then one tile for the rest.
template <int NV, int MAXR>
void RowsT(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* bt, int64_t ldb,
           int64_t kw, int32_t* out, int64_t ldo) {
  static constexpr TileTFn kTail[8] = {nullptr, TileT<1, NV>, TileT<2, NV>, TileT<3, NV>,
                                       TileT<4, NV>, TileT<5, NV>, TileT<6, NV>, TileT<7, NV>};
  int64_t i = 0;
  for (; i + MAXR <= m; i += MAXR) TileT<MAXR, NV>(a + i * lda, lda, bt, ldb, kw, out + i * ldo, ldo);
  if (i < m) kTail[m - i](a + i * lda, lda, bt, ldb, kw, out + i * ldo, ldo);
}

}  // namespace

void PackSignRowsAvx512(const float* src, int64_t rows, int64_t k, int64_t ld, uint64_t* dst,
                        int64_t kw) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    for (int64_t w = 0; w < kw; ++w) {
      uint64_t word = 0;
      for (int q = 0; q < 4; ++q) {
        const int64_t c0 = w * 64 + q * 16, left = k - c0;
        if (left <= 0) break;
        const __mmask16 lm = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
        const __mmask16 ge =
            _mm512_mask_cmp_ps_mask(lm, _mm512_maskz_loadu_ps(lm, s + c0), zero, _CMP_GE_OQ);
        word |= uint64_t{_cvtmask16_u32(ge)} << (16 * q);
      }
      dst[r * kw + w] = word;
    }
  }
}

void PackChannelsAvx512(const float* src, int64_t cstride, int64_t c, int64_t npx,
                        uint64_t* dst, int64_t dstride) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t w = 0; w * 64 < c; ++w) {
    const int64_t nb = c - w * 64 < 64 ? c - w * 64 : 64;
    const float* s0 = src + w * 64 * cstride;
    for (int64_t x = 0; x < npx; x += 16) {
      const int64_t left = npx - x;
      const __mmask16 lm = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
      __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
      __m512i bit = _mm512_set1_epi64(1);
      for (int64_t b = 0; b < nb; ++b) {
        const __mmask16 ge = _mm512_mask_cmp_ps_mask(
            lm, _mm512_maskz_loadu_ps(lm, s0 + b * cstride + x), zero, _CMP_GE_OQ);
        lo = _mm512_mask_or_epi64(lo, static_cast<__mmask8>(ge), lo, bit);
        hi = _mm512_mask_or_epi64(hi, static_cast<__mmask8>(ge >> 8), hi, bit);
        bit = _mm512_add_epi64(bit, bit);
      }
      _mm512_mask_storeu_epi64(dst + w * dstride + x, static_cast<__mmask8>(lm), lo);
      _mm512_mask_storeu_epi64(dst + w * dstride + x + 8, static_cast<__mmask8>(lm >> 8), hi);
    }
  }
}

void ConvOutAvx512(const int32_t* pop, int64_t n, int32_t base, float sc, float bi,
                   float* y) {
  const __m512i vbase = _mm512_set1_epi32(base);
  const __m512 vs = _mm512_set1_ps(sc), vb = _mm512_set1_ps(bi);
  for (int64_t q = 0; q < n; q += 16) {
    const int64_t left = n - q;
    const __mmask16 lm = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    const __m512i v = _mm512_maskz_loadu_epi32(lm, pop + q);
    const __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(vbase, _mm512_slli_epi32(v, 1)));
    _mm512_mask_storeu_ps(y + q, lm, _mm512_add_ps(_mm512_mul_ps(d, vs), vb));  // no FMA
  }
}

void XorPopAvx512(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b, int64_t ldb,
                  int64_t n, int64_t kw, int32_t* out, int64_t ldo) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) {
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) Tile<4, 4>(a + i * lda, lda, b + j * ldb, ldb, kw, out + i * ldo + j, ldo);
    for (; j < n; ++j) Tile<4, 1>(a + i * lda, lda, b + j * ldb, ldb, kw, out + i * ldo + j, ldo);
  }
  for (; i < m; ++i) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) Tile<1, 8>(a + i * lda, lda, b + j * ldb, ldb, kw, out + i * ldo + j, ldo);
    for (; j < n; ++j) Tile<1, 1>(a + i * lda, lda, b + j * ldb, ldb, kw, out + i * ldo + j, ldo);
  }
}

void XorPopTAvx512(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* bt, int64_t ldb,
                   int64_t n, int64_t kw, int32_t* out, int64_t ldo) {
  const int64_t nv = (n + kColVec - 1) / kColVec;
  int64_t v = 0;
  for (; v + 4 <= nv; v += 4) RowsT<4, 4>(a, lda, m, bt + 8 * v, ldb, kw, out + 8 * v, ldo);
  switch (nv - v) {
    case 3: RowsT<3, 4>(a, lda, m, bt + 8 * v, ldb, kw, out + 8 * v, ldo); break;
    case 2: RowsT<2, 8>(a, lda, m, bt + 8 * v, ldb, kw, out + 8 * v, ldo); break;
    case 1: RowsT<1, 8>(a, lda, m, bt + 8 * v, ldb, kw, out + 8 * v, ldo); break;
    default: break;
  }
}

}  // namespace steport::binary
