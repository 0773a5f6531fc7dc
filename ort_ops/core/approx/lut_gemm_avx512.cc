// Compiled with AVX-512 flags; only called after run-time detection (F+BW+VL+DQ). The
// gather GEMM, depthwise gather and SepGemmAvx512 use only F/BW; PlaneGemmVbmi needs VBMI and
// SepGemmAvx512Vnni needs VNNI: the binding calls them only when DetectCpu() reports them.
// Gather GEMM: 16 rows of A per vector (one gather = 16 lookups), 8 weight columns per block.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "lut_gemm.h"
#include "requant_avx512.h"

namespace steport::approx {
namespace {
// A 256-byte table in four registers, looked up 64 codes at a time: vpermi2b on each
// 128-byte half, the code's top bit choosing the half. Default: all zeros.
struct ByteTable {
  __m512i t0 = _mm512_setzero_si512(), t1 = t0, t2 = t0, t3 = t0;
  ByteTable() = default;
  explicit ByteTable(const uint8_t* table)
      : t0(_mm512_loadu_si512(table)), t1(_mm512_loadu_si512(table + 64)),
        t2(_mm512_loadu_si512(table + 128)), t3(_mm512_loadu_si512(table + 192)) {}
  __m512i Lookup(__m512i codes) const {
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(codes), _mm512_permutex2var_epi8(t0, codes, t1),
                                  _mm512_permutex2var_epi8(t2, codes, t3));
  }
};

// Cache blocking: a pass covers kRowsPerPass rows x 8 columns; per k-chunk of kKc, the 8*kKc
// LUT rows it touches (32 KiB) stay in L1 while every row block of the pass reuses them.
// Partial sums live in a small int32 scratch between k-chunks.
constexpr int64_t kRowsPerPass = 256;
constexpr int64_t kKc = 4;

template <int NB>
void Pass(const GemmProblem& p, int64_t m0, int64_t m1, int64_t n0, int32_t* scratch) {
  const int64_t rows = m1 - m0, blocks = (rows + 15) / 16;
  for (int64_t i = 0; i < NB * blocks * 16; ++i) scratch[i] = 0;
  for (int64_t k0 = 0; k0 < p.K; k0 += kKc) {
    const int64_t k1 = std::min(p.K, k0 + kKc);
    for (int64_t mb = 0; mb < blocks; ++mb) {
      __m512i acc[NB];
      for (int j = 0; j < NB; ++j) acc[j] = _mm512_loadu_si512(scratch + (j * blocks + mb) * 16);
      for (int64_t k = k0; k < k1; ++k) {
        // 16 codes; ld_at is padded to kMBlock so these bytes are inside the buffer.
        const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(
            reinterpret_cast<const __m128i*>(p.at + k * p.ld_at + m0 + mb * 16)));
        const uint8_t* brow = p.b + k * p.N + n0;
        for (int j = 0; j < NB; ++j)
          acc[j] = _mm512_add_epi32(
              acc[j], _mm512_i32gather_epi32(idx, p.lut_t + int64_t(brow[j]) * 256, 4));
      }
      for (int j = 0; j < NB; ++j) _mm512_storeu_si512(scratch + (j * blocks + mb) * 16, acc[j]);
    }
  }
  for (int j = 0; j < NB; ++j) {
    const int32_t c = p.corr ? p.corr[n0 + j] : 0;
    const int32_t* s = scratch + j * blocks * 16;
    for (int64_t i = 0; i < rows; ++i)
      p.y[(m0 + i) * p.ldy_m + (n0 + j) * p.ldy_n] =
          static_cast<int32_t>(static_cast<uint32_t>(s[i]) - static_cast<uint32_t>(c));
  }
}
}  // namespace

void LutGemmAvx512(const GemmProblem& p, int64_t m_begin, int64_t m_end) {
  alignas(64) int32_t scratch[8 * kRowsPerPass];
  for (int64_t m0 = m_begin; m0 < m_end; m0 += kRowsPerPass) {
    const int64_t m1 = std::min(m_end, m0 + kRowsPerPass);
    int64_t n = 0;
    for (; n + 8 <= p.N; n += 8) Pass<8>(p, m0, m1, n, scratch);
    for (; n < p.N; ++n) Pass<1>(p, m0, m1, n, scratch);
  }
}

void GatherAccAvx512(const int32_t* row, const uint8_t* idx, int64_t stride, int64_t n,
                     int32_t* acc) {
  if (stride != 1) return GatherAccPortable(row, idx, stride, n, acc);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i ix = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + i)));
    _mm512_storeu_si512(acc + i, _mm512_add_epi32(_mm512_loadu_si512(acc + i),
                                                  _mm512_i32gather_epi32(ix, row, 4)));
  }
  if (i < n) GatherAccAvx2(row, idx + i, 1, n - i, acc + i);
}

}  // namespace steport::approx

