// Binary (XNOR-popcount) primitives on raw pointers; no runtime glue here.
// Bits: 1 = +1, LSB first, 64-bit words along the reduction axis (docs/binary.md).
#pragma once
#include <cstdint>

#include "core/common/cpu.h"

namespace steport::binary {

// Columns a transposed-tile kernel computes at once (one 512-bit vector of words).
constexpr int64_t kColVec = 8;
inline int64_t RoundUpCols(int64_t n) { return (n + kColVec - 1) / kColVec * kColVec; }

// dst[r * kw + w]: sign bits (x >= 0 -> 1; NaN -> 0) of src[r * ld + c], c < k; tail bits 0.
using PackRowsFn = void (*)(const float* src, int64_t rows, int64_t k, int64_t ld,
                            uint64_t* dst, int64_t kw);
// Channel-strided packing (NCHW activations): dst[w * dstride + x] holds the sign bits of
// channels 64w .. 64w+63 at pixel x, i.e. bit b of it is sign(src[(64w + b) * cstride + x]);
// x < npx, channels >= c give 0 bits.
using PackChannelsFn = void (*)(const float* src, int64_t cstride, int64_t c, int64_t npx,
                                uint64_t* dst, int64_t dstride);
// out[i * ldo + j] = sum_{w < kw} popcount(a[i * lda + w] ^ b[j * ldb + w]), i < m, j < n.
using XorPopFn = void (*)(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b,
                          int64_t ldb, int64_t n, int64_t kw, int32_t* out, int64_t ldo);
// Transposed right side: out[i * ldo + j] = sum_{w < kw} popcount(a[i * lda + w] ^
// bt[w * ldb + j]). Vectorized across j (no horizontal sums): the kernel reads and writes
// columns up to RoundUpCols(n), so the caller must size bt rows and out rows for that
// (ldb, ldo >= RoundUpCols(n)); out columns in [n, RoundUpCols(n)) get garbage.
using XorPopTFn = void (*)(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* bt,
                           int64_t ldb, int64_t n, int64_t kw, int32_t* out, int64_t ldo);

// Conv epilogue for one output channel: y[q] = float(base - 2 * pop[q]) * sc + bi (a float
// multiply, then a float add), q < n.
using ConvOutFn = void (*)(const int32_t* pop, int64_t n, int32_t base, float sc, float bi,
                           float* y);

// One ISA's set of primitives (all produce identical results).
struct Kernels {
  PackRowsFn pack_rows;
  PackChannelsFn pack_channels;
  XorPopFn pop;
  XorPopTFn popt;
  ConvOutFn conv_out;
};

void PackSignRows(const float* src, int64_t rows, int64_t k, int64_t ld, uint64_t* dst,
                  int64_t kw);
void PackChannelsPortable(const float* src, int64_t cstride, int64_t c, int64_t npx,
                          uint64_t* dst, int64_t dstride);
void XorPopPortable(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b, int64_t ldb,
                    int64_t n, int64_t kw, int32_t* out, int64_t ldo);
void ConvOutPortable(const int32_t* pop, int64_t n, int32_t base, float sc, float bi, float* y);
void XorPopTPortable(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* bt,
                     int64_t ldb, int64_t n, int64_t kw, int32_t* out, int64_t ldo);
#if defined(STEPORT_X86)
void PackSignRowsAvx2(const float* src, int64_t rows, int64_t k, int64_t ld, uint64_t* dst,
                      int64_t kw);
void PackChannelsAvx2(const float* src, int64_t cstride, int64_t c, int64_t npx,
                      uint64_t* dst, int64_t dstride);
void XorPopAvx2(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b, int64_t ldb,
                int64_t n, int64_t kw, int32_t* out, int64_t ldo);
void ConvOutAvx2(const int32_t* pop, int64_t n, int32_t base, float sc, float bi, float* y);
void XorPopTAvx2(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* bt, int64_t ldb,
                 int64_t n, int64_t kw, int32_t* out, int64_t ldo);
// Need AVX512F/BW/DQ/VL + VPOPCNTDQ.
void PackSignRowsAvx512(const float* src, int64_t rows, int64_t k, int64_t ld, uint64_t* dst,
                        int64_t kw);
void PackChannelsAvx512(const float* src, int64_t cstride, int64_t c, int64_t npx,
                        uint64_t* dst, int64_t dstride);
void XorPopAvx512(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b, int64_t ldb,
                  int64_t n, int64_t kw, int32_t* out, int64_t ldo);
void ConvOutAvx512(const int32_t* pop, int64_t n, int32_t base, float sc, float bi, float* y);
void XorPopTAvx512(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* bt, int64_t ldb,
                   int64_t n, int64_t kw, int32_t* out, int64_t ldo);
#endif

// The best kernels for `isa`: the AVX-512 set needs VPOPCNTDQ, else the AVX2 set runs.
Kernels SelectKernels(Isa isa);

// Mask of the valid bits in the last word of a k-bit row (all ones when k % 64 == 0).
inline uint64_t LastWordMask(int64_t k) {
  const int r = static_cast<int>(k % 64);
  return r == 0 ? ~uint64_t{0} : ((uint64_t{1} << r) - 1);
}

}  // namespace steport::binary
