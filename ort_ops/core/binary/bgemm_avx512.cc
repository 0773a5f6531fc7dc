// AVX-512 XNOR-popcount tiles with VPOPCNTDQ (vpopcntq): 8 words per instruction, masked
// loads for the tail, 4x4 / 1x8 register tiles. Only called when the CPU has VPOPCNTDQ.
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

}  // namespace

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

}  // namespace steport::binary