// ---- byte-plane LUT GEMM (VBMI) ----------------------------------------------------------
namespace steport::approx {
namespace {
constexpr int64_t kChunk = 256;  // k-steps per 16-bit accumulation (256 * 255 < 65536)
constexpr int64_t kPrefetchSteps = 8;  // how far ahead PlanePass prefetches index rows
constexpr uint32_t kStepMask = (1u << 24) - 1;  // k in a step-list entry

// One pass: R blocks of 64 rows x one column n, over the k-steps steps[0, nsteps) (k = 0 ..
// nsteps - 1 when kList is false), added into tot: tot[r * 64 + i] holds row 2i of block r,
// tot[r * 64 + 32 + i] row 2i + 1 (int32, wrapping).
// kTop8: the top plane's bytes are small (<= 255 / p.t.top_steps), so they are summed in bytes
// for top_steps k-steps before joining the 16-bit sums (one add instead of shift + 2 adds).
// kSym (P == 1, narrow tables of an odd-symmetric LUT, PlaneTables::narrow_c): a table is
// 128 bytes, indexed by weight magnitude (sign-magnitude codes, bit 7 the sign, which
// vpermi2b ignores); lanes with the sign bit take narrow_c[code] - value (mod 256). One
// vpermi2b and a masked subtract instead of two vpermi2b and a blend, half the table loads.
template <int P, int R, bool kTop8, bool kList, bool kSym = false>
void PlanePass(const PlaneProblem& p, int64_t m0, int64_t n, const uint32_t* steps,
               int64_t nsteps, int32_t* tot) {
  static_assert(!kSym || P == 1);
  const uint8_t* at = p.at + m0;
  constexpr int kWide = kTop8 ? P - 1 : P;  // planes summed in 16-bit lanes every step
  for (int64_t k0 = 0; k0 < nsteps; k0 += kChunk) {
    const int64_t k1 = std::min(nsteps, k0 + kChunk);
    // Word w of accw = byte sums of rows 2w (low byte) + 256 * rows 2w+1 (mod 2^16);
    // acco = byte sums of rows 2w+1 alone, so the low-byte sums are accw - 256 * acco.
    __m512i accw[R][P], acco[R][P];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < P; ++j) accw[r][j] = acco[r][j] = _mm512_setzero_si512();
    const int64_t S = kTop8 ? p.t.top_steps : kChunk;
    for (int64_t ks = k0; ks < k1; ks += S) {
      const int64_t ke = std::min(k1, ks + S);
      __m512i acc8[R];
      for (int r = 0; r < R; ++r) acc8[r] = _mm512_setzero_si512();
      for (int64_t ki = ks; ki < ke; ++ki) {
        // List entries are k | code << 24 (the code read when the list was built).
        const int64_t k = kList ? int64_t(steps[ki] & kStepMask) : ki;
        const int64_t code = kList ? int64_t(steps[ki] >> 24) : int64_t(p.b[k * p.N + n]);
        // The index rows of a later step: skipped steps make the walk over k irregular, which
        // the hardware prefetcher does not follow (a batch-1 matmul streams its weights).
        if (kList && ki + kPrefetchSteps < nsteps) {
          const uint8_t* ahead = at + int64_t(steps[ki + kPrefetchSteps] & kStepMask) * p.ld_at;
          for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(ahead + r * 64), _MM_HINT_T0);
        }
        const uint8_t* t = p.t.planes + code * (kSym ? 128 : P * 256);
        __m512i idx[R];
        __mmask64 hi[R];
        for (int r = 0; r < R; ++r) {
          idx[r] = _mm512_loadu_si512(at + k * p.ld_at + r * 64);
          hi[r] = _mm512_movepi8_mask(idx[r]);  // code >= 128: upper half of the table / sign
        }
        if constexpr (kSym) {
          const __m512i t0 = _mm512_loadu_si512(t), t1 = _mm512_loadu_si512(t + 64);
          const __m512i c = _mm512_set1_epi8(static_cast<char>(p.t.narrow_c[code]));
          for (int r = 0; r < R; ++r) {
            __m512i v = _mm512_permutex2var_epi8(t0, idx[r], t1);
            v = _mm512_mask_sub_epi8(v, hi[r], c, v);
            if constexpr (kWide > 0) {
              accw[r][0] = _mm512_add_epi16(accw[r][0], v);
              acco[r][0] = _mm512_add_epi16(acco[r][0], _mm512_srli_epi16(v, 8));
            } else {
              acc8[r] = _mm512_add_epi8(acc8[r], v);
            }
          }
          continue;
        }
        for (int j = 0; j < P; ++j) {
          const __m512i t0 = _mm512_loadu_si512(t + j * 256);
          const __m512i t1 = _mm512_loadu_si512(t + j * 256 + 64);
          const __m512i t2 = _mm512_loadu_si512(t + j * 256 + 128);
          const __m512i t3 = _mm512_loadu_si512(t + j * 256 + 192);
          for (int r = 0; r < R; ++r) {
            const __m512i lo = _mm512_permutex2var_epi8(t0, idx[r], t1);
            const __m512i hv = _mm512_permutex2var_epi8(t2, idx[r], t3);
            const __m512i v = _mm512_mask_blend_epi8(hi[r], lo, hv);
            if (j < kWide) {
              accw[r][j] = _mm512_add_epi16(accw[r][j], v);
              acco[r][j] = _mm512_add_epi16(acco[r][j], _mm512_srli_epi16(v, 8));
            } else {
              acc8[r] = _mm512_add_epi8(acc8[r], v);
            }
          }
        }
      }
      if constexpr (kTop8)
        for (int r = 0; r < R; ++r) {
          accw[r][P - 1] = _mm512_add_epi16(accw[r][P - 1], acc8[r]);
          acco[r][P - 1] = _mm512_add_epi16(acco[r][P - 1], _mm512_srli_epi16(acc8[r], 8));
        }
    }
    for (int r = 0; r < R; ++r) {
      __m512i te0 = _mm512_loadu_si512(tot + r * 64), te1 = _mm512_loadu_si512(tot + r * 64 + 16);
      __m512i to0 = _mm512_loadu_si512(tot + r * 64 + 32), to1 = _mm512_loadu_si512(tot + r * 64 + 48);
      for (int j = 0; j < P; ++j) {
        const __m512i odd = acco[r][j];
        const __m512i even = _mm512_sub_epi16(accw[r][j], _mm512_slli_epi16(odd, 8));
        const __m128i sh = _mm_cvtsi32_si128(8 * j);
        auto widen = [&](__m512i v, int half) {
          return _mm512_sll_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, half)), sh);
        };
        te0 = _mm512_add_epi32(te0, widen(even, 0));
        te1 = _mm512_add_epi32(te1, widen(even, 1));
        to0 = _mm512_add_epi32(to0, widen(odd, 0));
        to1 = _mm512_add_epi32(to1, widen(odd, 1));
      }
      _mm512_storeu_si512(tot + r * 64, te0);
      _mm512_storeu_si512(tot + r * 64 + 16, te1);
      _mm512_storeu_si512(tot + r * 64 + 32, to0);
      _mm512_storeu_si512(tot + r * 64 + 48, to1);
    }
  }
}

// Writes columns [n0, n0 + nc) of rows [m0, m0 + rows): column n0 + j from tot + j * ld_tot
// (PlanePass's layout) plus extra[j]. Along y's shorter stride: a swapped problem (columns =
// pixels of one output plane) writes row by row, contiguously, rather than one word per
// plane-sized stride.
void WriteColumns(const PlaneProblem& p, int64_t m0, int64_t rows, int64_t n0, int64_t nc,
                  const int32_t* tot, int64_t ld_tot, const uint32_t* extra) {
  uint32_t add[64];
  for (int64_t j = 0; j < nc; ++j)
    add[j] = static_cast<uint32_t>(p.add) + extra[j] -
             (p.corr && !p.corr_per_row ? static_cast<uint32_t>(p.corr[n0 + j]) : 0u);
  const bool row_corr = p.corr && p.corr_per_row;
  auto value = [&](int64_t i, int64_t j) {  // tot holds row 2t of a block at t, 2t + 1 at 32 + t
    const int64_t pos = (i >> 6) * 64 + (i & 1) * 32 + ((i & 63) >> 1);
    return static_cast<uint32_t>(tot[j * ld_tot + pos]) + add[j] -
           (row_corr ? static_cast<uint32_t>(p.corr[m0 + i]) : 0u);
  };
  auto put = [&](int32_t* o, uint32_t v) {
    *o = static_cast<int32_t>(p.accumulate ? static_cast<uint32_t>(*o) + v : v);
  };
  if (p.ldy_m == 1 && !row_corr) {  // columns contiguous in y: 64 rows per 4 vectors
    const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_idx = _mm512_add_epi32(lo_idx, _mm512_set1_epi32(8));
    for (int64_t j = 0; j < nc; ++j) {
      const int32_t* t = tot + j * ld_tot;
      int32_t* out = p.y + m0 + (n0 + j) * p.ldy_n;
      const __m512i addv = _mm512_set1_epi32(static_cast<int32_t>(add[j]));
      int64_t i = 0;
      for (; i + 64 <= rows; i += 64, t += 64) {
        const __m512i e0 = _mm512_loadu_si512(t), e1 = _mm512_loadu_si512(t + 16);
        const __m512i o0 = _mm512_loadu_si512(t + 32), o1 = _mm512_loadu_si512(t + 48);
        __m512i v[4] = {_mm512_permutex2var_epi32(e0, lo_idx, o0), _mm512_permutex2var_epi32(e0, hi_idx, o0),
                        _mm512_permutex2var_epi32(e1, lo_idx, o1), _mm512_permutex2var_epi32(e1, hi_idx, o1)};
        for (int q = 0; q < 4; ++q) {
          __m512i r = _mm512_add_epi32(v[q], addv);
          if (p.accumulate) r = _mm512_add_epi32(r, _mm512_loadu_si512(out + i + 16 * q));
          _mm512_storeu_si512(out + i + 16 * q, r);
        }
      }
      for (; i < rows; ++i) put(out + i, value(i, j));
    }
  } else if (std::abs(p.ldy_n) < std::abs(p.ldy_m)) {  // along the shorter stride
    for (int64_t i = 0; i < rows; ++i) {
      int32_t* out = p.y + (m0 + i) * p.ldy_m + n0 * p.ldy_n;
      for (int64_t j = 0; j < nc; ++j) put(out + j * p.ldy_n, value(i, j));
    }
  } else {
    for (int64_t j = 0; j < nc; ++j) {
      int32_t* out = p.y + m0 * p.ldy_m + (n0 + j) * p.ldy_n;
      for (int64_t i = 0; i < rows; ++i) put(out + i * p.ldy_m, value(i, j));
    }
  }
}

