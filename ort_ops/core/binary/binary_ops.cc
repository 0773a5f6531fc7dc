#include "core/binary/binary_ops.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace steport::binary {
namespace {

// y = float(dot) * scale + bias: two roundings, in this order (-ffp-contract=off).
inline float Affine(int64_t dot, float s, float b) {
  float v = static_cast<float>(dot) * s;
  return v + b;
}

constexpr int64_t kGemmRows = 16;   // rows of packed A per work item
constexpr int64_t kGemmCols = 64;   // weight rows per work item (64 x KW words in cache)
constexpr int64_t kConvPixels = 64; // output pixels per conv work item

}  // namespace

void RunGemm(const GemmProblem& p, XorPopFn pop, const ParFor& par) {
  const int64_t kwords = (p.k + 63) / 64;
  const uint64_t tail = ~LastWordMask(p.k);
  std::vector<uint64_t> ap(static_cast<size_t>(p.m * kwords));
  par(p.m, std::max<int64_t>(1, 4096 / std::max<int64_t>(p.k, 1)), [&](int64_t b, int64_t e) {
    PackSignRows(p.a + b * p.k, e - b, p.k, p.k, ap.data() + b * kwords, kwords);
  });
  // A's tail bits are 0, so popcount(a ^ b) counts B's stray tail bits: subtract them.
  std::vector<int32_t> tailpop(static_cast<size_t>(p.n));
  for (int64_t j = 0; j < p.n; ++j)
    tailpop[j] = __builtin_popcountll(p.b[j * kwords + kwords - 1] & tail);
  const int64_t mb = (p.m + kGemmRows - 1) / kGemmRows, nb = (p.n + kGemmCols - 1) / kGemmCols;
  par(mb * nb, 1, [&](int64_t b, int64_t e) {
    std::vector<int32_t> acc(kGemmRows * kGemmCols);
    for (int64_t t = b; t < e; ++t) {
      const int64_t n0 = (t % nb) * kGemmCols, m0 = (t / nb) * kGemmRows;
      const int64_t nn = std::min(kGemmCols, p.n - n0), mm = std::min(kGemmRows, p.m - m0);
      pop(ap.data() + m0 * kwords, kwords, mm, p.b + n0 * kwords, kwords, nn, kwords,
          acc.data(), kGemmCols);
      for (int64_t i = 0; i < mm; ++i) {
        float* yr = p.y + (m0 + i) * p.n + n0;
        for (int64_t j = 0; j < nn; ++j) {
          const int64_t pc = acc[i * kGemmCols + j] - tailpop[n0 + j];
          yr[j] = Affine(p.k - 2 * pc, p.scale[n0 + j], p.bias[n0 + j]);
        }
      }
    }
  });
}

