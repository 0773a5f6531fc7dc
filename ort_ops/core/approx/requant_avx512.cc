// AVX-512 requantization kernels (requant.h); the steps are in requant_avx512.h.
#include "requant_avx512.h"

#include "requant.h"

namespace steport::approx {
using avx512::CodeBounds;
using avx512::Codes;

namespace {
inline __mmask16 Tail(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }
}  // namespace

void RequantSpanAvx512(const int32_t* acc, int64_t n, int32_t bias, float mult, int32_t y_zp,
                       uint8_t* y) {
  const __m512 m = _mm512_set1_ps(mult);
  const CodeBounds cb(y_zp);
  const __m512i b = _mm512_set1_epi32(bias);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     Codes(_mm512_add_epi32(_mm512_loadu_si512(acc + i), b), m, cb));
  if (i < n) {
    const __mmask16 k = Tail(n - i);
    _mm_mask_storeu_epi8(y + i, k, Codes(_mm512_add_epi32(_mm512_maskz_loadu_epi32(k, acc + i), b), m, cb));
  }
}

void RequantRowAvx512(const int32_t* acc, int64_t n, const int32_t* bias, const float* mult,
                      bool per_channel, int32_t y_zp, uint8_t* y) {
  const CodeBounds cb(y_zp);
  const __m512 m1 = _mm512_set1_ps(mult[0]);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = n - j >= 16 ? static_cast<__mmask16>(0xFFFF) : Tail(n - j);
    const __m512i v = _mm512_add_epi32(_mm512_maskz_loadu_epi32(k, acc + j),
                                       _mm512_maskz_loadu_epi32(k, bias + j));
    const __m512 m = per_channel ? _mm512_maskz_loadu_ps(k, mult + j) : m1;
    _mm_mask_storeu_epi8(y + j, k, Codes(v, m, cb));
  }
}

void Pool2x2RequantAvx512(const int32_t* r0, const int32_t* r1, int64_t n, int32_t bias,
                          float mult, int32_t y_zp, bool take_min, uint8_t* y) {
  const __m512 m = _mm512_set1_ps(mult);
  const CodeBounds cb(y_zp);
  const __m512i b = _mm512_set1_epi32(bias);
  for (int64_t j = 0; j < n; j += 16) {
    // 16 outputs from 32 columns of both rows (masked at the end: 2n columns are readable)
    const int64_t left = 2 * (n - j);
    const __mmask16 k0 = left >= 16 ? static_cast<__mmask16>(0xFFFF) : Tail(left);
    const __mmask16 k1 = left >= 32 ? static_cast<__mmask16>(0xFFFF) : left > 16 ? Tail(left - 16) : 0;
    const int32_t* p0 = r0 + 2 * j;
    const int32_t* p1 = r1 + 2 * j;
    // the pool compares the biased sums wrap32(acc + bias), the values requantized
    const __m512i a = avx512::PoolReduce(take_min, _mm512_add_epi32(_mm512_maskz_loadu_epi32(k0, p0), b),
                                         _mm512_add_epi32(_mm512_maskz_loadu_epi32(k0, p1), b));
    const __m512i c = avx512::PoolReduce(take_min, _mm512_add_epi32(_mm512_maskz_loadu_epi32(k1, p0 + 16), b),
                                         _mm512_add_epi32(_mm512_maskz_loadu_epi32(k1, p1 + 16), b));
    const __mmask16 ko = n - j >= 16 ? static_cast<__mmask16>(0xFFFF) : Tail(n - j);
    _mm_mask_storeu_epi8(y + j, ko, Codes(avx512::PoolPairs(take_min, a, c), m, cb));
  }
}

void Pool2x2CodesAvx512(const uint8_t* r0, const uint8_t* r1, int64_t n, uint8_t* y) {
  for (int64_t j = 0; j < n; j += 32) {
    // 32 outputs from 64 columns of both rows (masked at the end: 2n columns are readable)
    const int64_t left = 2 * (n - j);
    const __mmask64 k = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
    const __m512i v = _mm512_max_epu8(_mm512_maskz_loadu_epi8(k, r0 + 2 * j),
                                      _mm512_maskz_loadu_epi8(k, r1 + 2 * j));
    // column pairs: each 16-bit lane's two bytes, the max in its low byte
    const __m512i pairs = _mm512_max_epu8(v, _mm512_srli_epi16(v, 8));
    const __mmask32 ko = n - j >= 32 ? ~__mmask32{0} : (__mmask32{1} << (n - j)) - 1;
    _mm256_mask_storeu_epi8(y + j, ko, _mm512_cvtepi16_epi8(pairs));
  }
}

}  // namespace steport::approx