// PlanePass for `blocks` <= R row blocks.
template <int P, int R, bool kTop8, bool kList, bool kSym = false>
void PlanePassRows(const PlaneProblem& p, int64_t m0, int64_t blocks, int64_t n,
                   const uint32_t* steps, int64_t nsteps, int32_t* tot) {
  if (blocks == R) return PlanePass<P, R, kTop8, kList, kSym>(p, m0, n, steps, nsteps, tot);
  if constexpr (R > 1) {
    if (blocks == 1) PlanePass<P, 1, kTop8, kList, kSym>(p, m0, n, steps, nsteps, tot);
    else if (blocks == 2) PlanePass<P, 2, kTop8, kList, kSym>(p, m0, n, steps, nsteps, tot);
    else PlanePass<P, 3, kTop8, kList, kSym>(p, m0, n, steps, nsteps, tot);
  }
}

// Step lists: per group of up to 64 columns, K is walked in chunks of at most this many
// steps (rounded to 64), so a group's lists (64 x chunk entries) stay in L2.
constexpr int64_t kListChunk = 1024;

// 64 x 64 bytes: rows[k] (64 columns each) -> for every column j a vector of its 64 codes
// (byte k = row k). Three rounds of byte/word/dword unpacks turn each 8-row octet into 8
// vectors of column qwords (vector s, qword 2L + e: column 16L + 2s + e); an 8 x 8 qword
// transpose (unpacks and 128-bit lane shuffles) then gathers each column's 8 octets. `col`
// gets the 8 columns of each s: col(column, codes).
template <typename Col>
inline void TransposeCodes64(const __m512i* rows, Col&& col) {
  alignas(64) __m512i oct[8][8];  // [octet a][s]
  for (int a = 0; a < 8; ++a) {
    const __m512i* r = rows + 8 * a;
    __m512i s[8], u[8];
    for (int i = 0; i < 4; ++i) {
      s[2 * i] = _mm512_unpacklo_epi8(r[2 * i], r[2 * i + 1]);      // columns 16L + 0..7
      s[2 * i + 1] = _mm512_unpackhi_epi8(r[2 * i], r[2 * i + 1]);  // columns 16L + 8..15
    }
    // u[h * 4 + q]: rows 0-3 (h = 0) or 4-7 (h = 1), columns 16L + 4q .. 16L + 4q + 3
    for (int h = 0; h < 2; ++h) {
      u[h * 4 + 0] = _mm512_unpacklo_epi16(s[4 * h + 0], s[4 * h + 2]);
      u[h * 4 + 1] = _mm512_unpackhi_epi16(s[4 * h + 0], s[4 * h + 2]);
      u[h * 4 + 2] = _mm512_unpacklo_epi16(s[4 * h + 1], s[4 * h + 3]);
      u[h * 4 + 3] = _mm512_unpackhi_epi16(s[4 * h + 1], s[4 * h + 3]);
    }
    for (int q = 0; q < 4; ++q) {
      oct[a][2 * q] = _mm512_unpacklo_epi32(u[q], u[4 + q]);      // columns 16L + 4q + {0, 1}
      oct[a][2 * q + 1] = _mm512_unpackhi_epi32(u[q], u[4 + q]);  // columns 16L + 4q + {2, 3}
    }
  }
  for (int s = 0; s < 8; ++s) {
    __m512i x[8];  // x[2i + e]: octets 2i, 2i + 1 of qword 2L + e, per lane L
    for (int i = 0; i < 4; ++i) {
      x[2 * i] = _mm512_unpacklo_epi64(oct[2 * i][s], oct[2 * i + 1][s]);
      x[2 * i + 1] = _mm512_unpackhi_epi64(oct[2 * i][s], oct[2 * i + 1][s]);
    }
    for (int e = 0; e < 2; ++e) {
      const __m512i y0 = _mm512_shuffle_i64x2(x[e], x[2 + e], _MM_SHUFFLE(2, 0, 2, 0));
      const __m512i y1 = _mm512_shuffle_i64x2(x[e], x[2 + e], _MM_SHUFFLE(3, 1, 3, 1));
      const __m512i y2 = _mm512_shuffle_i64x2(x[4 + e], x[6 + e], _MM_SHUFFLE(2, 0, 2, 0));
      const __m512i y3 = _mm512_shuffle_i64x2(x[4 + e], x[6 + e], _MM_SHUFFLE(3, 1, 3, 1));
      col(0 + 2 * s + e, _mm512_shuffle_i64x2(y0, y2, _MM_SHUFFLE(2, 0, 2, 0)));   // lane 0
      col(32 + 2 * s + e, _mm512_shuffle_i64x2(y0, y2, _MM_SHUFFLE(3, 1, 3, 1)));  // lane 2
      col(16 + 2 * s + e, _mm512_shuffle_i64x2(y1, y3, _MM_SHUFFLE(2, 0, 2, 0)));  // lane 1
      col(48 + 2 * s + e, _mm512_shuffle_i64x2(y1, y3, _MM_SHUFFLE(3, 1, 3, 1)));  // lane 3
    }
  }
}

