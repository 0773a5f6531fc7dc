// Logic-gate networks on raw pointers (docs/logic.md "Gate ids").
//   f_id(a, b) = (id >> (3 - (2a + b))) & 1;  input bit = (x != 0).
// Samples are bit-packed: a block of 64*W samples is W uint64 words per unit (bit i of word
// w = sample 64w + i of the block); every layer runs on packed words, never unpacked.
//
// The plan renumbers every layer's units so that units with the same gate id are stored
// next to each other (for the GroupSum layer: grouped by class first, then by gate id).
// Each run of same-gate units then executes one fixed bit op with sequential stores, and
// the next layer's indices point at the new slots. Renumbering never changes a result:
// intermediate order is internal, and GroupSum only needs class membership.
// All validation happens in the binding (ort/logic.cc) before a plan is built.
#pragma once
#include <cstdint>
#include <vector>

#include "core/common/cpu.h"

namespace steport::logic {

// Slots [begin, end) of a layer all compute gate `gate`.
struct Run {
  int32_t begin, end;
  int32_t gate;
};

struct LayerPlan {
  int64_t out_width = 0;
  std::vector<int32_t> a, b;  // per slot: input slots (int32: widths <= 2^24)
  std::vector<Run> runs;
};

// Independent of the batch and of the input width (layer-0 indices are checked against
// it before a plan runs), so a plan of constant initializers is built once per kernel.
struct NetPlan {
  std::vector<LayerPlan> layers;
  int64_t num_classes = 0;       // GroupSum groups; 0 = no GroupSum (LogicLayer: unpack last)
  float tau = 1.0f;
  int64_t max_width = 0;         // widest layer
  std::vector<int32_t> out_slot; // num_classes == 0: slot of last-layer unit j
};

// Builds a plan from validated concatenated arrays (idx_a/idx_b/gate_ids of all layers).
NetPlan MakePlan(const std::vector<int64_t>& sizes, const int64_t* idx_a, const int64_t* idx_b,
                 const uint8_t* gates, int64_t num_classes, float tau);

// Runs sample blocks [block_begin, block_end) of x [n, n_in] (64 * words samples per
// block). With num_classes > 0 writes y [n, num_classes] (GroupSum / tau), else
// y [n, last width] as 0.0 / 1.0.
using ForwardFn = void (*)(const NetPlan& plan, const float* x, int64_t n, int64_t n_in,
                           int64_t block_begin, int64_t block_end, float* y);

struct Kernel {
  ForwardFn forward;
  int64_t words;  // uint64 words per unit per block
};

// The variant for an ISA and a batch of n rows. Blocks are 64*W samples with W the
// smallest power of two covering the batch, up to the ISA's widest: a batch of 1 runs one
// 64-sample word per gate instead of a mostly empty 512-sample block. AVX-512 caps W at 8
// while the widest layer is <= 4096 units and at 4 beyond, where two layers of 512-sample
// words no longer sit comfortably in L2 (784-4x8000-10: W = 4 about 4 % faster;
// 784-4x2000-10: W = 8 about 5 % faster).
Kernel SelectKernel(Isa isa, int64_t widest, int64_t n);

// Instantiated for W = 1, 2 (portable), 1..4 (AVX2), 1..8 (AVX-512).
template <int W>
void ForwardPortable(const NetPlan&, const float*, int64_t, int64_t, int64_t, int64_t, float*);
template <int W>
void ForwardAvx2(const NetPlan&, const float*, int64_t, int64_t, int64_t, int64_t, float*);
template <int W>
void ForwardAvx512(const NetPlan&, const float*, int64_t, int64_t, int64_t, int64_t, float*);

}  // namespace steport::logic
