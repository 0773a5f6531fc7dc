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

constexpr int64_t kGemmRows = 16;    // row-major path: rows of packed A per work item
constexpr int64_t kGemmCols = 64;    // weight rows per work item (64 x KW words in cache)
constexpr int64_t kGemmTRows = 32;   // transposed path: A rows (vector columns) per work item
constexpr int64_t kGemmTMinRows = 8; // transposed path from this many rows of A on
static_assert(kGemmTRows % kColVec == 0, "transposed blocks hold whole column vectors");
constexpr int64_t kConvPixels = 64;  // max output pixels per conv work item (multiple of 8)
constexpr int64_t kConvMinCo = 32;   // min output channels per conv work item when split
static_assert(kConvPixels % kColVec == 0, "conv chunks hold whole column vectors");
constexpr int64_t kPackPixels = 512; // pixels per activation-packing work item

void GemmEpilogue(const GemmProblem& p, const std::vector<int32_t>& tailpop, int64_t m0,
                  int64_t mm, int64_t n0, int64_t nn, const int32_t* acc, int64_t si,
                  int64_t sj) {
  for (int64_t i = 0; i < mm; ++i) {
    float* yr = p.y + (m0 + i) * p.n + n0;
    for (int64_t j = 0; j < nn; ++j) {
      const int64_t pc = acc[i * si + j * sj] - tailpop[n0 + j];
      yr[j] = Affine(p.k - 2 * pc, p.scale[n0 + j], p.bias[n0 + j]);
    }
  }
}

// Zero padding: which taps of an output row (or column) fall in the padding. Rows sharing the
// same out-of-range tap set form one class; a pixel's padded taps are (row class x all kx) or
// (all ky x col class), so the correction depends only on its (row class, col class).
struct PadClasses {
  std::vector<int32_t> id;               // per output row / column
  std::vector<std::vector<char>> masks;  // per class: tap index out of range
  std::vector<char> any;                 // per class: some tap out of range
};

PadClasses ClassifyPads(int64_t nout, int64_t k, int64_t stride, int64_t pad, int64_t dil,
                        int64_t size) {
  PadClasses pc;
  pc.id.resize(static_cast<size_t>(nout));
  std::vector<char> m(static_cast<size_t>(k));
  for (int64_t o = 0; o < nout; ++o) {
    bool any = false;
    for (int64_t t = 0; t < k; ++t) {
      const int64_t i = o * stride - pad + t * dil;
      m[t] = i < 0 || i >= size;
      any = any || m[t];
    }
    size_t c = 0;
    while (c < pc.masks.size() && pc.masks[c] != m) ++c;
    if (c == pc.masks.size()) {
      pc.masks.push_back(m);
      pc.any.push_back(any);
    }
    pc.id[o] = static_cast<int32_t>(c);
  }
  return pc;
}

constexpr size_t kMaxPadPatterns = 256;  // else per-(pixel, tap) corrections

#if defined(STEPORT_X86)
// The AMX path reads weights as bytes (8x the packed bits): it wins once enough rows share
// each weight byte. Measured (1 thread): 32x1024x1024 1.6x faster, 256x4096x1024 1.2-1.4x,
// 64x4096x1024 even, 16-32 rows with 4 MiB of weight bytes 1.5-2.3x slower.
bool AmxPays(int64_t m, const AmxWeights& w) {
  return m >= 128 || (m >= 32 && w.np * w.kp <= (int64_t{1} << 20));
}

// Batched GEMM on AMX tiles: A as +-1 bytes, 32-column weight blocks spread over the pool.
void RunGemmAmx(const GemmProblem& p, const ParFor& par) {
  const AmxWeights& w = *p.amx;
  const int64_t mp = (p.m + kAmxBlock - 1) / kAmxBlock * kAmxBlock;
  std::vector<int8_t> a8_storage(static_cast<size_t>(mp * w.kp + 64));
  int8_t* a8 = const_cast<int8_t*>(AmxWeights::Align64(a8_storage.data()));  // whole tiles per line
  const int64_t mb = mp / kAmxBlock;
  par(mb, 1, [&](int64_t b, int64_t e) {
    const int64_t r0 = b * kAmxBlock, r1 = std::min(p.m, e * kAmxBlock);
    PackSignTilesAvx512(p.a + r0 * p.k, std::max<int64_t>(0, r1 - r0), (e - b) * kAmxBlock, p.k,
                        p.k, a8 + r0 * w.kp, w.kp);
  });
  // The dot product is k - 2 * popcount(a ^ b) already: the epilogue is the affine map.
  const AmxGemmOut out{p.scale, p.bias, p.y, p.m, p.n};
  par(w.np / kAmxBlock, 1, [&](int64_t b, int64_t e) {
    GemmBlocksAmx(a8, mp, w, b, e, out);
  });
}
#endif

}  // namespace