// Step lists of columns [g0, g0 + gn) over steps [k0, k1) (k1 - k0 <= the lists' room `cap`):
// column j's wide (live, not narrow) steps go to lists[j * cap ...] from the front, its narrow
// steps from the back (nw[j], nn[j] count them, lo_sum[j] adds their narrow_lo). Per 64
// steps, the codes are transposed to one vector per column, classified with one flag lookup
// and compressed into entries k | code << 24 (16 per vpcompressd): the cost follows K, not
// the live steps one by one (distributing set bits to the lists cost ~26 % of VGG-small
// under Mitchell).
void BuildStepLists(const PlaneProblem& p, int64_t g0, int64_t gn, int64_t k0, int64_t k1,
                    uint32_t* lists, int64_t cap, int64_t* nw, int64_t* nn, uint32_t* lo_sum) {
  const ByteTable flags(p.t.step_flags);
  const int nlo = p.t.narrow ? p.t.narrow_lo_planes : 0;  // narrow_lo summed with vpsadbw
  const uint8_t* lo_planes = p.t.narrow_lo_bytes;
  // entry lanes: code byte c of lane group q to the top byte of dword c % 16 (others zero)
  __m512i to_top[4];
  for (int q = 0; q < 4; ++q) {
    alignas(64) uint8_t idx[64];
    for (int i = 0; i < 64; ++i) idx[i] = uint8_t(16 * q + i / 4);
    to_top[q] = _mm512_load_si512(idx);
  }
  const __mmask64 top_bytes = 0x8888888888888888ull;
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __mmask64 cols = gn == 64 ? ~__mmask64(0) : (__mmask64(1) << gn) - 1;
  __m512i lo_acc[64];
  for (int64_t j = 0; j < gn; ++j) lo_acc[j] = _mm512_setzero_si512();
  alignas(64) __m512i rows[64];
  for (int64_t kb = k0; kb < k1; kb += 64) {
    const int64_t nk = std::min<int64_t>(64, k1 - kb);
    for (int64_t r = 0; r < nk; ++r) rows[r] = _mm512_maskz_loadu_epi8(cols, p.b + (kb + r) * p.N + g0);
    for (int64_t r = nk; r < 64; ++r) rows[r] = _mm512_setzero_si512();
    const __mmask64 valid = nk == 64 ? ~__mmask64(0) : (__mmask64(1) << nk) - 1;
    const __m512i kv = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(kb)), iota);
    TransposeCodes64(rows, [&](int j, __m512i codes) {
      if (j >= gn) return;
      const __m512i f = flags.Lookup(codes);
      const __mmask64 live = _mm512_testn_epi8_mask(f, _mm512_set1_epi8(1)) & valid;
      const __mmask64 narrow = _mm512_test_epi8_mask(f, _mm512_set1_epi8(2)) & live;
      const __mmask64 wide = live & ~narrow;
      uint32_t* front = lists + j * cap + nw[j];
      uint32_t* back = lists + j * cap + cap - nn[j];
      for (int q = 0; q < 4; ++q) {
        const __mmask16 w = static_cast<__mmask16>(wide >> (16 * q));
        const __mmask16 n = static_cast<__mmask16>(narrow >> (16 * q));
        if (!(w | n)) continue;
        const __m512i e = _mm512_or_si512(_mm512_maskz_permutexvar_epi8(top_bytes, to_top[q], codes),
                                          _mm512_add_epi32(kv, _mm512_set1_epi32(16 * q)));
        if (w) {
          const int cw = __builtin_popcount(w);
          _mm512_mask_storeu_epi32(front, static_cast<__mmask16>((1u << cw) - 1),
                                   _mm512_maskz_compress_epi32(w, e));
          front += cw;
        }
        if (n) {
          const int cn = __builtin_popcount(n);
          back -= cn;
          _mm512_mask_storeu_epi32(back, static_cast<__mmask16>((1u << cn) - 1),
                                   _mm512_maskz_compress_epi32(n, e));
        }
      }
      nw[j] = front - (lists + j * cap);
      nn[j] = (lists + j * cap + cap) - back;
      for (int q = 0; q < nlo; ++q) {
        const __m512i t = _mm512_maskz_mov_epi8(narrow, ByteTable(lo_planes + q * 256).Lookup(codes));
        lo_acc[j] = _mm512_add_epi64(lo_acc[j], _mm512_slli_epi64(_mm512_sad_epu8(t, _mm512_setzero_si512()), 8 * q));
      }
    });
  }
  for (int64_t j = 0; j < gn; ++j)
    lo_sum[j] += static_cast<uint32_t>(_mm512_reduce_add_epi64(lo_acc[j]));
}

// Columns in groups of up to 64, row passes of R blocks. With skipped or narrow codes
// (PlaneTables), each column walks step lists instead of every k (BuildStepLists), chunk by
// chunk of K; its wide steps take P planes, its narrow ones one plane. The lists of a chunk
// serve every row pass; the row passes' sums (tot) outlive the chunks.
template <int P, int R, bool kTop8>
void PlaneRange(const PlaneProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin,
                int64_t n_end) {
  const bool listing = (p.t.skip || p.t.narrow) && p.K <= int64_t(kStepMask);
  const int64_t passes = (m_end - m_begin + 64 * R - 1) / (64 * R);
  thread_local std::vector<uint32_t> lists;
  thread_local std::vector<int32_t> tot_buf;
  const int64_t ld_tot = R * 64, ld_pass = 64 * ld_tot;  // tot of pass t, column j
  tot_buf.resize((listing ? passes : 1) * ld_pass);
  const int64_t nchunks = listing ? (p.K + kListChunk - 1) / kListChunk : 1;
  // steps per chunk, whole 64-step blocks but the last
  const int64_t cap = listing ? ((p.K + nchunks - 1) / nchunks + 63) / 64 * 64 : 0;
  if (listing) lists.resize(64 * cap);
  int64_t nw[64], nn[64];
  uint32_t extra[64];
  // The narrow tables as a one-plane problem.
  PlaneProblem pn = p;
  pn.t.planes = p.t.narrow, pn.t.P = 1, pn.t.top_steps = p.t.narrow_top_steps;
  auto rows_of = [&](int64_t t, int64_t& m0, int64_t& blocks) {
    m0 = m_begin + t * 64 * R;
    blocks = (std::min<int64_t>(64 * R, m_end - m0) + 63) / 64;
  };
  if (!listing) {  // every step of every column: one pass's sums at a time
    std::fill(extra, extra + 64, 0u);
    for (int64_t t = 0; t < passes; ++t) {
      int64_t m0, blocks;
      rows_of(t, m0, blocks);
      for (int64_t g0 = n_begin; g0 < n_end; g0 += 64) {
        const int64_t gn = std::min<int64_t>(64, n_end - g0);
        std::fill(tot_buf.begin(), tot_buf.begin() + gn * ld_tot, 0);
        for (int64_t j = 0; j < gn; ++j)
          PlanePassRows<P, R, kTop8, false>(p, m0, blocks, g0 + j, nullptr, p.K, tot_buf.data() + j * ld_tot);
        WriteColumns(p, m0, std::min<int64_t>(64 * R, m_end - m0), g0, gn, tot_buf.data(), ld_tot, extra);
      }
    }
    return;
  }
  for (int64_t g0 = n_begin; g0 < n_end; g0 += 64) {
    const int64_t gn = std::min<int64_t>(64, n_end - g0);
    for (int64_t t = 0; t < passes; ++t)
      std::fill(tot_buf.begin() + t * ld_pass, tot_buf.begin() + t * ld_pass + gn * ld_tot, 0);
    std::fill(extra, extra + gn, 0u);
    int64_t listed[64] = {};  // wide + narrow steps over all chunks
    for (int64_t k0 = 0; k0 < p.K; k0 += cap) {
      const int64_t k1 = std::min(p.K, k0 + cap);
      std::fill(nw, nw + gn, 0), std::fill(nn, nn + gn, 0);
      BuildStepLists(p, g0, gn, k0, k1, lists.data(), cap, nw, nn, extra);
      for (int64_t t = 0; t < passes; ++t) {
        int64_t m0, blocks;
        rows_of(t, m0, blocks);
        for (int64_t j = 0; j < gn; ++j) {
          int32_t* tot = tot_buf.data() + t * ld_pass + j * ld_tot;
          const uint32_t* list = lists.data() + j * cap;
          if (nw[j]) PlanePassRows<P, R, kTop8, true>(p, m0, blocks, g0 + j, list, nw[j], tot);
          if (nn[j] == 0) continue;
          const uint32_t* narrow = list + cap - nn[j];
          const bool top8 = pn.t.top_steps >= 2;
          if (pn.t.narrow_c) {
            if (top8) PlanePassRows<1, R, true, true, true>(pn, m0, blocks, g0 + j, narrow, nn[j], tot);
            else PlanePassRows<1, R, false, true, true>(pn, m0, blocks, g0 + j, narrow, nn[j], tot);
          } else {
            if (top8) PlanePassRows<1, R, true, true>(pn, m0, blocks, g0 + j, narrow, nn[j], tot);
            else PlanePassRows<1, R, false, true>(pn, m0, blocks, g0 + j, narrow, nn[j], tot);
          }
        }
      }
      for (int64_t j = 0; j < gn; ++j) listed[j] += nw[j] + nn[j];
    }
    for (int64_t j = 0; j < gn; ++j)
      extra[j] += p.t.skip_value * static_cast<uint32_t>(p.K - listed[j]);
    for (int64_t t = 0; t < passes; ++t) {
      int64_t m0, blocks;
      rows_of(t, m0, blocks);
      WriteColumns(p, m0, std::min<int64_t>(64 * R, m_end - m0), g0, gn,
                   tot_buf.data() + t * ld_pass, ld_tot, extra);
    }
  }
}

