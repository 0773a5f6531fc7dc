// Binary (XNOR-popcount) primitives on raw pointers; no runtime glue here.
// Bits: 1 = +1, LSB first, 64-bit words along the reduction axis (docs/binary.md).
#pragma once
#include <cstdint>

#include "core/common/cpu.h"

namespace steport::binary {

// dst[r * kw + w]: sign bits (x >= 0 -> 1; NaN -> 0) of src[r * ld + c], c < k; tail bits 0.
void PackSignRows(const float* src, int64_t rows, int64_t k, int64_t ld, uint64_t* dst,
                  int64_t kw);

// out[i * ldo + j] = sum_{w < kw} popcount(a[i * lda + w] ^ b[j * ldb + w]), i < m, j < n.
using XorPopFn = void (*)(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b,
                          int64_t ldb, int64_t n, int64_t kw, int32_t* out, int64_t ldo);
void XorPopPortable(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b, int64_t ldb,
                    int64_t n, int64_t kw, int32_t* out, int64_t ldo);
#if defined(STEPORT_X86)
void XorPopAvx2(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b, int64_t ldb,
                int64_t n, int64_t kw, int32_t* out, int64_t ldo);
// Needs AVX512F + VPOPCNTDQ.
void XorPopAvx512(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b, int64_t ldb,
                  int64_t n, int64_t kw, int32_t* out, int64_t ldo);
#endif

// The best XorPop for `isa`: the AVX-512 path needs VPOPCNTDQ, else AVX2 runs instead.
XorPopFn SelectXorPop(Isa isa);

// Mask of the valid bits in the last word of a k-bit row (all ones when k % 64 == 0).
inline uint64_t LastWordMask(int64_t k) {
  const int r = static_cast<int>(k % 64);
  return r == 0 ? ~uint64_t{0} : ((uint64_t{1} << r) - 1);
}

}  // namespace steport::binary