void RunGemm(const GemmProblem& p, const Kernels& kern, const ParFor& par) {
#if defined(STEPORT_X86)
  if (p.amx && AmxPays(p.m, *p.amx)) return RunGemmAmx(p, par);
#endif
  const int64_t kwords = (p.k + 63) / 64;
  const uint64_t tail = ~LastWordMask(p.k);
  std::vector<uint64_t> ap(static_cast<size_t>(p.m * kwords));
  par(p.m, std::max<int64_t>(1, 4096 / std::max<int64_t>(p.k, 1)), [&](int64_t b, int64_t e) {
    kern.pack_rows(p.a + b * p.k, e - b, p.k, p.k, ap.data() + b * kwords, kwords);
  });
  // A's tail bits are 0, so popcount(a ^ b) counts B's stray tail bits: subtract them.
  std::vector<int32_t> tailpop(static_cast<size_t>(p.n));
  for (int64_t j = 0; j < p.n; ++j)
    tailpop[j] = __builtin_popcountll(p.b[j * kwords + kwords - 1] & tail);
  const int64_t nb = (p.n + kGemmCols - 1) / kGemmCols;
  if (p.m < kGemmTMinRows) {  // thin: row-major tiles with horizontal sums
    const int64_t mb = (p.m + kGemmRows - 1) / kGemmRows;
    par(mb * nb, 1, [&](int64_t b, int64_t e) {
      std::vector<int32_t> acc(kGemmRows * kGemmCols);
      for (int64_t t = b; t < e; ++t) {
        const int64_t n0 = (t % nb) * kGemmCols, m0 = (t / nb) * kGemmRows;
        const int64_t nn = std::min(kGemmCols, p.n - n0), mm = std::min(kGemmRows, p.m - m0);
        kern.pop(ap.data() + m0 * kwords, kwords, mm, p.b + n0 * kwords, kwords, nn, kwords,
                 acc.data(), kGemmCols);
        GemmEpilogue(p, tailpop, m0, mm, n0, nn, acc.data(), kGemmCols, 1);
      }
    });
    return;
  }
  // Batched: A transposed to [word][row] so each weight word meets 8 rows per vector op;
  // the kernel sees weights as its rows and rows of A as its columns (out is [n][m]).
  // Blocked by kGemmTRows rows so a work item's slice is contiguous (a long row stride
  // would alias in the L1 sets): at[(blk * kwords + w) * kGemmTRows + i].
  const int64_t mb = (p.m + kGemmTRows - 1) / kGemmTRows;
  std::vector<uint64_t> at(static_cast<size_t>(mb * kwords * kGemmTRows), 0);
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t w = 0; w < kwords; ++w)
      at[((i / kGemmTRows) * kwords + w) * kGemmTRows + i % kGemmTRows] = ap[i * kwords + w];
  par(mb * nb, 1, [&](int64_t b, int64_t e) {
    std::vector<int32_t> acc(kGemmCols * kGemmTRows);
    for (int64_t t = b; t < e; ++t) {
      const int64_t n0 = (t % nb) * kGemmCols, m0 = (t / nb) * kGemmTRows;
      const int64_t nn = std::min(kGemmCols, p.n - n0), mm = std::min(kGemmTRows, p.m - m0);
      // kGemmTRows is a multiple of 8, so columns up to RoundUpCols(mm) stay in the block.
      kern.popt(p.b + n0 * kwords, kwords, nn, at.data() + (t / nb) * kwords * kGemmTRows,
                kGemmTRows, mm, kwords, acc.data(), kGemmTRows);
      GemmEpilogue(p, tailpop, m0, mm, n0, nn, acc.data(), 1, kGemmTRows);
    }
  });
}