template <bool kTop8>
void PlaneDispatch(const PlaneProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin,
                   int64_t n_end) {
  switch (p.t.P) {
    case 1: return PlaneRange<1, 4, kTop8>(p, m_begin, m_end, n_begin, n_end);
    case 2: return PlaneRange<2, 4, kTop8>(p, m_begin, m_end, n_begin, n_end);
    case 3: return PlaneRange<3, 2, kTop8>(p, m_begin, m_end, n_begin, n_end);
    default: return PlaneRange<4, 2, kTop8>(p, m_begin, m_end, n_begin, n_end);
  }
}
}  // namespace

void PlaneGemmVbmi(const PlaneProblem& p, int64_t m_begin, int64_t m_end, int64_t n_begin,
                   int64_t n_end) {
  if (p.t.top_steps >= 2) PlaneDispatch<true>(p, m_begin, m_end, n_begin, n_end);
  else PlaneDispatch<false>(p, m_begin, m_end, n_begin, n_end);
}

// ---- separable path, AVX-512 ----------------------------------------------------------------
namespace {
// MR rows x NV vectors of 16 columns; the last vector may be partial (ncols in it).
template <int MR, int NV, bool kVnni>
void SepTile(const SepProblem& p, int64_t m0, int64_t n0, int64_t ncols) {
  const int64_t kp2 = p.Kp / 2;
  const int last = static_cast<int>(ncols - (NV - 1) * 16);  // 1..16
  const __mmask32 lmask = last >= 16 ? ~__mmask32(0) : ((__mmask32(1) << (2 * last)) - 1);
  __m512i acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
  const int16_t* fa = p.fa + m0 * p.Kp;
  for (int64_t k = 0; k < kp2; ++k) {
    const int16_t* g = p.panel ? p.gb + (n0 / 64) * p.panel + k * 128 : p.gb + (k * p.N + n0) * 2;
    __m512i bv[NV];
    for (int v = 0; v < NV - 1; ++v) bv[v] = _mm512_loadu_si512(g + v * 32);
    bv[NV - 1] = _mm512_maskz_loadu_epi16(lmask, g + (NV - 1) * 32);
    for (int i = 0; i < MR; ++i) {
      int32_t pair;
      std::memcpy(&pair, fa + i * p.Kp + 2 * k, 4);
      const __m512i a = _mm512_set1_epi32(pair);
      for (int v = 0; v < NV; ++v) {
        if constexpr (kVnni) acc[i][v] = _mm512_dpwssd_epi32(acc[i][v], a, bv[v]);
        else acc[i][v] = _mm512_add_epi32(acc[i][v], _mm512_madd_epi16(a, bv[v]));
      }
    }
  }
  alignas(64) int32_t t[NV * 16];
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) _mm512_store_si512(t + v * 16, acc[i][v]);
    int32_t* yr = p.y + (m0 + i) * p.ldy_m + n0 * p.ldy_n;
    for (int64_t j = 0; j < ncols; ++j) {
      const uint32_t c = p.corr ? static_cast<uint32_t>(p.corr[n0 + j]) : 0u;
      yr[j * p.ldy_n] = static_cast<int32_t>(static_cast<uint32_t>(t[j]) - c);
    }
  }
}

template <int MR, bool kVnni>
void SepRows(const SepProblem& p, int64_t m0) {
  int64_t n0 = 0;
  for (; n0 + 64 <= p.N; n0 += 64) SepTile<MR, 4, kVnni>(p, m0, n0, 64);
  const int64_t rest = p.N - n0;
  if (rest > 48) SepTile<MR, 4, kVnni>(p, m0, n0, rest);
  else if (rest > 32) SepTile<MR, 3, kVnni>(p, m0, n0, rest);
  else if (rest > 16) SepTile<MR, 2, kVnni>(p, m0, n0, rest);
  else if (rest > 0) SepTile<MR, 1, kVnni>(p, m0, n0, rest);
}

template <bool kVnni>
void SepGemm512(const SepProblem& p, int64_t m_begin, int64_t m_end) {
  int64_t m = m_begin;
  for (; m + 4 <= m_end; m += 4) SepRows<4, kVnni>(p, m);
  switch (m_end - m) {
    case 3: SepRows<3, kVnni>(p, m); break;
    case 2: SepRows<2, kVnni>(p, m); break;
    case 1: SepRows<1, kVnni>(p, m); break;
    default: break;
  }
}
}  // namespace

// u8 x s8 quads with vpdpbusd (VNNI): exact, the 4 products of a quad fit easily in int32.
namespace {
// acc += u8 x s8 quads, in place. GCC 12 does not tie _mm512_dpbusd_epi32's accumulator to
// its result: with many accumulators it copies each one around every product and spills
// some to the stack (the 6 x 4 tile ran at half speed); the asm operand "+v" keeps each
// accumulator in one register.
inline void DotQuads(__m512i& acc, __m512i u8, __m512i s8) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
}
template <int MR, int NV>
void Sep8Tile(const Sep8Problem& p, int64_t m0, int64_t n0, int64_t ncols) {
  const int64_t kq = p.Kp / 4;
  const int last = static_cast<int>(ncols - (NV - 1) * 16);  // 1..16
  const __mmask16 lmask = last >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << last) - 1);
  __m512i acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
  const uint8_t* fa = p.fa + m0 * p.Kp;
  for (int64_t k = 0; k < kq; ++k) {
    const int8_t* g = p.panel ? p.gb + (n0 / 64) * p.panel + k * 256 : p.gb + (k * p.ldg + n0) * 4;
    __m512i bv[NV];
    for (int v = 0; v < NV - 1; ++v) bv[v] = _mm512_loadu_si512(g + v * 64);
    bv[NV - 1] = _mm512_maskz_loadu_epi32(lmask, g + (NV - 1) * 64);
    for (int i = 0; i < MR; ++i) {
      int32_t quad;
      std::memcpy(&quad, fa + i * p.Kp + 4 * k, 4);
      const __m512i a = _mm512_set1_epi32(quad);
      for (int v = 0; v < NV; ++v) DotQuads(acc[i][v], a, bv[v]);
    }
  }
  alignas(64) int32_t t[NV * 16];
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) _mm512_store_si512(t + v * 16, acc[i][v]);
    int32_t* yr = p.y + (m0 + i) * p.ldy_m + n0 * p.ldy_n;
    for (int64_t j = 0; j < ncols; ++j) {
      const uint32_t c = p.corr ? static_cast<uint32_t>(p.corr[n0 + j]) : 0u;
      yr[j * p.ldy_n] = static_cast<int32_t>(static_cast<uint32_t>(t[j]) - c);
    }
  }
}

