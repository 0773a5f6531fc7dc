// The AVX-512 steps of the requantization (requant.h), shared by its kernels
// (requant_avx512.cc) and the conv GEMM's tile epilogue (lut_gemm_avx512.cc, Sep8TCodes).
// Include from AVX-512 translation units only.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace steport::approx::avx512 {

// Rounding is explicit in every instruction (round to nearest even, no exceptions), so MXCSR
// does not matter: int32 -> fp32 like a Cast, an IEEE multiply like Mul, round half to even
// like QuantizeLinear.
constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// The per-call constants of Codes: the clamp bounds [-y_zp, 255 - y_zp] and y_zp.
struct CodeBounds {
  __m512 lo, hi;
  __m512i zp;
  explicit CodeBounds(int32_t y_zp)
      : lo(_mm512_set1_ps(static_cast<float>(-y_zp))),
        hi(_mm512_set1_ps(static_cast<float>(255 - y_zp))),
        zp(_mm512_set1_epi32(y_zp)) {}
};

// 16 codes of biased sums v (already wrap32(acc + bias)) at multiplier m. Clamping before
// rounding equals saturating after it (integer bounds, monotone rounding).
inline __m128i Codes(__m512i v, __m512 m, const CodeBounds& b) {
  __m512 f = _mm512_mul_round_ps(_mm512_cvt_roundepi32_ps(v, kRne), m, kRne);
  f = _mm512_min_ps(_mm512_max_ps(f, b.lo), b.hi);
  return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvt_roundps_epi32(f, kRne), b.zp));
}

// The pool's reduction: max, or min for a negative multiplier (the codes' order reversed).
inline __m512i PoolReduce(bool take_min, __m512i u, __m512i v) {
  return take_min ? _mm512_min_epi32(u, v) : _mm512_max_epi32(u, v);
}

// Horizontal pairs of the 32 lanes [a | c]: lane j = reduce(lane 2j, lane 2j + 1).
inline __m512i PoolPairs(bool take_min, __m512i a, __m512i c) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  return PoolReduce(take_min, _mm512_permutex2var_epi32(a, even, c),
                    _mm512_permutex2var_epi32(a, odd, c));
}

}  // namespace steport::approx::avx512
