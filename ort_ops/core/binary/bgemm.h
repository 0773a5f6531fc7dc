// Binary (XNOR-popcount) primitives on raw pointers; no runtime glue here.
// Bits: 1 = +1, LSB first, 64-bit words along the reduction axis (docs/binary.md).
#pragma once
#include <cstdint>
#include <vector>

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

// ---- AMX-INT8 path for batched GEMMs (AVX-512 unit list; needs AmxInt8Usable()) ----------
// XNOR-popcount as a +-1 int8 dot product: k - 2 * popcount(a ^ b) = sum_k a_k * b_k with
// bits as +1 / -1, so one tdpbssd (16x16x64 MACs) replaces 16K bit operations. Padding is 0
// on both sides and adds nothing.
constexpr int64_t kAmxBlock = 32;  // rows and columns per tile block (2 x 2 tiles of 16x16)
constexpr int64_t kAmxK = 64;      // k per tile step
// Operands are stored tile by tile (1 KiB each, so a tile load reads contiguous memory: rows
// 4 KiB apart would all fall in one L1 set): with KT = kp / 64 k-steps,
//   A tile (row block rt, k-step kt) at ((rt * KT) + kt) * 1024: 16 rows x 64 k bytes;
//   B tile (column block ct, k-step kt) at ((ct * KT) + kt) * 1024: 16 k-quads x 16 columns
//   x 4 bytes (byte 64 q + 4 j + i is k = 64 kt + 4 q + i of column 16 ct + j).
// Values: +1 / -1 for a bit (k < kbits, row < rows, column < n), else 0.
struct AmxWeights {
  std::vector<int8_t> storage;    // tiles start at the first 64-byte boundary
  int64_t n = 0, np = 0, kp = 0;  // np: n rounded up to kAmxBlock, kp: k rounded up to kAmxK
  const int8_t* tiles() const { return Align64(storage.data()); }
  static const int8_t* Align64(const int8_t* p) {
    return reinterpret_cast<const int8_t*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63});
  }
};
AmxWeights PrepareAmxWeights(const uint64_t* b, int64_t n, int64_t k);
// A tiles of rows [0, rows_padded) (a multiple of 16) of src [rows, k] (row stride ld):
// +1 where x >= 0, -1 below (NaN: -1), 0 for rows >= rows and k-padding.
void PackSignTilesAvx512(const float* src, int64_t rows, int64_t rows_padded, int64_t k,
                         int64_t ld, int8_t* dst, int64_t kp);
// y[i * n + j] = float(dot_ij) * scale[j] + bias[j] (a multiply, then an add: the other
// kernels' rounding) for rows i < m of the A tiles (mp rows) and the columns of column blocks
// [nb_begin, nb_end) (32 columns each, j < n). Tiles are configured and released per call.
struct AmxGemmOut {
  const float* scale;
  const float* bias;
  float* y;
  int64_t m, n;
};
void GemmBlocksAmx(const int8_t* a8, int64_t mp, const AmxWeights& w, int64_t nb_begin,
                   int64_t nb_end, const AmxGemmOut& out);

// Mask of the valid bits in the last word of a k-bit row (all ones when k % 64 == 0).
inline uint64_t LastWordMask(int64_t k) {
  const int r = static_cast<int>(k % 64);
  return r == 0 ? ~uint64_t{0} : ((uint64_t{1} << r) - 1);
}

}  // namespace steport::binary
