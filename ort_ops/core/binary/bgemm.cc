// Portable binary primitives (no SIMD flags; the compiler's popcount).
#include "core/binary/bgemm.h"

#include "core/binary/generic_inl.h"

namespace steport::binary {

void PackSignRows(const float* src, int64_t rows, int64_t k, int64_t ld, uint64_t* dst,
                  int64_t kw) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    uint64_t* d = dst + r * kw;
    for (int64_t w = 0; w < kw; ++w) {
      const int64_t c0 = w * 64;
      const int64_t n = k - c0 < 64 ? k - c0 : 64;
      uint64_t word = 0;
      for (int64_t b = 0; b < n; ++b) word |= uint64_t(s[c0 + b] >= 0.0f) << b;
      d[w] = word;
    }
  }
}

void PackChannelsPortable(const float* src, int64_t cstride, int64_t c, int64_t npx,
                          uint64_t* dst, int64_t dstride) {
  PackChannelsGeneric(src, cstride, c, npx, dst, dstride);
}

void XorPopPortable(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* b, int64_t ldb,
                    int64_t n, int64_t kw, int32_t* out, int64_t ldo) {
  for (int64_t i = 0; i < m; ++i) {
    const uint64_t* ai = a + i * lda;
    for (int64_t j = 0; j < n; ++j) {
      const uint64_t* bj = b + j * ldb;
      int64_t s = 0;
      for (int64_t w = 0; w < kw; ++w) s += __builtin_popcountll(ai[w] ^ bj[w]);
      out[i * ldo + j] = static_cast<int32_t>(s);
    }
  }
}

void XorPopTPortable(const uint64_t* a, int64_t lda, int64_t m, const uint64_t* bt,
                     int64_t ldb, int64_t n, int64_t kw, int32_t* out, int64_t ldo) {
  for (int64_t i = 0; i < m; ++i) {
    int32_t* o = out + i * ldo;
    for (int64_t j = 0; j < n; ++j) o[j] = 0;
    for (int64_t w = 0; w < kw; ++w) {
      const uint64_t aw = a[i * lda + w];
      const uint64_t* b = bt + w * ldb;
      for (int64_t j = 0; j < n; ++j) o[j] += __builtin_popcountll(aw ^ b[j]);
    }
  }
}

void ConvOutPortable(const int32_t* pop, int64_t n, int32_t base, float sc, float bi,
                     float* y) {
  ConvOutGeneric(pop, n, base, sc, bi, y);
}

AmxWeights PrepareAmxWeights(const uint64_t* b, int64_t n, int64_t k) {
  AmxWeights w;
  const int64_t kw = (k + 63) / 64;
  w.n = n;
  w.np = (n + kAmxBlock - 1) / kAmxBlock * kAmxBlock;
  w.kp = (k + kAmxK - 1) / kAmxK * kAmxK;
  w.storage.assign(static_cast<size_t>(w.kp * w.np + 64), 0);
  int8_t* bq = const_cast<int8_t*>(w.tiles());
  const int64_t kt_count = w.kp / kAmxK;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t kk = 0; kk < k; ++kk) {
      const bool bit = (b[j * kw + kk / 64] >> (kk % 64)) & 1;
      const int64_t tile = (j / 16) * kt_count + kk / kAmxK;
      bq[tile * 1024 + ((kk % kAmxK) / 4) * 64 + 4 * (j % 16) + kk % 4] = bit ? 1 : -1;
    }
  return w;
}

Kernels SelectKernels(Isa isa) {
#if defined(STEPORT_X86)
  if (isa == Isa::kAvx512 && DetectCpu().avx512vpopcntdq)
    return {PackSignRowsAvx512, PackChannelsAvx512, XorPopAvx512, XorPopTAvx512, ConvOutAvx512};
  if (isa == Isa::kAvx512 || isa == Isa::kAvx2)
    return {PackSignRowsAvx2, PackChannelsAvx2, XorPopAvx2, XorPopTAvx2, ConvOutAvx2};
#endif
  (void)isa;
  return {PackSignRows, PackChannelsPortable, XorPopPortable, XorPopTPortable, ConvOutPortable};
}

}  // namespace steport::binary