// Four rows x one full 64-column panel with named accumulators: GCC 12 keeps
// Sep8Tile<4, 4>'s accumulator array on the stack (a load and a store around every
// vpdpbusd, ~100 G MAC/s); in registers the tile runs at the conv tile's speed.
void Sep8Tile4x64(const Sep8Problem& p, int64_t m0, int64_t n0) {
  const int64_t kq = p.Kp / 4;
  const uint8_t* fa = p.fa + m0 * p.Kp;
  __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00;
  __m512i c10 = c00, c11 = c00, c12 = c00, c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00;
  __m512i c30 = c00, c31 = c00, c32 = c00, c33 = c00;
  for (int64_t k = 0; k < kq; ++k) {
    const int8_t* g = p.panel ? p.gb + (n0 / 64) * p.panel + k * 256 : p.gb + (k * p.ldg + n0) * 4;
    const __m512i b0 = _mm512_loadu_si512(g), b1 = _mm512_loadu_si512(g + 64);
    const __m512i b2 = _mm512_loadu_si512(g + 128), b3 = _mm512_loadu_si512(g + 192);
#define STEPORT_SEP8_ROW(i, x0, x1, x2, x3)                              \
  {                                                                      \
    int32_t quad;                                                        \
    std::memcpy(&quad, fa + (i) * p.Kp + 4 * k, 4);                      \
    const __m512i a = _mm512_set1_epi32(quad);                           \
    DotQuads(x0, a, b0), DotQuads(x1, a, b1), DotQuads(x2, a, b2), DotQuads(x3, a, b3); \
  }
    STEPORT_SEP8_ROW(0, c00, c01, c02, c03)
    STEPORT_SEP8_ROW(1, c10, c11, c12, c13)
    STEPORT_SEP8_ROW(2, c20, c21, c22, c23)
    STEPORT_SEP8_ROW(3, c30, c31, c32, c33)
#undef STEPORT_SEP8_ROW
  }
  const __m512i acc[4][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13},
                             {c20, c21, c22, c23}, {c30, c31, c32, c33}};
  for (int i = 0; i < 4; ++i) {
    int32_t* yr = p.y + (m0 + i) * p.ldy_m + n0 * p.ldy_n;
    for (int v = 0; v < 4; ++v) {
      const __m512i c = p.corr ? _mm512_loadu_si512(p.corr + n0 + v * 16) : _mm512_setzero_si512();
      const __m512i r = _mm512_sub_epi32(acc[i][v], c);
      if (p.ldy_n == 1) {
        _mm512_storeu_si512(yr + v * 16, r);
      } else {
        alignas(64) int32_t t[16];
        _mm512_store_si512(t, r);
        for (int j = 0; j < 16; ++j) yr[(v * 16 + j) * p.ldy_n] = t[j];
      }
    }
  }
}

template <int MR>
void Sep8Cols(const Sep8Problem& p, int64_t m0, int64_t n0, int64_t nc) {
  if (MR == 4 && nc == 64) Sep8Tile4x64(p, m0, n0);
  else if (nc > 48) Sep8Tile<MR, 4>(p, m0, n0, nc);
  else if (nc > 32) Sep8Tile<MR, 3>(p, m0, n0, nc);
  else if (nc > 16) Sep8Tile<MR, 2>(p, m0, n0, nc);
  else Sep8Tile<MR, 1>(p, m0, n0, nc);
}
}  // namespace

// Blocks of rows, then 64-column panels, then rows in 4s: one panel of B (64 x Kp bytes,
// 512 KiB at K = 8192) serves every row of the block while it is in L2. Rows outside (each
// 4-row strip walking all of N) read the whole B once per strip: for VGG-small's 8192 x 1024
// FC at batch 16, 32 MiB from memory and 2.4x slower than ORT's QGemm.
void Sep8GemmVnni(const Sep8Problem& p, int64_t m_begin, int64_t m_end) {
  constexpr int64_t kRowBlock = 32;  // 32 rows x K = 8192: 256 KiB of A beside the panel
  for (int64_t mb = m_begin; mb < m_end; mb += kRowBlock) {
    const int64_t me = std::min(m_end, mb + kRowBlock);
    for (int64_t n0 = 0; n0 < p.N; n0 += 64) {
      const int64_t nc = std::min<int64_t>(64, p.N - n0);
      int64_t m = mb;
      for (; m + 4 <= me; m += 4) Sep8Cols<4>(p, m, n0, nc);
      switch (me - m) {
        case 3: Sep8Cols<3>(p, m, n0, nc); break;
        case 2: Sep8Cols<2>(p, m, n0, nc); break;
        case 1: Sep8Cols<1>(p, m, n0, nc); break;
        default: break;
      }
    }
  }
}

