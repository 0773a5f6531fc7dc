// Plain-C++ loops shared by the portable and AVX2 builds (the compiler vectorizes the inner
// loops with whatever the translation unit is compiled for). Internal linkage (anonymous
// namespace) so each translation unit keeps its own copy: with `inline` alone the linker
// would keep only the first (portable) one for both builds.
#pragma once
#include <algorithm>
#include <cstdint>

namespace steport::binary {
namespace {

inline void PackChannelsGeneric(const float* src, int64_t cstride, int64_t c, int64_t npx,
                                uint64_t* dst, int64_t dstride) {
  for (int64_t w = 0; w * 64 < c; ++w) {
    uint64_t* __restrict d = dst + w * dstride;
    for (int64_t x = 0; x < npx; ++x) d[x] = 0;
    const int64_t nb = std::min<int64_t>(64, c - w * 64);
    for (int64_t b = 0; b < nb; ++b) {
      const float* __restrict s = src + (w * 64 + b) * cstride;
      const uint64_t bit = uint64_t{1} << b;
      for (int64_t x = 0; x < npx; ++x) d[x] |= s[x] >= 0.0f ? bit : 0;
    }
  }
}

inline void ConvOutGeneric(const int32_t* pop, int64_t n, int32_t base, float sc, float bi,
                           float* y) {
  for (int64_t q = 0; q < n; ++q) {
    const float v = static_cast<float>(base - 2 * pop[q]) * sc;  // two roundings, no FMA
    y[q] = v + bi;
  }
}

}  // namespace
}  // namespace steport::binary
