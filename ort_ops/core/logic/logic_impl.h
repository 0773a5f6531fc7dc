// The packed forward pass, templated on W (words per unit per block). Included by one
// translation unit per ISA and compiled with that ISA's flags. All word arithmetic uses
// GCC/Clang vector types of W uint64 lanes, so one gate on a block is one 128/256/512-bit
// bit op in the portable/AVX2/AVX-512 builds.
#pragma once
#include <cstring>
#include <utility>
#include <vector>

#include "logic.h"

// Bit s of a word is sample s; GroupSum also reads words as two 32-bit halves.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "packed words assume little endian");

// Everything here has internal linkage (anonymous namespace): each ISA translation unit
// keeps its own copy compiled with its own flags. With external linkage the linker would
// keep one copy of e.g. GroupSum<4> for both the AVX2 and the AVX-512 build.
namespace steport::logic::impl {
namespace {

template <int W>
struct Words {
  typedef uint64_t V __attribute__((vector_size(8 * W)));
  static V Load(const uint64_t* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void Store(uint64_t* p, V v) { std::memcpy(p, &v, sizeof v); }
};

// The 16 gates as bit ops (id convention: bit 3 = f(0,0) ... bit 0 = f(1,1)).
template <int G, typename V>
inline V Gate(V a, V b) {
  if constexpr (G == 0) return V{};
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
  if constexpr (G == 15) return ~V{};
}

// One run of same-gate slots: out[j] = gate(in[a[j]], in[b[j]]), stores sequential.
template <int G, int W>
void RunGates(const uint64_t* __restrict in, uint64_t* __restrict out, const int32_t* a,
              const int32_t* b, int64_t count) {
  using X = Words<W>;
  for (int64_t j = 0; j < count; ++j)
    X::Store(out + j * W, Gate<G>(X::Load(in + int64_t(a[j]) * W), X::Load(in + int64_t(b[j]) * W)));
}

template <int W, size_t... G>
void RunLayer(const LayerPlan& l, const uint64_t* in, uint64_t* out, std::index_sequence<G...>) {
  using Fn = void (*)(const uint64_t*, uint64_t*, const int32_t*, const int32_t*, int64_t);
  static constexpr Fn kFns[16] = {&RunGates<int(G), W>...};
  for (const Run& r : l.runs)
    kFns[r.gate](in, out + int64_t(r.begin) * W, l.a.data() + r.begin, l.b.data() + r.begin,
                 r.end - r.begin);
}

// Packs rows [r0, r0 + rows) of x into words[f * W + w] (zero-padded past the last row);
// `tmp` holds (n_in + 16) * W words. Portable version: first into a [w][f] scratch,
// contiguous in f so the per-row loop vectorizes, then interleaved into the [f][w] layout
// the gates read. The AVX2 / AVX-512 builds pass their own packer (compare to a bit mask,
// then a bit transpose), see logic_avx2.cc / logic_avx512.cc.
struct GenericPack {
  template <int W>
  static void Pack(const float* x, int64_t n_in, int64_t r0, int64_t rows, uint64_t* words,
                   uint64_t* tmp) {
    std::memset(tmp, 0, sizeof(uint64_t) * n_in * W);
    for (int64_t s = 0; s < rows; ++s) {
      const float* row = x + (r0 + s) * n_in;
      uint64_t* col = tmp + (s >> 6) * n_in;
      const int sh = int(s & 63);
      for (int64_t f = 0; f < n_in; ++f) col[f] |= uint64_t(row[f] != 0.0f) << sh;
    }
    for (int64_t f = 0; f < n_in; ++f)
      for (int w = 0; w < W; ++w) words[f * W + w] = tmp[w * n_in + f];
  }
};

// Carry-save adder: h:l = a + b + c (bitwise, per sample).
template <typename V>
inline void Csa(V& h, V& l, V a, V b, V c) {
  const V u = a ^ b;
  h = (a & b) | (u & c);
  l = u ^ c;
}

constexpr int kMaxPlanes = 26;  // counts up to 2^24 units per class

// Bit-sliced count of `g` units (words at units[u * W]): plane p of the result holds bit p
// of every sample's count. Harley-Seal: a carry-save tree folds 16 units into one "sixteens"
// word, which ripples into planes 4 and up; leftover units ripple in from plane 0.
template <int W>
void CountUnits(const uint64_t* units, int64_t g, int nplanes,
                typename Words<W>::V* planes) {
  using X = Words<W>;
  using V = typename X::V;
  for (int p = 4; p < nplanes; ++p) planes[p] = V{};  // 0..3 are assigned below
  V ones{}, twos{}, fours{}, eights{};
  int64_t u = 0;
  for (; u + 16 <= g; u += 16) {
    const uint64_t* q = units + u * W;
    // 4 units -> one fours word (ones / twos absorb the rest), 8 -> eights, 16 -> sixteens
    auto fours_of = [&](int i) {
      V twos_a, twos_b, f;
      Csa(twos_a, ones, ones, X::Load(q + i * W), X::Load(q + (i + 1) * W));
      Csa(twos_b, ones, ones, X::Load(q + (i + 2) * W), X::Load(q + (i + 3) * W));
      Csa(f, twos, twos, twos_a, twos_b);
      return f;
    };
    auto eights_of = [&](int i) {
      const V fours_a = fours_of(i), fours_b = fours_of(i + 4);
      V e;
      Csa(e, fours, fours, fours_a, fours_b);
      return e;
    };
    const V eights_a = eights_of(0), eights_b = eights_of(8);
    V sixteens;
    Csa(sixteens, eights, eights, eights_a, eights_b);
    V carry = sixteens;
    for (int p = 4; p < nplanes; ++p) {
      const V t = planes[p];
      planes[p] = t ^ carry;
      carry &= t;
    }
  }
  planes[0] = ones;
  planes[1] = twos;
  planes[2] = fours;
  planes[3] = eights;
  for (; u < g; ++u) {
    V carry = X::Load(units + u * W);
    for (int p = 0; p < nplanes; ++p) {
      const V t = planes[p];
      planes[p] = t ^ carry;
      carry &= t;
    }
  }
}

// GroupSum on packed words: class c owns slots [c * g, (c + 1) * g) of the last layer.
// Classes go in tiles: each class's counts become a row of floats (vectorized over the
// block's samples), then the tile is written to y row by row (contiguous stores), which
// matters when k is large and g small (a LogicConv2d stage: one unit per channel).
template <int W>
void GroupSum(const uint64_t* words, int64_t width, int64_t k, float tau, int64_t rows,
              float* y) {
  using V = typename Words<W>::V;
  constexpr int kTile = 16;
  constexpr int kSamples = 64 * W;
  const int64_t g = width / k;
  int nplanes = 1;
  while ((int64_t{1} << nplanes) <= g) ++nplanes;
  V planes[kMaxPlanes];
  uint32_t count[kSamples];
  float tile[kTile][kSamples];
  for (int64_t c0 = 0; c0 < k; c0 += kTile) {
    const int nc = int(k - c0 < kTile ? k - c0 : kTile);
    for (int t = 0; t < nc; ++t) {
      CountUnits<W>(words + (c0 + t) * g * W, g, nplanes, planes);
      // counts from the planes in 32-sample halves, so the inner loop is 32-bit lanes
      for (int p = 0; p < nplanes; ++p) {
        uint32_t halves[2 * W];
        std::memcpy(halves, &planes[p], sizeof halves);
        for (int h = 0; h < 2 * W; ++h) {
          const uint32_t bits = halves[h];
          uint32_t* cnt = count + 32 * h;
          if (p == 0) {
            for (int s = 0; s < 32; ++s) cnt[s] = (bits >> s) & 1u;
          } else {
            for (int s = 0; s < 32; ++s) cnt[s] |= ((bits >> s) & 1u) << p;
          }
        }
      }
      for (int s = 0; s < kSamples; ++s) tile[t][s] = static_cast<float>(count[s]) / tau;
    }
    for (int64_t s = 0; s < rows; ++s)
      for (int t = 0; t < nc; ++t) y[s * k + c0 + t] = tile[t][s];
  }
}

// Per-thread buffers, kept across calls (ORT reuses its pool threads) unless large.
inline uint64_t* Scratch(size_t words, std::vector<uint64_t>& local) {
  constexpr size_t kKeep = size_t{4} << 20;  // words (32 MiB)
  thread_local std::vector<uint64_t> kept;
  std::vector<uint64_t>& buf = words <= kKeep ? kept : local;
  if (buf.size() < words) buf.resize(words);
  return buf.data();
}

template <int W, typename Packer = GenericPack>
void Forward(const NetPlan& plan, const float* x, int64_t n, int64_t n_in, int64_t block_begin,
             int64_t block_end, float* y) {
  constexpr int64_t kBlock = 64 * W;
  const size_t unit_words = size_t(plan.max_width > n_in + 16 ? plan.max_width : n_in + 16) * W;
  std::vector<uint64_t> local;
  uint64_t* buf = Scratch(3 * unit_words, local);
  for (int64_t blk = block_begin; blk < block_end; ++blk) {
    const int64_t r0 = blk * kBlock;
    const int64_t rows = n - r0 < kBlock ? n - r0 : kBlock;
    uint64_t* cur = buf;
    uint64_t* nxt = buf + unit_words;
    Packer::template Pack<W>(x, n_in, r0, rows, cur, buf + 2 * unit_words);
    for (const LayerPlan& l : plan.layers) {
      RunLayer<W>(l, cur, nxt, std::make_index_sequence<16>{});
      std::swap(cur, nxt);
    }
    const int64_t width = plan.layers.back().out_width;
    if (plan.num_classes > 0) {
      GroupSum<W>(cur, width, plan.num_classes, plan.tau, rows, y + r0 * plan.num_classes);
    } else {
      for (int64_t s = 0; s < rows; ++s) {
        float* yr = y + (r0 + s) * width;
        const int w = int(s >> 6), sh = int(s & 63);
        for (int64_t j = 0; j < width; ++j)
          yr[j] = float((cur[int64_t(plan.out_slot[j]) * W + w] >> sh) & 1);
      }
    }
  }
}

}  // namespace
}  // namespace steport::logic::impl
