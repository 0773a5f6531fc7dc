// BinaryGemm / BinaryConv2d drivers: pack activations once, XNOR-popcount tiles, fused
// integer correction + scale + bias epilogue. Shapes are validated by the binding first.
#pragma once
#include <cstdint>
#include <functional>

#include "core/binary/bgemm.h"

namespace steport::binary {

// par(n, grain, fn): run fn(begin, end) over [0, n) (the binding passes ORT's pool).
using ParFor = std::function<void(int64_t, int64_t, const std::function<void(int64_t, int64_t)>&)>;

struct GemmProblem {
  const float* a;        // [m, k]
  int64_t m, k, n;
  const uint64_t* b;     // [n, ceil(k/64)]
  const float* scale;    // [n]
  const float* bias;     // [n]
  float* y;              // [m, n]
  // B prepared for AMX tiles (constant weights, AMX usable): batched problems use it.
  const AmxWeights* amx = nullptr;
};
void RunGemm(const GemmProblem& p, const Kernels& kern, const ParFor& par);

struct ConvProblem {
  const float* x;        // [n, c, h, w]
  int64_t n, c, h, w;
  const uint64_t* wt;    // [co, kh, kw, ceil((c/group)/64)]
  int64_t co, kh, kw;
  int64_t stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, group;
  int pad_value;         // -1, 0, +1
  const float* scale;    // [co]
  const float* bias;     // [co]
  float* y;              // [n, co, oh, ow]
  int64_t oh, ow;
};
void RunConv(const ConvProblem& p, const Kernels& kern, const ParFor& par);

}  // namespace steport::binary
