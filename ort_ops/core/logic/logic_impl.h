// The packed forward pass, templated on W (words per unit per block). Included by one
// translation unit per ISA, compiled with that ISA's flags: the fixed-W inner loops over
// words become AVX2 / AVX-512 vector bit ops there (and scalar code in the portable TU).
#pragma once
#include <cstring>
#include <utility>
#include <vector>

#include "logic.h"

namespace steport::logic::impl {

// The 16 gates as word-wide bit ops (id convention: bit 3 = f(0,0) ... bit 0 = f(1,1)).
template <int G>
inline uint64_t Gate(uint64_t a, uint64_t b) {
  if constexpr (G == 0) return 0;
  if constexpr (G == 1) return a & b;
  if constexpr (G == 2) return a & ~b;
  if constexpr (G == 3) return a;
  if constexpr (G == 4) return ~a & b;
  if constexpr (G == 5) return b;
  if constexpr (G == 6) return a ^ b;
  if constexpr (G == 7) return a | b;
  if constexpr (G == 8) return ~(a | b);
  if constexpr (G == 9) return ~(a ^ b);
  if constexpr (G == 10) return ~b;
  if constexpr (G == 11) return a | ~b;
  if constexpr (G == 12) return ~a;
  if constexpr (G == 13) return ~a | b;
  if constexpr (G == 14) return ~(a & b);
  if constexpr (G == 15) return ~uint64_t{0};
}

template <int G, int W>
void RunGroup(const uint64_t* __restrict in, uint64_t* __restrict out, const int32_t* a,
              const int32_t* b, const int32_t* d, int64_t count) {
  for (int64_t j = 0; j < count; ++j) {
    const uint64_t* pa = in + int64_t(a[j]) * W;
    const uint64_t* pb = in + int64_t(b[j]) * W;
    uint64_t* po = out + int64_t(d[j]) * W;
    for (int w = 0; w < W; ++w) po[w] = Gate<G>(pa[w], pb[w]);
  }
}

template <int W, size_t... G>
void RunLayer(const LayerPlan& l, const uint64_t* in, uint64_t* out, std::index_sequence<G...>) {
  ((l.start[G + 1] > l.start[G]
        ? RunGroup<G, W>(in, out, l.a.data() + l.start[G], l.b.data() + l.start[G],
                         l.dst.data() + l.start[G], l.start[G + 1] - l.start[G])
        : void()),
   ...);
}

// Packs rows [r0, r0 + rows) of x into words[f * W + w] (zero-padded past the last row).
// First into a [w][f] scratch, contiguous in f so the per-row loop vectorizes, then
// interleaved into the [f][w] layout the gates read.
template <int W>
void Pack(const float* x, int64_t n_in, int64_t r0, int64_t rows, uint64_t* words,
          std::vector<uint64_t>& scratch) {
  scratch.assign(size_t(n_in) * W, 0);
  uint64_t* tmp = scratch.data();
  for (int64_t s = 0; s < rows; ++s) {
    const float* row = x + (r0 + s) * n_in;
    uint64_t* col = tmp + (s >> 6) * n_in;
    const int sh = int(s & 63);
    for (int64_t f = 0; f < n_in; ++f) col[f] |= uint64_t(row[f] != 0.0f) << sh;
  }
  for (int64_t f = 0; f < n_in; ++f)
    for (int w = 0; w < W; ++w) words[f * W + w] = tmp[w * n_in + f];
}

// GroupSum on packed words: per class, a bit-sliced counter (planes[p][w] = bit p of the
// count of every sample) fed by a carry-save full adder two units at a time.
template <int W>
void GroupSum(const uint64_t* words, int64_t width, int64_t k, float tau, int64_t rows,
              float* y, std::vector<uint64_t>& planes_buf) {
  const int64_t g = width / k;
  int nplanes = 1;
  while ((int64_t{1} << nplanes) <= g) ++nplanes;
  planes_buf.assign(size_t(nplanes) * W, 0);
  uint64_t* planes = planes_buf.data();
  for (int64_t c = 0; c < k; ++c) {
    std::memset(planes, 0, sizeof(uint64_t) * nplanes * W);
    const uint64_t* grp = words + c * g * W;
    int64_t u = 0;
    for (; u + 2 <= g; u += 2) {
      for (int w = 0; w < W; ++w) {
        const uint64_t x1 = grp[u * W + w], x2 = grp[(u + 1) * W + w], p0 = planes[w];
        const uint64_t t = p0 ^ x1;
        planes[w] = t ^ x2;
        uint64_t carry = (p0 & x1) | (t & x2);  // weight-2 carry of p0 + x1 + x2
        for (int p = 1; p < nplanes; ++p) {
          const uint64_t q = planes[p * W + w];
          planes[p * W + w] = q ^ carry;
          carry &= q;
        }
      }
    }
    if (u < g) {
      for (int w = 0; w < W; ++w) {
        uint64_t carry = grp[u * W + w];
        for (int p = 0; p < nplanes; ++p) {
          const uint64_t q = planes[p * W + w];
          planes[p * W + w] = q ^ carry;
          carry &= q;
        }
      }
    }
    for (int64_t s = 0; s < rows; ++s) {
      const int w = int(s >> 6), sh = int(s & 63);
      int64_t count = 0;
      for (int p = 0; p < nplanes; ++p) count |= int64_t((planes[p * W + w] >> sh) & 1) << p;
      y[s * k + c] = static_cast<float>(count) / tau;
    }
  }
}

template <int W>
void Forward(const NetPlan& plan, const float* x, int64_t n, int64_t block_begin,
             int64_t block_end, float* y) {
  constexpr int64_t kBlock = 64 * W;
  std::vector<uint64_t> buf0(size_t(plan.max_width) * W), buf1(size_t(plan.max_width) * W);
  std::vector<uint64_t> planes, scratch;
  for (int64_t blk = block_begin; blk < block_end; ++blk) {
    const int64_t r0 = blk * kBlock;
    const int64_t rows = n - r0 < kBlock ? n - r0 : kBlock;
    uint64_t* cur = buf0.data();
    uint64_t* nxt = buf1.data();
    Pack<W>(x, plan.n_in, r0, rows, cur, scratch);
    for (const LayerPlan& l : plan.layers) {
      RunLayer<W>(l, cur, nxt, std::make_index_sequence<16>{});
      std::swap(cur, nxt);
    }
    const int64_t width = plan.layers.back().out_width;
    if (plan.num_classes > 0) {
      GroupSum<W>(cur, width, plan.num_classes, plan.tau, rows, y + r0 * plan.num_classes,
                  planes);
    } else {
      for (int64_t s = 0; s < rows; ++s) {
        float* yr = y + (r0 + s) * width;
        const int w = int(s >> 6), sh = int(s & 63);
        for (int64_t j = 0; j < width; ++j) yr[j] = float((cur[j * W + w] >> sh) & 1);
      }
    }
  }
}

}  // namespace steport::logic::impl
