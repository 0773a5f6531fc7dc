// LUT ("approximate multiplier") GEMM and depthwise conv on raw pointers
// (docs/approx.md "The multiplier"). The LUT is used transposed, lut_t[b][a] =
// LUT[a][b], so for a weight code b the 256 possible products form one contiguous int32
// row (weight-stationary: gather by activation code). Sums wrap modulo 2^32 (int32).
// Every ISA variant computes the same integers: results are bit-identical.
#pragma once
#include <cstdint>
#include <vector>

namespace steport::approx {

constexpr int64_t kMBlock = 64;  // rows of A per vector block; packed A rows padded to this

// The requantization of int32 sums to uint8 codes (requant.h states the map).
struct RequantParams {
  const int32_t* bias = nullptr;  // [C]
  const float* mult = nullptr;    // [C], or [1] when !per_channel; finite (callers check)
  bool per_channel = true;
  int32_t y_zp = 0;               // in [0, 255]
};

// Y[m, n] = sum_k lut_t[b[k, n]][at[k, m]] - corr[n], for m in [m_begin, m_end).
struct GemmProblem {
  const int32_t* lut_t;  // [256][256] transposed LUT
  const uint8_t* at;     // activation codes, transposed: at[k * ld_at + m]
  int64_t ld_at;         // >= round_up(M, kMBlock); padding columns readable
  const uint8_t* b;      // weight codes (uint8 view) [K][N]
  int64_t K, N;
  const int32_t* corr;   // [N] subtracted (zero point * column sum); may be null
  int32_t* y;            // Y[m * ldy_m + n * ldy_n]
  int64_t ldy_m, ldy_n;
};
// m_begin must be a multiple of kMBlock.
void LutGemmPortable(const GemmProblem& p, int64_t m_begin, int64_t m_end);
void LutGemmAvx2(const GemmProblem& p, int64_t m_begin, int64_t m_end);
void LutGemmAvx512(const GemmProblem& p, int64_t m_begin, int64_t m_end);

// acc[i] += row[idx[i * stride]] for i < n (row: one 256-entry LUT row). Depthwise path.
void GatherAccPortable(const int32_t* row, const uint8_t* idx, int64_t stride, int64_t n,
                       int32_t* acc);
void GatherAccAvx2(const int32_t* row, const uint8_t* idx, int64_t stride, int64_t n,
                   int32_t* acc);
void GatherAccAvx512(const int32_t* row, const uint8_t* idx, int64_t stride, int64_t n,
                     int32_t* acc);

// ---- separable LUTs: LUT[a][b] == f[a] * g[b] exactly -----------------------------------
struct Separable {
  bool ok = false;
  std::vector<int16_t> f, g;  // |f|, |g| <= 32767 (so int16 multiply-adds never overflow)
};
// Exact rank-1 integer factorization with int16 factors, or ok = false.
Separable FactorLut(const int32_t* lut);

// Exact int GEMM for the separable path: Y[m, n] = sum_k fa[m, k] * gb[k, n] - corr[n].
// fa: [M][Kp] int16 (Kp even, zero padded), gb: pairs [Kp/2][N][2] int16.
struct SepProblem {
  const int16_t* fa;
  int64_t Kp;
  const int16_t* gb;
  int64_t N;
  const int32_t* corr;
  int32_t* y;
  int64_t ldy_m, ldy_n;
  // AVX-512 kernels only (0 elsewhere): gb blocked in panels of 64 columns, `panel` int16
  // apart (>= Kp * 64): pair k/2 of column n at gb + (n / 64) * panel + ((k / 2) * 64 + n % 64) * 2.
  // A panel is read sequentially; walking [Kp/2][N][2] down k jumps 4N bytes per step (a new
  // page per step for wide layers).
  int64_t panel = 0;
};
void SepGemmPortable(const SepProblem& p, int64_t m_begin, int64_t m_end);
void SepGemmAvx2(const SepProblem& p, int64_t m_begin, int64_t m_end);
// AVX-512BW (madd + add) and AVX-512 VNNI (vpdpwssd) variants; same integers.
void SepGemmAvx512(const SepProblem& p, int64_t m_begin, int64_t m_end);
void SepGemmAvx512Vnni(const SepProblem& p, int64_t m_begin, int64_t m_end);

// Narrow separable factors (f in [0, 255], g in [-128, 127]: the exact LUT, truncation
// multipliers, the exact base of the plane path): u8 x s8 quads with AVX-512 VNNI vpdpbusd.
// fa: [M][Kp] uint8 (Kp multiple of 4, zero padded), gb: quads [Kp/4][ldg][4] int8, ldg >= N.
struct Sep8Problem {
  const uint8_t* fa;
  int64_t Kp;
  const int8_t* gb;
  int64_t N, ldg;
  const int32_t* corr;
  int32_t* y;
  int64_t ldy_m, ldy_n;
  // Not for AMX (0 there): gb in panels of 64 columns, `panel` bytes apart (>= Kp * 64): quad
  // k/4 of column n at gb + (n / 64) * panel + ((k / 4) * 64 + n % 64) * 4 (see SepProblem).
  int64_t panel = 0;
};
void Sep8GemmVnni(const Sep8Problem& p, int64_t m_begin, int64_t m_end);
// AMX-INT8 tiles, same integers. Needs AmxInt8Usable(); m_begin % 32 == 0, fa rows readable up
// to round_up(m_end, 32), Kp % 64 == 0, ldg % 32 == 0.
void Sep8GemmAmx(const Sep8Problem& p, int64_t m_begin, int64_t m_end);
// Conv form: Y[n, l] = sum_k aq(k, l) * wq(n, k) - corr[n], lanes over output pixels l so the
// NCHW output is written with contiguous (masked) stores. aq: quads [Kp/4][ld_l][4] u8 with
// ld_l >= round_up(L, 64) lanes readable (whole 64-lane panels); wq: [N][Kp] int8. Columns [n_begin, n_end), all l.
struct Sep8TProblem {
  const uint8_t* aq;
  int64_t ld_l, Kp;
  const int8_t* wq;
  int64_t L, N;
  const int32_t* corr;  // may be null
  int32_t* y;           // y[n * ldy_n + l]
  int64_t ldy_n;
  // 0: aq as above. Else aq is blocked in panels of 64 lanes, `panel` bytes apart (>= Kp * 64):
  // lanes [64t, 64t + 64) of quad k at aq + t * panel + (k * 64 + l % 64) * 4. One panel is
  // read sequentially (not at a 4 * ld_l stride, which aliases cache sets).
  int64_t panel = 0;
  // Non-null (then L <= 64, one panel, aq unused): the conv's channel-quad path. Quad
  // t * cq + c of the panel is the 64 pixels at x4->src + c * cq_stride + tap_off[t], read
  // in place (masked loads), except the lanes whose bit is clear in keep[t] (taps that fall
  // into the padding columns), which read `fill` in all 4 bytes. (Copying each panel first,
  // 72 KiB for a 128-channel 3x3 layer, cost 1.3 % of VGG-small.)
  const struct X4Source* x4 = nullptr;
  // Non-null (with x4 only: one panel): the tiles store uint8 codes through this output
  // stage instead of int32 sums into y (ApproxQLinearConv: requantizing the sums while they
  // are in registers saves writing and re-reading 4 bytes per sum, 2.6 % of VGG-small at
  // batch 16).
  const struct Sep8TCodes* codes = nullptr;
};
// The tile epilogue of ApproxQLinearConv, for one panel: channel n's lanes become
// code(wrap32(sum - corr[n] + q.bias[n])) (requant.h), stored at y[n * ldy_n + l] for lane l;
// with pool_w > 0 first max-pooled 2x2 / stride 2 (min where the multiplier is negative, as
// RequantizePlanes does): the panel's 64 lanes are 64 / pool_w whole rows of pool_w pixels
// (pool_w in {8, 16, 32}, the panel full, starting at an even row), and its 16 pooled pixels
// go to y[n * ldy_n + j], j < 16 (consecutive pooled rows are contiguous).
struct Sep8TCodes {
  RequantParams q;  // channel n of the problem reads q.bias[n], q.mult[n] (or q.mult[0])
  uint8_t* y;
  int64_t ldy_n;
  int64_t pool_w = 0;
};
struct X4Source {
  const uint8_t* src;
  const int64_t* tap_off;
  const uint64_t* keep;
  int64_t taps, cq, cq_stride;
  uint8_t fill;
};
// Lane panels outer, output channels inner: a panel stays in cache while every channel of
// [n_begin, n_end) uses it.
void Sep8TGemmVnni(const Sep8TProblem& p, int64_t n_begin, int64_t n_end);
// out[(k / 4) * Lp * 4 + l * 4 + k % 4] = rows[k * ld + l] for k < K (0 for K <= k < Kp),
// l < Lp; Lp a multiple of 16 (rows readable up to Lp). SSE2 only (kept with its users).
void InterleaveQuads(const uint8_t* rows, int64_t ld, int64_t K, int64_t Kp, int64_t Lp,
                     uint8_t* out);
// The x4 path's planes: out[l * 4 + j] = table[rows[j * ld + l]] (rows as they are when
// table is null) for j < k4 (<= 4), 0 for k4 <= j < 4; l < n. Writes 4n bytes. AVX-512 VBMI.
void InterleaveQuadsMapVbmi(const uint8_t* rows, int64_t ld, int64_t k4, int64_t n,
                            const uint8_t* table, uint8_t* out);
constexpr int64_t kMaxX4Taps = 64;  // taps <= this (the x4 path's kernels; larger: im2col)
// dst[i] = table[src[i]] (256-entry byte table), 64 bytes per step. Needs AVX-512 BW+VBMI.
void MapBytesVbmi(const uint8_t* table, const uint8_t* src, int64_t n, uint8_t* dst);

// ---- general LUTs as byte planes (AVX-512 VBMI) -----------------------------------------
// LUT[a][b] = base(a, b) + bias + E(a, b), E >= 0 (as uint32) split into P byte planes:
// planes[(b * P + j) * 256 + a] = byte j of E(a, b). For a fixed weight code b each plane is
// 256 bytes = 4 zmm registers, so 64 activation codes are looked up in registers (two
// vpermi2b + a blend on bit 7) instead of with memory gathers. Byte sums are accumulated in
// 16-bit lanes for at most 256 k-steps (256 * 255 < 2^16), then widened and recombined
// exactly: sum_k E = sum_j 2^(8j) * sum_k byte_j (mod 2^32).
// The tables of one orientation: one per code of PlaneProblem::b (the code that selects it),
// indexed by the codes of PlaneProblem::at.
struct PlaneTables {
  const uint8_t* planes;  // [256][P][256]
  int P;                  // 1..4
  int top_steps;          // 1, or k-steps (<= 256) the top plane may be summed in bytes:
                          // top_steps * max(top plane byte) <= 255
  // Codes whose tables hold one constant, skip_value (skip[c] = 1), or null (no skipping):
  // those k-steps are left out of the lookups and skip_value times their count added. Under
  // ReLU most activation codes are the zero point, whose row usually is constant
  // (LUT[0][b] = 0: E(0, b) = -bias).
  const uint8_t* skip;
  uint32_t skip_value;
  // The narrow tables, or null (none used): codes whose table spans less than 256 are looked
  // up in one plane, narrow[c * 256 + x] = E - narrow_lo(c), with narrow_lo(c) added per
  // step. Approximate multipliers err less on small operands, and most activation codes are
  // small (Mitchell: rows 0..11 span < 256).
  const uint8_t* narrow;
  int narrow_top_steps;  // top_steps of the narrow tables
  // Non-null: the LUT is odd-symmetric in the index code (the narrow value at -m is
  // narrow_c[c] - the value at m, mod 256; Mitchell, DRUM: LUT(a, -b) = -LUT(a, b)). The
  // index codes are then sign-magnitude (bit 7 the sign, -128 as 0x80), every table is in that
  // order, and a narrow table is 128 bytes, narrow[c * 128 + m], m < 128 (PlanePass kSym).
  const uint8_t* narrow_c;
  // What the step lists read per code (skip or narrow non-null turns them on):
  // step_flags[c] = 1 (skipped) | 2 (narrow); narrow_lo in byte planes,
  // narrow_lo_bytes[q * 256 + c] = byte q of narrow_lo(c), q < narrow_lo_planes (0..4).
  const uint8_t* step_flags;
  const uint8_t* narrow_lo_bytes;
  int narrow_lo_planes;
};

struct PlaneProblem {
  PlaneTables t;
  const uint8_t* at;      // codes indexing the tables, at[k * ld_at + m]
  int64_t ld_at;          // >= round_up(M, kMBlock); padding columns readable
  const uint8_t* b;       // codes selecting the tables [K][N]
  int64_t K, N;
  const int32_t* corr;    // subtracted, per column ([N]) or per row ([M]); may be null
  bool corr_per_row;      // corr is indexed by row (the swapped orientation's channels)
  int32_t add;            // added to every output (K * bias, mod 2^32)
  bool accumulate;        // y += result (y already holds the base part) instead of y = result
  int32_t* y;
  int64_t ldy_m, ldy_n;
};
// Rows [m_begin, m_end) x columns [n_begin, n_end); m_begin a multiple of kMBlock. A table
// (for one code of b) is loaded once per pass of up to kPlaneRows rows: callers should pass
// row ranges at least that long and split columns for parallelism. Skipped and narrow steps
// are walked from per-column step lists when K < 2^24, built once per call for all its rows.
// Needs AVX-512 F+BW+VBMI.
constexpr int64_t kPlaneRows = 256;
void PlaneGemmVbmi(const PlaneProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin,
                   int64_t n_end);

}  // namespace steport::approx