void RunConv(const ConvProblem& p, XorPopFn pop, const ParFor& par) {
  const int64_t cg = p.c / p.group, cog = p.co / p.group, cw = (cg + 63) / 64;
  const int64_t taps = p.kh * p.kw, rowlen = taps * cw, ktrue = taps * cg;
  const uint64_t valid = LastWordMask(cg);
  // 1) Activations, packed once: bits [n, group, h, w, cw], channels of a group per pixel.
  std::vector<uint64_t> xp(static_cast<size_t>(p.n * p.group * p.h * p.w * cw), 0);
  par(p.n * p.group * p.h, std::max<int64_t>(1, 65536 / std::max<int64_t>(p.w * cg, 1)),
      [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t y = r % p.h, ng = r / p.h;  // ng = n * group + g
      uint64_t* dst = xp.data() + (ng * p.h + y) * p.w * cw;
      for (int64_t c = 0; c < cg; ++c) {
        const float* src = p.x + ((ng * cg + c) * p.h + y) * p.w;  // channel ng*cg + c
        const uint64_t bit = uint64_t{1} << (c % 64);
        uint64_t* d = dst + c / 64;
        for (int64_t x = 0; x < p.w; ++x)
          if (src[x] >= 0.0f) d[x * cw] |= bit;
      }
    }
  });
  // 2) Per (co, tap): stray tail bits of W, and S = sum of sign(w) over the tap's channels
  //    (a zero-padded tap contributes 0 instead of the -S that all-zero bits give).
  std::vector<int32_t> tailpop(static_cast<size_t>(p.co), 0), tapsum(static_cast<size_t>(p.co * taps));
  for (int64_t o = 0; o < p.co; ++o)
    for (int64_t t = 0; t < taps; ++t) {
      const uint64_t* wt = p.wt + (o * taps + t) * cw;
      int32_t ones = 0;
      for (int64_t w = 0; w < cw; ++w) ones += __builtin_popcountll(w + 1 == cw ? wt[w] & valid : wt[w]);
      tailpop[o] += __builtin_popcountll(wt[cw - 1] & ~valid);
      tapsum[o * taps + t] = 2 * ones - static_cast<int32_t>(cg);
    }
  // 3) Per (image, group, pixel chunk): bit im2col rows [pixels, taps * cw], then tiles.
  const int64_t npix = p.oh * p.ow, chunks = (npix + kConvPixels - 1) / kConvPixels;
  par(p.n * p.group * chunks, 1, [&](int64_t b, int64_t e) {
    std::vector<uint64_t> col(static_cast<size_t>(kConvPixels * rowlen));
    std::vector<int32_t> acc(static_cast<size_t>(cog * kConvPixels));
    std::vector<std::pair<int32_t, int32_t>> pads;
    for (int64_t t = b; t < e; ++t) {
      const int64_t ch = t % chunks, ng = t / chunks, g = ng % p.group, img = ng / p.group;
      const int64_t p0 = ch * kConvPixels, np = std::min(kConvPixels, npix - p0);
      const uint64_t* src = xp.data() + ng * p.h * p.w * cw;
      pads.clear();  // (pixel, tap) pairs that fall in the padding
      for (int64_t q = 0; q < np; ++q) {
        const int64_t oy = (p0 + q) / p.ow, ox = (p0 + q) % p.ow;
        uint64_t* row = col.data() + q * rowlen;
        for (int64_t ky = 0; ky < p.kh; ++ky) {
          const int64_t iy = oy * p.stride_h - p.pad_t + ky * p.dil_h;
          for (int64_t kx = 0; kx < p.kw; ++kx) {
            const int64_t ix = ox * p.stride_w - p.pad_l + kx * p.dil_w;
            uint64_t* d = row + (ky * p.kw + kx) * cw;
            const bool in = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
            if (in) {
              const uint64_t* s = src + (iy * p.w + ix) * cw;
              for (int64_t w = 0; w < cw; ++w) d[w] = s[w];
            } else {
              if (p.pad_value == 0) pads.push_back({q, ky * p.kw + kx});
              for (int64_t w = 0; w < cw; ++w)
                d[w] = p.pad_value > 0 ? (w + 1 == cw ? valid : ~uint64_t{0}) : 0;
            }
          }
        }
      }
      const uint64_t* wg = p.wt + g * cog * rowlen;
      pop(wg, rowlen, cog, col.data(), rowlen, np, rowlen, acc.data(), kConvPixels);
      // dot in place, then the zero-padding correction (border pixels only), then affine.
      for (int64_t o = 0; o < cog; ++o) {
        const int64_t oc = g * cog + o;
        int32_t* ar = acc.data() + o * kConvPixels;
        const int32_t base = static_cast<int32_t>(ktrue + 2 * int64_t{tailpop[oc]});
        for (int64_t q = 0; q < np; ++q) ar[q] = base - 2 * ar[q];
        const int32_t* ts = tapsum.data() + oc * taps;
        for (const auto& pt : pads) ar[pt.first] += ts[pt.second];
        float* yr = p.y + (img * p.co + oc) * npix + p0;
        const float sc = p.scale[oc], bi = p.bias[oc];
        for (int64_t q = 0; q < np; ++q) yr[q] = Affine(ar[q], sc, bi);
      }
    }
  });
}

}  // namespace steport::binary
