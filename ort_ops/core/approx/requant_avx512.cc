// AVX-512 requantization kernels (requant.h). Rounding is explicit in every instruction
// (round to nearest even, no exceptions), so MXCSR does not matter: int32 -> fp32 like a
// Cast, an IEEE multiply like Mul, round half to even like QuantizeLinear.
#include <immintrin.h>

#include "requant.h"

namespace steport::approx {
namespace {
constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

inline __m128i Codes(__m512i v, __m512 m, __m512 lo, __m512 hi, __m512i zp) {
  __m512 f = _mm512_mul_round_ps(_mm512_cvt_roundepi32_ps(v, kRne), m, kRne);
  f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
  return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvt_roundps_epi32(f, kRne), zp));
}

inline __mmask16 Tail(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }
}  // namespace

void RequantSpanAvx512(const int32_t* acc, int64_t n, int32_t bias, float mult, int32_t y_zp,
                       uint8_t* y) {
  const __m512 m = _mm512_set1_ps(mult);
  const __m512 lo = _mm512_set1_ps(static_cast<float>(-y_zp)), hi = _mm512_set1_ps(static_cast<float>(255 - y_zp));
  const __m512i b = _mm512_set1_epi32(bias), zp = _mm512_set1_epi32(y_zp);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     Codes(_mm512_add_epi32(_mm512_loadu_si512(acc + i), b), m, lo, hi, zp));
  if (i < n) {
    const __mmask16 k = Tail(n - i);
    _mm_mask_storeu_epi8(y + i, k, Codes(_mm512_add_epi32(_mm512_maskz_loadu_epi32(k, acc + i), b), m, lo, hi, zp));
  }
}

void RequantRowAvx512(const int32_t* acc, int64_t n, const int32_t* bias, const float* mult,
                      bool per_channel, int32_t y_zp, uint8_t* y) {
  const __m512 lo = _mm512_set1_ps(static_cast<float>(-y_zp)), hi = _mm512_set1_ps(static_cast<float>(255 - y_zp));
  const __m512i zp = _mm512_set1_epi32(y_zp);
  const __m512 m1 = _mm512_set1_ps(mult[0]);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 k = n - j >= 16 ? static_cast<__mmask16>(0xFFFF) : Tail(n - j);
    const __m512i v = _mm512_add_epi32(_mm512_maskz_loadu_epi32(k, acc + j),
                                       _mm512_maskz_loadu_epi32(k, bias + j));
    const __m512 m = per_channel ? _mm512_maskz_loadu_ps(k, mult + j) : m1;
    _mm_mask_storeu_epi8(y + j, k, Codes(v, m, lo, hi, zp));
  }
}

void Pool2x2RequantAvx512(const int32_t* r0, const int32_t* r1, int64_t n, int32_t bias,
                          float mult, int32_t y_zp, bool take_min, uint8_t* y) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 m = _mm512_set1_ps(mult);
  const __m512 lo = _mm512_set1_ps(static_cast<float>(-y_zp)), hi = _mm512_set1_ps(static_cast<float>(255 - y_zp));
  const __m512i b = _mm512_set1_epi32(bias), zp = _mm512_set1_epi32(y_zp);
  auto reduce = [take_min](__m512i u, __m512i v) {
    return take_min ? _mm512_min_epi32(u, v) : _mm512_max_epi32(u, v);
  };
  for (int64_t j = 0; j < n; j += 16) {
    // 16 outputs from 32 columns of both rows (masked at the end: 2n columns are readable)
    const int64_t left = 2 * (n - j);
    const __mmask16 k0 = left >= 16 ? static_cast<__mmask16>(0xFFFF) : Tail(left);
    const __mmask16 k1 = left >= 32 ? static_cast<__mmask16>(0xFFFF) : left > 16 ? Tail(left - 16) : 0;
    const int32_t* p0 = r0 + 2 * j;
    const int32_t* p1 = r1 + 2 * j;
    // the pool compares the biased sums wrap32(acc + bias), the values requantized
    const __m512i a = reduce(_mm512_add_epi32(_mm512_maskz_loadu_epi32(k0, p0), b),
                             _mm512_add_epi32(_mm512_maskz_loadu_epi32(k0, p1), b));
    const __m512i c = reduce(_mm512_add_epi32(_mm512_maskz_loadu_epi32(k1, p0 + 16), b),
                             _mm512_add_epi32(_mm512_maskz_loadu_epi32(k1, p1 + 16), b));
    const __m512i v = reduce(_mm512_permutex2var_epi32(a, even, c), _mm512_permutex2var_epi32(a, odd, c));
    const __mmask16 ko = n - j >= 16 ? static_cast<__mmask16>(0xFFFF) : Tail(n - j);
    _mm_mask_storeu_epi8(y + j, ko, Codes(v, m, lo, hi, zp));
  }
}

}  // namespace steport::approx