// ---- transposed u8 x s8 GEMM for conv (NCHW output, lanes over output pixels) ----------
namespace {
// Sep8TCodes: one channel's 64 lanes (sums x0..x3, valid lanes m0..m3) of the problem's one
// panel to codes.
inline void StoreCodes(const Sep8TProblem& p, int64_t n, const avx512::CodeBounds& cb,
                       __m512i x0, __m512i x1, __m512i x2, __m512i x3, __mmask16 m0,
                       __mmask16 m1, __mmask16 m2, __mmask16 m3) {
  const Sep8TCodes& o = *p.codes;
  // sum - corr + bias, wrapping like the int32 path followed by RequantizePlanes
  const uint32_t shift = static_cast<uint32_t>(o.q.bias[n]) - static_cast<uint32_t>(p.corr ? p.corr[n] : 0);
  const __m512i b = _mm512_set1_epi32(static_cast<int32_t>(shift));
  x0 = _mm512_add_epi32(x0, b), x1 = _mm512_add_epi32(x1, b);
  x2 = _mm512_add_epi32(x2, b), x3 = _mm512_add_epi32(x3, b);
  const float mult = o.q.per_channel ? o.q.mult[n] : o.q.mult[0];
  const __m512 m = _mm512_set1_ps(mult);
  uint8_t* y = o.y + n * o.ldy_n;
  if (o.pool_w == 0) {
    _mm_mask_storeu_epi8(y, m0, avx512::Codes(x0, m, cb));
    _mm_mask_storeu_epi8(y + 16, m1, avx512::Codes(x1, m, cb));
    _mm_mask_storeu_epi8(y + 32, m2, avx512::Codes(x2, m, cb));
    _mm_mask_storeu_epi8(y + 48, m3, avx512::Codes(x3, m, cb));
    return;
  }
  // The rows' vertical pairs, as two 16-lane halves a, c of 32 lanes whose horizontal pairs
  // are the 16 pooled pixels in order.
  const bool take_min = mult < 0.0f;
  __m512i a, c;
  if (o.pool_w == 32) {  // x0 x1: row 0; x2 x3: row 1
    a = avx512::PoolReduce(take_min, x0, x2), c = avx512::PoolReduce(take_min, x1, x3);
  } else if (o.pool_w == 16) {  // one row per vector
    a = avx512::PoolReduce(take_min, x0, x1), c = avx512::PoolReduce(take_min, x2, x3);
  } else {  // 8: two rows per vector; a = rows (0, 1) and (2, 3) reduced, c = rows 4..7
    const __m512i top = _mm512_set_epi32(23, 22, 21, 20, 19, 18, 17, 16, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i bottom = _mm512_add_epi32(top, _mm512_set1_epi32(8));
    a = avx512::PoolReduce(take_min, _mm512_permutex2var_epi32(x0, top, x1),
                           _mm512_permutex2var_epi32(x0, bottom, x1));
    c = avx512::PoolReduce(take_min, _mm512_permutex2var_epi32(x2, top, x3),
                           _mm512_permutex2var_epi32(x2, bottom, x3));
  }
  _mm_storeu_si128(reinterpret_cast<__m128i*>(y),
                   avx512::Codes(avx512::PoolPairs(take_min, a, c), m, cb));
}

// NR (<= 6) output channels x one 64-lane panel: up to 24 accumulators, 4 activation
// vectors and a broadcast weight quad (29 of 32 zmm). Named accumulators, not an array of
// them: at 6 x 4 GCC 12 spills the array to the stack (a Sep8TTile<6, 4> template, even with
// DotQuads, measured 2.3x slower on VGG-small layers); rows past NR compile away.
// kX4: the quads are read in place (Sep8TProblem::x4), tap by tap, the clipped lanes of a
// border tap with masked loads; the loop body is the same.
// V (1..4): the 16-lane vectors computed; a panel's last (L - l0 <= 16 (V - 1)) lanes are
// padding and skipped (a 14x14 output's last panel has 4 valid lanes: V = 1 does a quarter
// of the work of a full tile).
template <int NR, int V, bool kX4>
void Sep8TTileNamed(const Sep8TProblem& p, int64_t n0, int64_t l0) {
  static_assert(NR >= 1 && NR <= 6 && V >= 1 && V <= 4);
  const int64_t kq = p.Kp / 4;
  const int64_t lda = kX4 ? p.x4->cq_stride : (p.panel ? 64 : p.ld_l) * 4;
  const int8_t* w = p.wq + n0 * p.Kp;
  const int64_t ldw = p.Kp;
  __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00;
  __m512i c10 = c00, c11 = c00, c12 = c00, c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00;
  __m512i c30 = c00, c31 = c00, c32 = c00, c33 = c00, c40 = c00, c41 = c00, c42 = c00, c43 = c00;
  __m512i c50 = c00, c51 = c00, c52 = c00, c53 = c00;
  const int64_t runs = kX4 ? p.x4->taps : 1, run_len = kX4 ? p.x4->cq : kq;
  const __m512i fill = _mm512_set1_epi8(kX4 ? static_cast<char>(p.x4->fill) : 0);
  for (int64_t t = 0; t < runs; ++t) {
    const uint8_t* a = kX4 ? p.x4->src + p.x4->tap_off[t]
                           : (p.panel ? p.aq + (l0 / 64) * p.panel : p.aq + l0 * 4);
    const uint64_t keep = kX4 ? p.x4->keep[t] : ~uint64_t{0};
    const __mmask16 k0 = static_cast<__mmask16>(keep), k1 = static_cast<__mmask16>(keep >> 16);
    const __mmask16 k2 = static_cast<__mmask16>(keep >> 32), k3 = static_cast<__mmask16>(keep >> 48);
    for (int64_t k = 0; k < run_len; ++k, a += lda, w += 4) {
      __m512i a0, a1, a2, a3;
      auto load = [&](int v, __mmask16 kv) {
        return kX4 ? _mm512_mask_loadu_epi32(fill, kv, a + 64 * v) : _mm512_loadu_si512(a + 64 * v);
      };
      a0 = load(0, k0);
      if constexpr (V > 1) a1 = load(1, k1);
      if constexpr (V > 2) a2 = load(2, k2);
      if constexpr (V > 3) a3 = load(3, k3);
#define STEPORT_SEP8T_ROW(i, x0, x1, x2, x3)                              \
  if constexpr (NR > (i)) {                                               \
    int32_t quad;                                                         \
    std::memcpy(&quad, w + (i) * ldw, 4);                                 \
    const __m512i b = _mm512_set1_epi32(quad);                            \
    DotQuads(x0, a0, b);                                                  \
    if constexpr (V > 1) DotQuads(x1, a1, b);                             \
    if constexpr (V > 2) DotQuads(x2, a2, b);                             \
    if constexpr (V > 3) DotQuads(x3, a3, b);                             \
  }
      STEPORT_SEP8T_ROW(0, c00, c01, c02, c03)
      STEPORT_SEP8T_ROW(1, c10, c11, c12, c13)
      STEPORT_SEP8T_ROW(2, c20, c21, c22, c23)
      STEPORT_SEP8T_ROW(3, c30, c31, c32, c33)
      STEPORT_SEP8T_ROW(4, c40, c41, c42, c43)
      STEPORT_SEP8T_ROW(5, c50, c51, c52, c53)
#undef STEPORT_SEP8T_ROW
    }
  }
  // A partial last panel (p.L - l0 < 64) was computed on the readable padding lanes of its V
  // vectors: store the valid lanes only (vectors past V: none).
  const int64_t valid = std::min<int64_t>(64, p.L - l0);
  auto lanes = [valid](int v) {
    const int64_t n = std::clamp<int64_t>(valid - 16 * v, 0, 16);
    return static_cast<__mmask16>((1u << n) - 1);
  };
  const __mmask16 m0 = lanes(0), m1 = lanes(1), m2 = lanes(2), m3 = lanes(3);
  const avx512::CodeBounds cb(p.codes ? p.codes->q.y_zp : 0);
  auto store = [&](int i, __m512i x0, __m512i x1, __m512i x2, __m512i x3) {
    if (p.codes) return StoreCodes(p, n0 + i, cb, x0, x1, x2, x3, m0, m1, m2, m3);
    const __m512i c = _mm512_set1_epi32(p.corr ? p.corr[n0 + i] : 0);
    int32_t* yr = p.y + (n0 + i) * p.ldy_n + l0;
    _mm512_mask_storeu_epi32(yr, m0, _mm512_sub_epi32(x0, c));
    _mm512_mask_storeu_epi32(yr + 16, m1, _mm512_sub_epi32(x1, c));
    _mm512_mask_storeu_epi32(yr + 32, m2, _mm512_sub_epi32(x2, c));
    _mm512_mask_storeu_epi32(yr + 48, m3, _mm512_sub_epi32(x3, c));
  };
  store(0, c00, c01, c02, c03);
  if constexpr (NR > 1) store(1, c10, c11, c12, c13);
  if constexpr (NR > 2) store(2, c20, c21, c22, c23);
  if constexpr (NR > 3) store(3, c30, c31, c32, c33);
  if constexpr (NR > 4) store(4, c40, c41, c42, c43);
  if constexpr (NR > 5) store(5, c50, c51, c52, c53);
}

template <int V, bool kX4>
void Sep8TChannelsV(const Sep8TProblem& p, int64_t n_begin, int64_t n_end, int64_t l0) {
  const int64_t count = n_end - n_begin;
  const int64_t rest6 = count % 6 == 2 && count >= 8 ? 8 : count % 6;  // channels after the 6s
  int64_t n = n_begin;
  for (; n_end - n > rest6; n += 6) Sep8TTileNamed<6, V, kX4>(p, n, l0);
  for (; n_end - n >= 4; n += 4) Sep8TTileNamed<4, V, kX4>(p, n, l0);
  switch (n_end - n) {
    case 3: Sep8TTileNamed<3, V, kX4>(p, n, l0); break;
    case 2: Sep8TTileNamed<2, V, kX4>(p, n, l0); break;
    case 1: Sep8TTileNamed<1, V, kX4>(p, n, l0); break;
    default: break;
  }
}

template <bool kX4>
void Sep8TChannels(const Sep8TProblem& p, int64_t n_begin, int64_t n_end) {
  for (int64_t l0 = 0; l0 < p.L; l0 += 64) {
    switch (std::min<int64_t>(4, (p.L - l0 + 15) / 16)) {
      case 1: Sep8TChannelsV<1, kX4>(p, n_begin, n_end, l0); break;
      case 2: Sep8TChannelsV<2, kX4>(p, n_begin, n_end, l0); break;
      case 3: Sep8TChannelsV<3, kX4>(p, n_begin, n_end, l0); break;
      default: Sep8TChannelsV<4, kX4>(p, n_begin, n_end, l0); break;
    }
  }
}
}  // namespace

void Sep8TGemmVnni(const Sep8TProblem& p, int64_t n_begin, int64_t n_end) {
  // Blocks of 6 channels, the rest (1..5, or 8 = 4 + 4 rather than 6 + 2) in blocks of at
  // most 4 named rows: the tail of 128 channels on 1-row tiles (4 accumulator chains,
  // latency-bound) took 3 % of a 128-channel layer for 1.6 % of its work.
  // A partial last panel computes the 16-lane vectors that hold valid lanes (the tiles' V,
  // named accumulators like the full tiles: an array of them spilled) and stores the valid
  // lanes; the padding lanes inside those vectors are readable (panels and ld_l hold whole
  // 64-lane groups). A 14x14 output has 196 = 3 x 64 + 4 lanes: 13 vectors, not 16.
  if (p.x4) return Sep8TChannels<true>(p, n_begin, n_end);
  Sep8TChannels<false>(p, n_begin, n_end);
}

void InterleaveQuads(const uint8_t* rows, int64_t ld, int64_t K, int64_t Kp, int64_t Lp,
                     uint8_t* out) {
  const __m128i z = _mm_setzero_si128();
  for (int64_t k0 = 0; k0 < Kp; k0 += 4) {
    const uint8_t* r[4];
    for (int j = 0; j < 4; ++j) r[j] = k0 + j < K ? rows + (k0 + j) * ld : nullptr;
    uint8_t* o = out + k0 * Lp;  // (k0 / 4) * Lp * 4
    for (int64_t l = 0; l < Lp; l += 16) {
      __m128i v[4];
      for (int j = 0; j < 4; ++j)
        v[j] = r[j] ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[j] + l)) : z;
      const __m128i a = _mm_unpacklo_epi8(v[0], v[1]), b = _mm_unpackhi_epi8(v[0], v[1]);
      const __m128i c = _mm_unpacklo_epi8(v[2], v[3]), d = _mm_unpackhi_epi8(v[2], v[3]);
      __m128i* q = reinterpret_cast<__m128i*>(o + l * 4);
      _mm_storeu_si128(q + 0, _mm_unpacklo_epi16(a, c));
      _mm_storeu_si128(q + 1, _mm_unpackhi_epi16(a, c));
      _mm_storeu_si128(q + 2, _mm_unpacklo_epi16(b, d));
      _mm_storeu_si128(q + 3, _mm_unpackhi_epi16(b, d));
    }
  }
}