void RunConv(const ConvProblem& p, const Kernels& kern, const ParFor& par) {
  const int64_t cg = p.c / p.group, cog = p.co / p.group, cw = (cg + 63) / 64;
  const int64_t taps = p.kh * p.kw, rowlen = taps * cw, ktrue = taps * cg;
  const int64_t hw = p.h * p.w;
  const uint64_t valid = LastWordMask(cg);
  // 1) Activations, packed once into word planes: bits [n, group, cw, h, w] (word w of a
  //    pixel holds channels 64w..64w+63 of its group), so a row of pixels is contiguous.
  std::vector<uint64_t> xp(static_cast<size_t>(p.n * p.group * cw * hw));
  const int64_t pblocks = (hw + kPackPixels - 1) / kPackPixels;
  par(p.n * p.group * pblocks, std::max<int64_t>(1, 65536 / std::max<int64_t>(kPackPixels * cg, 1)),
      [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t ng = r / pblocks, x0 = (r % pblocks) * kPackPixels;
      kern.pack_channels(p.x + ng * cg * hw + x0, hw, cg, std::min(kPackPixels, hw - x0),
                         xp.data() + ng * cw * hw + x0, hw);
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
  // 2b) Zero padding: correction per (co, row class, col class) when the classes are few.
  PadClasses rows, cols;
  std::vector<int32_t> padcorr;
  bool table = false;
  if (p.pad_value == 0) {
    rows = ClassifyPads(p.oh, p.kh, p.stride_h, p.pad_t, p.dil_h, p.h);
    cols = ClassifyPads(p.ow, p.kw, p.stride_w, p.pad_l, p.dil_w, p.w);
    table = rows.masks.size() * cols.masks.size() <= kMaxPadPatterns;
  }
  const int64_t ncc = static_cast<int64_t>(cols.masks.size());
  const int64_t npat = static_cast<int64_t>(rows.masks.size()) * ncc;
  if (table) {
    padcorr.assign(static_cast<size_t>(p.co * npat), 0);
    for (int64_t o = 0; o < p.co; ++o)
      for (int64_t r = 0; r < static_cast<int64_t>(rows.masks.size()); ++r)
        for (int64_t c = 0; c < ncc; ++c) {
          int32_t corr = 0;
          for (int64_t ky = 0; ky < p.kh; ++ky)
            for (int64_t kx = 0; kx < p.kw; ++kx)
              if (rows.masks[r][ky] || cols.masks[c][kx]) corr += tapsum[o * taps + ky * p.kw + kx];
          padcorr[o * npat + r * ncc + c] = corr;
        }
  }
  // 3) Work items: (image, group, pixel chunk, output-channel block). Chunks are balanced
  //    (multiples of 8 pixels, at most kConvPixels); output channels are split only when
  //    there are too few chunks to keep the threads busy.
  const int64_t npix = p.oh * p.ow;
  const int64_t chunks = (npix + kConvPixels - 1) / kConvPixels;
  const int64_t pchunk = RoundUpCols((npix + chunks - 1) / chunks);
  const int64_t nchunks = (npix + pchunk - 1) / pchunk;
  const int64_t items = p.n * p.group * nchunks;
  const int64_t oblocks = std::max<int64_t>(1, std::min((16 + items - 1) / items, cog / kConvMinCo));
  const int64_t cob = (cog + oblocks - 1) / oblocks;
  const uint64_t padword = p.pad_value > 0 ? ~uint64_t{0} : 0;
  par(items * oblocks, 1, [&](int64_t b, int64_t e) {
    // Bit im2col, transposed: col[(tap * cw + w) * kConvPixels + q] (pixels contiguous).
    std::vector<uint64_t> col(static_cast<size_t>(rowlen * kConvPixels), 0);
    std::vector<int32_t> acc(static_cast<size_t>(cob * kConvPixels));
    std::vector<std::pair<int32_t, int32_t>> pads;
    for (int64_t t = b; t < e; ++t) {
      const int64_t ob = t % oblocks, it = t / oblocks;
      const int64_t ch = it % nchunks, ng = it / nchunks, g = ng % p.group, img = ng / p.group;
      const int64_t p0 = ch * pchunk, np = std::min(pchunk, npix - p0);
      const int64_t o0 = ob * cob, no = std::min(cob, cog - o0);
      if (no <= 0) continue;
      const uint64_t* src = xp.data() + ng * cw * hw;
      // Zero padding: (pixel, pattern) pairs with the table, else (pixel, tap) pairs.
      pads.clear();
      if (table)
        for (int64_t q = 0; q < np; ++q) {
          const int32_t r = rows.id[(p0 + q) / p.ow], c = cols.id[(p0 + q) % p.ow];
          if (rows.any[r] || cols.any[c]) pads.push_back({int32_t(q), int32_t(r * ncc + c)});
        }
      // One output row segment [q0, q0 + len) at a time: contiguous copies per tap and word.
      for (int64_t q0 = 0; q0 < np;) {
        const int64_t oy = (p0 + q0) / p.ow, ox0 = (p0 + q0) % p.ow;
        const int64_t len = std::min(np - q0, p.ow - ox0);
        for (int64_t ky = 0; ky < p.kh; ++ky) {
          const int64_t iy = oy * p.stride_h - p.pad_t + ky * p.dil_h;
          const bool rowin = iy >= 0 && iy < p.h;
          for (int64_t kx = 0; kx < p.kw; ++kx) {
            const int64_t tap = ky * p.kw + kx, off = kx * p.dil_w - p.pad_l;
            // Pixels ox with 0 <= ox * sw + off < W form [lo, hi) (relative to ox0).
            int64_t lo = len, hi = len;
            if (rowin) {
              const int64_t sw = p.stride_w;
              const int64_t lo_abs = off >= 0 ? 0 : (-off + sw - 1) / sw;
              const int64_t hi_abs = p.w - off <= 0 ? 0 : (p.w - off + sw - 1) / sw;
              lo = std::clamp<int64_t>(lo_abs - ox0, 0, len);
              hi = std::clamp<int64_t>(hi_abs - ox0, lo, len);
            }
            for (int64_t w = 0; w < cw; ++w) {
              uint64_t* d = col.data() + (tap * cw + w) * kConvPixels + q0;
              const uint64_t pw = w + 1 == cw ? padword & valid : padword;
              for (int64_t q = 0; q < lo; ++q) d[q] = pw;
              if (hi > lo) {
                const uint64_t* s = src + w * hw + iy * p.w + (ox0 + lo) * p.stride_w + off;
                if (p.stride_w == 1) {
                  for (int64_t q = lo; q < hi; ++q) d[q] = s[q - lo];
                } else {
                  for (int64_t q = lo; q < hi; ++q) d[q] = s[(q - lo) * p.stride_w];
                }
              }
              for (int64_t q = hi; q < len; ++q) d[q] = pw;
            }
            if (p.pad_value == 0 && !table) {
              for (int64_t q = 0; q < lo; ++q) pads.push_back({int32_t(q0 + q), int32_t(tap)});
              for (int64_t q = hi; q < len; ++q) pads.push_back({int32_t(q0 + q), int32_t(tap)});
            }
          }
        }
        q0 += len;
      }
      const uint64_t* wg = p.wt + (g * cog + o0) * rowlen;
      kern.popt(wg, rowlen, no, col.data(), kConvPixels, np, rowlen, acc.data(), kConvPixels);
      if (!table) std::sort(pads.begin(), pads.end());  // group the taps by pixel
      // Epilogue per output channel (vectorized), then border pixels redone with the
      // zero-padding correction.
      for (int64_t o = 0; o < no; ++o) {
        const int64_t oc = g * cog + o0 + o;
        const int32_t* ar = acc.data() + o * kConvPixels;
        const int32_t base = static_cast<int32_t>(ktrue + 2 * int64_t{tailpop[oc]});
        float* yr = p.y + (img * p.co + oc) * npix + p0;
        const float sc = p.scale[oc], bi = p.bias[oc];
        kern.conv_out(ar, np, base, sc, bi, yr);
        if (table) {
          const int32_t* pcr = padcorr.data() + oc * npat;
          for (const auto& pt : pads)
            yr[pt.first] = Affine(base - 2 * ar[pt.first] + pcr[pt.second], sc, bi);
          continue;
        }
        const int32_t* ts = tapsum.data() + oc * taps;
        for (size_t i = 0; i < pads.size();) {
          const int32_t q = pads[i].first;
          int32_t corr = 0;
          for (; i < pads.size() && pads[i].first == q; ++i) corr += ts[pads[i].second];
          yr[q] = Affine(base - 2 * ar[q] + corr, sc, bi);
        }
      }
    }
  });
}

}  // namespace steport::binary
