// AMX-INT8 kernels for batched BinaryGemm (+-1 int8 dot products, signed x signed tdpbssd)
// and the AVX-512 sign-to-bytes packer they read. Built in the AVX-512 unit list; the AMX
// target is enabled on the tile function only, which runs only after AmxInt8Usable().
#include <immintrin.h>

#include <cstdint>
#include <vector>

#include "core/binary/bgemm.h"

namespace steport::binary {

void PackSignTilesAvx512(const float* src, int64_t rows, int64_t rows_padded, int64_t k,
                         int64_t ld, int8_t* dst, int64_t kp) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512i plus = _mm512_set1_epi8(1), minus = _mm512_set1_epi8(-1);
  const int64_t kt_count = kp / kAmxK;
  for (int64_t r = 0; r < rows_padded; ++r) {
    int8_t* d = dst + (r / 16) * kt_count * 1024 + (r % 16) * 64;  // + kt * 1024
    const float* s = src + r * ld;
    for (int64_t kt = 0; kt < kt_count; ++kt) {
      uint64_t ge = 0, valid = 0;  // bit i: column 64 kt + i is >= 0 / is inside k
      if (r < rows) {
        for (int q = 0; q < 4; ++q) {
          const int64_t left = k - (kAmxK * kt + 16 * q);
          const __mmask16 in = left >= 16 ? __mmask16(0xffff)
                               : left > 0 ? __mmask16((1u << left) - 1) : __mmask16(0);
          // ordered >= : NaN compares false and becomes -1, like the bit packers
          const __mmask16 m = _mm512_mask_cmp_ps_mask(
              in, _mm512_maskz_loadu_ps(in, s + kAmxK * kt + 16 * q), zero, _CMP_GE_OQ);
          ge |= uint64_t(m) << (16 * q);
          valid |= uint64_t(in) << (16 * q);
        }
      }
      const __m512i v = _mm512_mask_blend_epi8(ge, minus, plus);
      _mm512_storeu_si512(d + kt * 1024, _mm512_maskz_mov_epi8(valid, v));
    }
  }
}

namespace {
constexpr int64_t kKChunk = 8;  // k-steps per pass: a column block's B chunk (16 KiB) stays in L1

// Epilogue of one 32-column block: rows [0, m), columns [n0, n0 + nn).
void Affine32(const int32_t* c, int64_t m, int64_t n0, int64_t nn, const AmxGemmOut& out) {
  const __mmask16 lo = nn >= 16 ? __mmask16(0xffff) : __mmask16((1u << nn) - 1);
  const __mmask16 hi = nn >= 32 ? __mmask16(0xffff)
                       : nn > 16 ? __mmask16((1u << (nn - 16)) - 1) : __mmask16(0);
  const __m512 s0 = _mm512_maskz_loadu_ps(lo, out.scale + n0), s1 = _mm512_maskz_loadu_ps(hi, out.scale + n0 + 16);
  const __m512 b0 = _mm512_maskz_loadu_ps(lo, out.bias + n0), b1 = _mm512_maskz_loadu_ps(hi, out.bias + n0 + 16);
  for (int64_t i = 0; i < m; ++i) {
    const int32_t* cr = c + i * kAmxBlock;
    float* yr = out.y + i * out.n + n0;
    const __m512 v0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(cr)), s0);
    const __m512 v1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(cr + 16)), s1);
    _mm512_mask_storeu_ps(yr, lo, _mm512_add_ps(v0, b0));
    _mm512_mask_storeu_ps(yr + 16, hi, _mm512_add_ps(v1, b1));
  }
}
}  // namespace

// Per column block (32 columns): the k range runs in chunks of kKChunk steps; within a chunk
// the block's B tiles (16 KiB) stay in L1 while every 32-row block of A passes, its four
// 16x16 accumulator tiles parked in `acc` between chunks. C tiles 0-3, A tiles 4-5, B 6-7;
// every tile load reads 1 KiB of contiguous memory.
__attribute__((target("amx-tile,amx-int8"))) void GemmBlocksAmx(
    const int8_t* a8, int64_t mp, const AmxWeights& w, int64_t nb_begin, int64_t nb_end,
    const AmxGemmOut& out) {
  AmxTileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
  const int64_t kt_count = w.kp / kAmxK;
  std::vector<int32_t> acc_buf(static_cast<size_t>(mp * kAmxBlock) + 16);
  int32_t* acc = reinterpret_cast<int32_t*>((reinterpret_cast<uintptr_t>(acc_buf.data()) + 63) & ~uintptr_t{63});
  constexpr int64_t kStride = 4 * kAmxBlock;  // bytes per accumulator row
  for (int64_t nb = nb_begin; nb < nb_end; ++nb) {
    const int64_t n0 = nb * kAmxBlock;
    const int8_t* b0 = w.tiles() + (n0 / 16) * kt_count * 1024;
    const int8_t* b1 = b0 + kt_count * 1024;
    for (int64_t k0 = 0; k0 < kt_count; k0 += kKChunk) {
      const int64_t k1 = k0 + kKChunk < kt_count ? k0 + kKChunk : kt_count;
      for (int64_t m0 = 0; m0 < mp; m0 += kAmxBlock) {
        int32_t* c = acc + m0 * kAmxBlock;
        if (k0 == 0) {
          _tile_zero(0);
          _tile_zero(1);
          _tile_zero(2);
          _tile_zero(3);
        } else {
          _tile_loadd(0, c, kStride);
          _tile_loadd(1, c + 16, kStride);
          _tile_loadd(2, c + 16 * kAmxBlock, kStride);
          _tile_loadd(3, c + 16 * kAmxBlock + 16, kStride);
        }
        const int8_t* a0 = a8 + (m0 / 16) * kt_count * 1024;
        const int8_t* a1 = a0 + kt_count * 1024;
        for (int64_t kt = k0; kt < k1; ++kt) {
          _tile_loadd(4, a0 + kt * 1024, 64);
          _tile_loadd(5, a1 + kt * 1024, 64);
          _tile_loadd(6, b0 + kt * 1024, 64);
          _tile_loadd(7, b1 + kt * 1024, 64);
          _tile_dpbssd(0, 4, 6);
          _tile_dpbssd(1, 4, 7);
          _tile_dpbssd(2, 5, 6);
          _tile_dpbssd(3, 5, 7);
        }
        _tile_stored(0, c, kStride);
        _tile_stored(1, c + 16, kStride);
        _tile_stored(2, c + 16 * kAmxBlock, kStride);
        _tile_stored(3, c + 16 * kAmxBlock + 16, kStride);
      }
    }
    const int64_t nn = out.n - n0 < kAmxBlock ? out.n - n0 : kAmxBlock;
    Affine32(acc, out.m, n0, nn, out);
  }
  _tile_release();
}

}  // namespace steport::binary
