// Requantization of int32 accumulators to uint8 codes, with an optional max-pool over the
// codes: the output stage of ApproxQLinearConv / ApproxQLinearMatMul (docs/ops.md
// "ApproxQLinearConv"). Per channel c:
//   code = sat_u8(round_half_even(fp32(wrap32(acc + bias[c])) * multiplier[c]) + y_zp)
// in IEEE single precision (the Cast -> Mul -> QuantizeLinear(scale 1) of the integer export).
// That map is monotone in acc (non-decreasing for multiplier >= 0, non-increasing below), so
// the max-pool of the codes is the requantization of the pooled accumulators: the max over a
// window for multiplier >= 0, the min for multiplier < 0. Pooling first requantizes a quarter
// of the values for a 2x2 pool and never materializes the full-size codes.
#pragma once
#include <cstdint>

#include "core/common/cpu.h"
#include "lut_ops.h"

namespace steport::approx {

// Max-pool window over the conv output: kernel, strides, pads (top, left, bottom, right).
// Callers guarantee pads < kernel per side, so every window holds at least one value.
struct PoolShape {
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pl = 0, pb = 0, pr = 0;
  bool identity() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && pb == 0 && pr == 0; }
};

// acc [NB, C, H, W] -> y uint8 [NB, C, PH, PW] (PH, PW: the pool's output size; H, W when
// the pool is the identity). Parallel over the NB * C planes.
void RequantizePlanes(Isa isa, const int32_t* acc, int64_t NB, int64_t C, int64_t H, int64_t W,
                      const RequantParams& q, const PoolShape& pool, int64_t PH, int64_t PW,
                      uint8_t* y, const ParFn& par);

// MaxPool (floor mode, padding never selected) of uint8 codes [planes, H, W] ->
// y [planes, PH, PW]: the pool of requantized codes (ApproxQLinearConv where the GEMM's
// tiles requantize but cannot pool). Equal to pooling the sums as RequantizePlanes does: the
// code of the max (min) sum is the max code. Parallel over the planes.
void MaxPoolCodes(Isa isa, const uint8_t* codes, int64_t planes, int64_t H, int64_t W,
                  const PoolShape& pool, int64_t PH, int64_t PW, uint8_t* y, const ParFn& par);

// acc [M, N] row-major, channel = column -> y uint8 [M, N]. Parallel over rows.
void RequantizeRows(Isa isa, const int32_t* acc, int64_t M, int64_t N, const RequantParams& q,
                    uint8_t* y, const ParFn& par);

// The ISA kernels. One channel: y[i] = code(acc[i] + bias) for i < n.
void RequantSpanPortable(const int32_t* acc, int64_t n, int32_t bias, float mult, int32_t y_zp,
                         uint8_t* y);
void RequantSpanAvx512(const int32_t* acc, int64_t n, int32_t bias, float mult, int32_t y_zp,
                       uint8_t* y);
// One row, per-column channels: y[j] = code_j(acc[j] + bias[j]) (mult[j], or mult[0] when
// !per_channel).
void RequantRowPortable(const int32_t* acc, int64_t n, const int32_t* bias, const float* mult,
                        bool per_channel, int32_t y_zp, uint8_t* y);
void RequantRowAvx512(const int32_t* acc, int64_t n, const int32_t* bias, const float* mult,
                      bool per_channel, int32_t y_zp, uint8_t* y);
// The 2x2, stride-2 pool and the requantization in one pass: y[j] = code(reduce of r0[2j],
// r0[2j + 1], r1[2j], r1[2j + 1], each + bias), j < n. AVX-512 only: the portable path
// composes PoolPlane's steps.
void Pool2x2RequantAvx512(const int32_t* r0, const int32_t* r1, int64_t n, int32_t bias,
                          float mult, int32_t y_zp, bool take_min, uint8_t* y);
// y[j] = max(r0[2j], r0[2j + 1], r1[2j], r1[2j + 1]), j < n (2n codes readable per row).
void Pool2x2CodesAvx512(const uint8_t* r0, const uint8_t* r1, int64_t n, uint8_t* y);

}  // namespace steport::approx
