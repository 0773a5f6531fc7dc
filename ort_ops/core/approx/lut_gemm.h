// LUT ("approximate multiplier") GEMM and depthwise conv on raw pointers
// (DESIGN.md "Approximate multipliers"). The LUT is used transposed, lut_t[b][a] =
// LUT[a][b], so for a weight code b the 256 possible products form one contiguous int32
// row (weight-stationary: gather by activation code). Sums wrap modulo 2^32 (int32).
// Every ISA variant computes the same integers: results are bit-identical.
#pragma once
#include <cstdint>
#include <vector>

namespace steport::approx {

constexpr int64_t kMBlock = 16;  // rows of A per vector block; packed A rows padded to this

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
};
void SepGemmPortable(const SepProblem& p, int64_t m_begin, int64_t m_end);
void SepGemmAvx2(const SepProblem& p, int64_t m_begin, int64_t m_end);

}  // namespace steport::approx
