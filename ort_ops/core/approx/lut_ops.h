// The approximate-multiplier ops on raw buffers: ApproxMatMulInteger and ApproxConvInteger as
// docs/ops.md specifies them (sums wrap modulo 2^32), shared by both front ends: the ORT
// binding (ort/approx.cc) and the C ABI the PyTorch training ops call (train_abi.cc). Inputs
// are validated by the callers; these functions trust shapes and sizes.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/common/cpu.h"
#include "lut_gemm.h"

namespace steport::approx {

constexpr int64_t kLutSize = 65536;

// Everything derived from one LUT (transpose, separability, byte planes in both
// orientations): ~0.7-1.1 MiB.
struct Prepared {
  std::vector<int32_t> lut, lut_t;
  Separable sep;
  // A rescaling of sep with f in [0, 255], g in [-128, 127] (u8 x s8 VNNI kernel), if any.
  bool sep_narrow = false, f8_identity = false;  // f8[a] == a: activations used as they are
  // Narrow for every weight code except -128 (g8[128] is a placeholder): see NarrowFor.
  bool narrow_but_m128 = false;
  std::vector<int16_t> f8, g8;
  std::vector<uint8_t> f8u, g8u;  // f8, g8 as bytes (MapBytesVbmi tables)
  // Byte-plane form for PlaneGemmVbmi: LUT = base + bias + E, base = a * int8(b) when that
  // makes E narrower (approximate multipliers are close to the exact product), else 0.
  bool base_exact = false;
  int planes_p = 4;
  int32_t bias = 0;
  int top_steps = 1;  // PlaneTables::top_steps
  // The tables of one orientation and what PlaneTables derives from them (skip and narrow
  // only where the steps are listed: by_activation).
  struct PlaneSide {
    std::vector<uint8_t> planes;  // [256 code][planes_p][256]
    std::array<uint8_t, 256> skip{};  // only the codes at the most common constant
    uint32_t skip_value = 0;
    bool any_skip = false;
    std::vector<uint8_t> narrow;  // [256 code][256], empty when planes_p == 1
    std::array<uint8_t, 256> is_narrow{};
    std::array<uint32_t, 256> narrow_lo{};
    int narrow_top_steps = 1;
    bool any_narrow = false;
    // Odd-symmetric narrow tables (PlaneTables::narrow_c): `planes` is then indexed by
    // sign-magnitude codes (SignMagnitude) and `narrow` holds 128-byte magnitude tables.
    bool sign_magnitude = false;
    std::array<uint8_t, 256> narrow_c{};
    // PlaneTables::step_flags, narrow_lo_bytes, narrow_lo_planes
    std::array<uint8_t, 256> step_flags{};
    std::vector<uint8_t> narrow_lo_bytes;
    int narrow_lo_planes = 0;
  };
  // Tables per weight code indexed by activation codes (E columns), and the same bytes with
  // the roles swapped (E rows: GemmRunner::Planes uses them when outputs have few rows).
  PlaneSide by_weight, by_activation;
};

// The preparation of `lut` (int32 [65536]), shared process-wide by content: every node of
// every session and every training call that uses the same table gets the same object, so a
// model with many nodes sharing one LUT initializer prepares it once (docs/ops.md, "Memory").
// Entries live as long as someone holds them.
std::shared_ptr<const Prepared> PrepareLut(const int32_t* lut);
// int8 code (uint8 view) -> sign-magnitude code: 0..127 as they are, -m -> 128 + m,
// -128 -> 128 (an involution).
const std::array<uint8_t, 256>& SignMagnitude();
// The u8 x s8 factors f8, g8 serve these n weight codes (uint8 view): the LUT is narrow for
// every code, or for every code but -128 and -128 does not occur.
bool NarrowFor(const Prepared& p, const uint8_t* b, int64_t n);
// How many preparations were built since the library was loaded (tests check sharing).
int64_t PreparationCount();

// parallel_for(n, grain, fn): calls fn(begin, end) over a partition of [0, n) (chunks of at
// least `grain`), possibly concurrently; returns when all are done.
using ParFn = std::function<void(int64_t, int64_t, const std::function<void(int64_t, int64_t)>&)>;

struct SepB;  // packed weights of the separable GEMMs (lut_ops.cc)

// The weight side of MatMul / Conv (column sums, packed and transposed copies) for one
// (LUT, kernel variants, weights). Built per call, or once by a caller whose weights are
// constant (an ORT initializer), which then passes it to every call.
struct MatMulWeights {
  int64_t K = 0, N = 0;
  std::vector<int32_t> wsum;  // sum_k B[k, n] (wrapping)
  std::shared_ptr<SepB> sep;  // separable GEMM (or the exact base of a general LUT), if used
  std::vector<uint8_t> swapped;  // SwappedCodes of B, or empty
};
// The weights as the byte-plane GEMM's swapped orientation reads them (GemmRunner::Planes):
// [K][round_up(N, 64)], in sign-magnitude codes where Prepared::by_activation is. Packed
// once when they differ from the weights themselves (N % 64 != 0, or sign-magnitude) and
// the byte planes are used; otherwise empty (Planes then uses the weights, or converts).
std::vector<uint8_t> SwappedCodes(const Prepared& prep, bool planes, const uint8_t* b, int64_t K,
                                  int64_t N);
std::shared_ptr<const MatMulWeights> PackMatMulWeights(const Prepared& prep,
                                                       const KernelVariants& variants,
                                                       const int8_t* b, int64_t K, int64_t N);

// Y [M, N] = sum_k LUT[A[m, k], uint8(B[k, n])] - zp * sum_k B[k, n]. A uint8 [M, K], B int8
// [K, N], both row-major; M, N, K >= 1. `pw`: PackMatMulWeights(prep, variants, b, K, N) or null.
void MatMul(const Prepared& prep, const KernelVariants& variants, const uint8_t* a, int64_t M,
            int64_t K, const int8_t* b, int64_t N, int32_t zp, int32_t* y, const ParFn& par,
            const MatMulWeights* pw = nullptr);

// NCHW x, OIHW w (C_in / group input channels), NCHW y [NB, Co, OH, OW].
struct ConvShape {
  int64_t NB, C, H, W;      // input
  int64_t Co, Cg, KH, KW;   // weights
  int64_t sh, sw, pt, pl, pb, pr, dh, dw, group;
  int64_t OH, OW;           // output (from the above; >= 1)
};
// Each output is sum over taps of LUT[x, uint8(w)] - zp * w; a tap outside the image reads
// the code zp. Work and scratch memory are bounded by the output and the part of the input
// the output sees: output pixels whose taps all lie in the padding are one constant per
// channel and cost nothing; im2col runs in bounded blocks of output rows.
struct ConvWeights {
  int64_t Co = 0, Kg = 0, group = 1;
  std::vector<int32_t> wsum;               // per output channel, over its Kg taps
  bool use_t8 = false, sep = false;        // path taken (depends on LUT and ISA)
  std::vector<uint8_t> bt;                 // per group [Kg][Og] (uint8 view), non-t8 paths
  std::vector<uint8_t> swapped;            // per group SwappedCodes of bt ([Kg][round_up(Og, 64)]), or empty
  std::vector<std::shared_ptr<SepB>> sepb; // per group, non-t8 separable / exact-base GEMM
  std::vector<int8_t> wq;                  // t8 path: [Co][Kp] (g-mapped), Kp = round_up(Kg, 4);
                                           // x4: quads (kh, kw, channel quad), Kp = KH*KW*Cq*4
  bool x4 = false;                         // t8 separable on channel quads ("same" unit-stride convs)
  int64_t Cq = 0;                          // x4: ceil(Cg / 4)
};
// The shape's input/output sizes are not used: the layout depends on weights, strides, pads
// and dilations only. `allow_x4` = false forces the im2col layout.
std::shared_ptr<const ConvWeights> PackConvWeights(const Prepared& prep,
                                                   const KernelVariants& variants,
                                                   const ConvShape& s, const int8_t* w,
                                                   bool allow_x4 = true);
void Conv(const Prepared& prep, const KernelVariants& variants, const ConvShape& s,
          const uint8_t* x, const int8_t* w, int32_t zp, int32_t* y, const ParFn& par,
          const ConvWeights* pw = nullptr);

// ApproxQLinearConv's output stage inside the conv: whether ConvToCodes takes this conv —
// the separable channel-quad path (ConvWeights::x4) over an output whose every pixel touches
// the input, and for a 2x2 / stride-2 pool rows of 8, 16 or 32 pixels filling whole 64-pixel
// panels (Sep8TCodes). Others run Conv, then RequantizePlanes (requant.h).
bool FusesCodes(const ConvWeights& cw, const ConvShape& s, bool pool2x2);
// y uint8 [NB, Co, OH, OW] (pooled: [NB, Co, OH / 2, OW / 2]): RequantizePlanes(Conv(...))
// bit for bit, the requantization (and pool) run on the GEMM tiles' sums. Needs FusesCodes.
void ConvToCodes(const Prepared& prep, const KernelVariants& variants, const ConvShape& s,
                 const uint8_t* x, const int8_t* w, int32_t zp, const RequantParams& q,
                 bool pool2x2, uint8_t* y, const ParFn& par, const ConvWeights& cw);

}  // namespace steport::approx