void InterleaveQuadsMapVbmi(const uint8_t* rows, int64_t ld, int64_t k4, int64_t n,
                            const uint8_t* table, uint8_t* out) {
  const ByteTable map = table ? ByteTable(table) : ByteTable();
  auto row = [&](int j, int64_t l, __mmask64 k) {
    if (j >= k4) return _mm512_setzero_si512();  // channels past the last: weights 0
    const __m512i x = _mm512_maskz_loadu_epi8(k, rows + j * ld + l);
    return table ? map.Lookup(x) : x;
  };
  for (int64_t l = 0; l < n; l += 64) {
    const int64_t left = n - l;
    const __mmask64 k = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
    const __m512i r0 = row(0, l, k), r1 = row(1, l, k), r2 = row(2, l, k), r3 = row(3, l, k);
    // per 128-bit lane i: q0..q3 = the quads of pixels 16i + 0..3, 4..7, 8..11, 12..15
    const __m512i ab_lo = _mm512_unpacklo_epi8(r0, r1), ab_hi = _mm512_unpackhi_epi8(r0, r1);
    const __m512i cd_lo = _mm512_unpacklo_epi8(r2, r3), cd_hi = _mm512_unpackhi_epi8(r2, r3);
    const __m512i q0 = _mm512_unpacklo_epi16(ab_lo, cd_lo), q1 = _mm512_unpackhi_epi16(ab_lo, cd_lo);
    const __m512i q2 = _mm512_unpacklo_epi16(ab_hi, cd_hi), q3 = _mm512_unpackhi_epi16(ab_hi, cd_hi);
    // 4 x 4 transpose of the 128-bit lanes: output i = lane i of q0, q1, q2, q3
    const __m512i u0 = _mm512_shuffle_i32x4(q0, q1, 0x44), u1 = _mm512_shuffle_i32x4(q2, q3, 0x44);
    const __m512i u2 = _mm512_shuffle_i32x4(q0, q1, 0xEE), u3 = _mm512_shuffle_i32x4(q2, q3, 0xEE);
    const __m512i o[4] = {_mm512_shuffle_i32x4(u0, u1, 0x88), _mm512_shuffle_i32x4(u0, u1, 0xDD),
                          _mm512_shuffle_i32x4(u2, u3, 0x88), _mm512_shuffle_i32x4(u2, u3, 0xDD)};
    for (int i = 0; i < 4; ++i) {
      const int64_t px = std::clamp<int64_t>(left - 16 * i, 0, 16);
      if (px == 16) _mm512_storeu_si512(out + (l + 16 * i) * 4, o[i]);
      else if (px) _mm512_mask_storeu_epi32(out + (l + 16 * i) * 4, static_cast<__mmask16>((1u << px) - 1), o[i]);
    }
  }
}

void MapBytesVbmi(const uint8_t* table, const uint8_t* src, int64_t n, uint8_t* dst) {
  const ByteTable map(table);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, map.Lookup(_mm512_loadu_si512(src + i)));
  for (; i < n; ++i) dst[i] = table[src[i]];
}

void SepGemmAvx512(const SepProblem& p, int64_t m_begin, int64_t m_end) {
  SepGemm512<false>(p, m_begin, m_end);
}
void SepGemmAvx512Vnni(const SepProblem& p, int64_t m_begin, int64_t m_end) {
  SepGemm512<true>(p, m_begin, m_end);
}

}  // namespace steport::approx
