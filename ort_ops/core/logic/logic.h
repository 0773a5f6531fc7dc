// Logic-gate networks on raw pointers (DESIGN.md "Logic-gate networks").
//   f_id(a, b) = (id >> (3 - (2a + b))) & 1;  input bit = (x != 0).
// Samples are bit-packed: a block of 64*W samples is W uint64 words per unit (bit i of word
// w = sample 64w + i of the block); every layer runs on packed words, never unpacked.
// Gates of a layer are grouped by id at plan time so each group runs one fixed bit op.
// All validation happens in the binding (ort/logic.cc) before a plan is built.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace steport::logic {

struct LayerPlan {
  int64_t in_width = 0, out_width = 0;
  // gate j of group g: groups [start[g], start[g+1]) of a / b / dst (int32: widths <= 2^24)
  std::vector<int32_t> a, b, dst;
  std::array<int64_t, 17> start{};
};

struct NetPlan {
  int64_t n_in = 0;
  std::vector<LayerPlan> layers;
  int64_t num_classes = 0;  // GroupSum groups; 0 = no GroupSum (LogicLayer: unpack last)
  float tau = 1.0f;
  int64_t max_width = 0;    // widest of n_in and every layer
};

// Builds a plan from validated concatenated arrays. gate(i) returns gate id i in [0, 15].
template <typename G>
NetPlan MakePlan(int64_t n_in, const std::vector<int64_t>& sizes, const int64_t* idx_a,
                 const int64_t* idx_b, G gate, int64_t num_classes, float tau) {
  NetPlan p;
  p.n_in = n_in;
  p.num_classes = num_classes;
  p.tau = tau;
  p.max_width = n_in;
  int64_t off = 0, width = n_in;
  for (int64_t size : sizes) {
    LayerPlan l;
    l.in_width = width;
    l.out_width = size;
    std::array<int64_t, 16> count{};
    for (int64_t j = 0; j < size; ++j) ++count[gate(off + j)];
    for (int g = 0; g < 16; ++g) l.start[g + 1] = l.start[g] + count[g];
    l.a.resize(size);
    l.b.resize(size);
    l.dst.resize(size);
    std::array<int64_t, 16> pos{};
    for (int g = 0; g < 16; ++g) pos[g] = l.start[g];
    for (int64_t j = 0; j < size; ++j) {
      int64_t q = pos[gate(off + j)]++;
      l.a[q] = static_cast<int32_t>(idx_a[off + j]);
      l.b[q] = static_cast<int32_t>(idx_b[off + j]);
      l.dst[q] = static_cast<int32_t>(j);
    }
    off += size;
    width = size;
    if (size > p.max_width) p.max_width = size;
    p.layers.push_back(std::move(l));
  }
  return p;
}

// Runs sample blocks [block_begin, block_end) of x [n, n_in] (block = BlockSamples(isa)).
// With num_classes > 0 writes y [n, num_classes] (GroupSum / tau), else y [n, last width]
// as 0.0 / 1.0.
using ForwardFn = void (*)(const NetPlan& plan, const float* x, int64_t n, int64_t block_begin,
                           int64_t block_end, float* y);
void ForwardPortable(const NetPlan&, const float*, int64_t, int64_t, int64_t, float*);
void ForwardAvx2(const NetPlan&, const float*, int64_t, int64_t, int64_t, float*);
void ForwardAvx512(const NetPlan&, const float*, int64_t, int64_t, int64_t, float*);

// Words per unit per block for each variant (samples per block = 64 * words).
constexpr int kWordsPortable = 2;
constexpr int kWordsAvx2 = 4;
constexpr int kWordsAvx512 = 8;

}  // namespace steport::logic
