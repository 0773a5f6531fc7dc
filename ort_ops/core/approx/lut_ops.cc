// The approximate-multiplier ops on raw buffers (lut_ops.h): LUT preparation shared by
// content, kernel choice per ISA, and the matmul / conv drivers both front ends call.
#include "lut_ops.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <numeric>
#include <string>

namespace steport::approx {
namespace {

int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Output columns [lo, hi) whose input column iw = ow * sw + off lies inside [0, Wd): the
// taps in between read the image, the rest are padding. 0 <= lo <= hi <= OW.
struct ColRange {
  int64_t lo, hi;
};
ColRange ValidColumns(int64_t off, int64_t sw, int64_t Wd, int64_t OW) {
  int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
  int64_t hi = Wd - 1 - off < 0 ? 0 : (Wd - 1 - off) / sw + 1;
  lo = std::min(lo, OW);
  return {lo, std::max(lo, std::min(hi, OW))};
}


using GemmFn = void (*)(const GemmProblem&, int64_t, int64_t);
using SepFn = void (*)(const SepProblem&, int64_t, int64_t);
using GatherFn = void (*)(const int32_t*, const uint8_t*, int64_t, int64_t, int32_t*);

struct Kernels {
  GemmFn gemm;
  SepFn sep;
  GatherFn gather;
  bool planes;  // PlaneGemmVbmi usable for general LUTs
  bool sep8;    // Sep8GemmVnni usable (AVX-512 VNNI)
  bool vbmi;    // MapBytesVbmi usable
  bool amx;     // Sep8GemmAmx usable (replaces Sep8GemmVnni for row-major problems)
};

// LUT = f (x) g = C * fp (x) gp with fp, gp primitive (gcd 1). Looks for a split C = c1 * c2
// and a sign with f8 = s*c1*fp in [0, 255] and g8 = s*c2*gp in [-128, 127]; FactorLut's own
// scaling is arbitrary (truncation LUTs come out as 4*(a & m), (b & m)/4).
void NarrowFactors(Prepared& p) {
  int64_t gf = 0, gg = 0;
  for (int i = 0; i < 256; ++i) gf = std::gcd(gf, int64_t(std::abs(p.sep.f[i]))), gg = std::gcd(gg, int64_t(std::abs(p.sep.g[i])));
  if (gf == 0 || gg == 0) {  // all-zero LUT
    p.sep_narrow = true;
    p.f8.assign(256, 0), p.g8.assign(256, 0), p.f8u.assign(256, 0), p.g8u.assign(256, 0);
    return;
  }
  const int64_t C = gf * gg;
  // First a split that fits every weight code; else one that fits every code but -128, whose
  // g alone may not fit int8 (DRUM: |g(-128)| = 144). Symmetric weight quantization never
  // produces -128, so the narrow kernels still serve such weights (NarrowFor).
  for (bool skip_m128 : {false, true})
    for (int sign : {1, -1})
      for (int64_t c1 = 1; c1 <= 255; ++c1) {
        if (C % c1) continue;
        const int64_t c2 = C / c1;
        bool ok = true;
        for (int i = 0; i < 256 && ok; ++i) {
          const int64_t f = sign * c1 * (p.sep.f[i] / gf), g = sign * c2 * (p.sep.g[i] / gg);
          ok = f >= 0 && f <= 255 && ((skip_m128 && i == 128) || (g >= -128 && g <= 127));
        }
        if (!ok) continue;
        p.f8.resize(256), p.g8.resize(256);
        for (int i = 0; i < 256; ++i) {
          p.f8[i] = static_cast<int16_t>(sign * c1 * (p.sep.f[i] / gf));
          p.g8[i] = static_cast<int16_t>(sign * c2 * (p.sep.g[i] / gg));
        }
        p.sep_narrow = !skip_m128;
        p.narrow_but_m128 = skip_m128;
        if (skip_m128) p.g8[128] = 0;  // never read: NarrowFor refuses weights holding -128
        p.f8_identity = true;
        p.f8u.resize(256), p.g8u.resize(256);
        for (int i = 0; i < 256; ++i) {
          p.f8_identity = p.f8_identity && p.f8[i] == i;
          p.f8u[i] = static_cast<uint8_t>(p.f8[i]);
          p.g8u[i] = static_cast<uint8_t>(p.g8[i]);
        }
        return;
      }
}

}  // namespace

bool NarrowFor(const Prepared& p, const uint8_t* b, int64_t n) {
  if (p.sep_narrow) return true;
  if (!p.narrow_but_m128) return false;
  return std::find(b, b + n, uint8_t{0x80}) == b + n;
}

namespace {
void PreparePlanes(Prepared& p) {
  auto range = [&](bool exact, int64_t& lo) {
    int64_t mn = INT64_MAX, mx = INT64_MIN;
    for (int a = 0; a < 256; ++a)
      for (int b = 0; b < 256; ++b) {
        const int64_t e = int64_t(p.lut[a * 256 + b]) - (exact ? a * int64_t(int8_t(b)) : 0);
        mn = std::min(mn, e), mx = std::max(mx, e);
      }
    lo = mn;
    return mx - mn;
  };
  int64_t lo0, lo1;
  const int64_t r0 = range(false, lo0), r1 = range(true, lo1);
  p.base_exact = r1 < r0;
  const int64_t r = p.base_exact ? r1 : r0;
  p.bias = static_cast<int32_t>(static_cast<uint32_t>(p.base_exact ? lo1 : lo0));
  p.planes_p = r < (1 << 8) ? 1 : r < (1 << 16) ? 2 : r < (1 << 24) ? 3 : 4;
  const int P = p.planes_p;
  // E = LUT - base - bias modulo 2^32 (exactly the integer in [0, r] when r < 2^32).
  std::vector<uint32_t> e(256 * 256);  // [a][b]
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b)
      e[a * 256 + b] = static_cast<uint32_t>(p.lut[a * 256 + b]) -
                       static_cast<uint32_t>(p.base_exact ? a * int32_t(int8_t(b)) : 0) -
                       static_cast<uint32_t>(p.bias);
  // One side: value(c, x) is E for selecting code c and index code x. The skipped and narrow
  // tables only for the side whose steps are listed (GemmRunner::Planes: the activations').
  auto side = [P](auto value, Prepared::PlaneSide& s, bool listed) {
    s.planes.assign(256 * P * 256, 0);
    for (int c = 0; c < 256; ++c)
      for (int x = 0; x < 256; ++x)
        for (int j = 0; j < P; ++j) s.planes[(c * P + j) * 256 + x] = uint8_t(value(c, x) >> (8 * j));
    if (!listed) return;
    // Constant tables: only those at the most common constant are skipped (one value added
    // per skipped step).
    std::map<uint32_t, int> count;
    std::array<bool, 256> constant{};
    for (int c = 0; c < 256; ++c) {
      constant[c] = true;
      for (int x = 1; x < 256 && constant[c]; ++x) constant[c] = value(c, x) == value(c, 0);
      if (constant[c]) ++count[value(c, 0)];
    }
    int best = 0;
    for (const auto& [v, n] : count)
      if (n > best) best = n, s.skip_value = v;
    for (int c = 0; c < 256; ++c) s.skip[c] = constant[c] && value(c, 0) == s.skip_value;
    s.any_skip = best > 0;
    for (int c = 0; c < 256; ++c) s.step_flags[c] = s.skip[c];
    // Narrow tables (E spans < 256 over the index codes), when the full ones have 2+ planes.
    if (P == 1) return;
    s.narrow.assign(256 * 256, 0);
    int top = 0;
    for (int c = 0; c < 256; ++c) {
      uint32_t lo = UINT32_MAX, hi = 0;
      for (int x = 0; x < 256; ++x) lo = std::min(lo, value(c, x)), hi = std::max(hi, value(c, x));
      if (hi - lo > 255 || s.skip[c]) continue;
      s.is_narrow[c] = 1, s.narrow_lo[c] = lo, s.any_narrow = true;
      for (int x = 0; x < 256; ++x) {
        s.narrow[c * 256 + x] = uint8_t(value(c, x) - lo);
        top = std::max<int>(top, s.narrow[c * 256 + x]);
      }
    }
    s.narrow_top_steps = top == 0 ? 256 : std::min(256, 255 / top);
    // Odd symmetry (Mitchell, DRUM: LUT(a, -b) = -LUT(a, b), so E(a, -m) = C - E(a, m)): every
    // narrow table is its values at magnitudes 0..127 plus one byte, narrow_c, from which the
    // negative half follows, N(-m) = narrow_c - N(m) mod 256 (-128 paired with 0).
    bool sym = s.any_narrow;
    for (int c = 0; c < 256 && sym; ++c) {
      if (!s.is_narrow[c]) continue;
      const uint8_t* n = s.narrow.data() + c * 256;
      s.narrow_c[c] = uint8_t(n[0] + n[0x80]);
      for (int m = 1; m < 128 && sym; ++m) sym = uint8_t(n[m] + n[256 - m]) == s.narrow_c[c];
    }
    if (sym) {
      const auto& sm = SignMagnitude();
      std::vector<uint8_t> planes(s.planes.size()), narrow(256 * 128);
      for (int t = 0; t < 256 * P; ++t)
        for (int i = 0; i < 256; ++i) planes[t * 256 + i] = s.planes[t * 256 + sm[i]];
      for (int c = 0; c < 256; ++c) std::memcpy(&narrow[c * 128], &s.narrow[c * 256], 128);
      s.planes = std::move(planes), s.narrow = std::move(narrow), s.sign_magnitude = true;
    } else {
      s.narrow_c.fill(0);
    }
    s.narrow_lo_bytes.assign(4 * 256, 0);
    for (int c = 0; c < 256; ++c) {
      s.step_flags[c] |= uint8_t(s.is_narrow[c] << 1);
      for (int q = 0; q < 4; ++q) {
        s.narrow_lo_bytes[q * 256 + c] = uint8_t(s.narrow_lo[c] >> (8 * q));
        if (s.narrow_lo_bytes[q * 256 + c]) s.narrow_lo_planes = std::max(s.narrow_lo_planes, q + 1);
      }
    }
  };
  side([&](int b, int a) { return e[a * 256 + b]; }, p.by_weight, false);
  side([&](int a, int b) { return e[a * 256 + b]; }, p.by_activation, true);
  int top = 0;
  for (uint32_t v : e) top = std::max<int>(top, int(v >> (8 * (P - 1))) & 0xFF);
  p.top_steps = top == 0 ? 256 : std::min(256, 255 / top);
}

// The switches (the gather GEMM for general LUTs, AMX off) come from SelectKernelVariants;
// tests cover every path.
Kernels PickKernels(const KernelVariants& variants) {
  const CpuFeatures& c = DetectCpu();
  switch (variants.isa) {
    case Isa::kAvx512: {
      const bool vnni = c.avx512vnni;
      return {LutGemmAvx512, vnni ? SepGemmAvx512Vnni : SepGemmAvx512,
              GatherAccAvx512, c.avx512vbmi && !variants.approx_gather, vnni,
              c.avx512vbmi, vnni && variants.approx_amx};
    }
    case Isa::kAvx2:
      return {LutGemmAvx2, SepGemmAvx2, GatherAccAvx2, false, false, false,
              false};
    default:
      return {LutGemmPortable, SepGemmPortable, GatherAccPortable, false,
              false, false, false};
  }
}

// corr[n] = zp * sum_k w(k, n), modulo 2^32.
// kRowMajor: w(k, n) walks memory along n, so sum row by row (vectorizes).
template <bool kRowMajor = false, typename Idx>
void ColumnCorrection(int32_t zp, int64_t K, int64_t N, Idx w, int32_t* corr) {
  if constexpr (kRowMajor) {
    std::vector<uint32_t> s(N, 0);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) s[n] += static_cast<uint32_t>(int32_t(w(k, n)));
    for (int64_t n = 0; n < N; ++n) corr[n] = static_cast<int32_t>(s[n] * static_cast<uint32_t>(zp));
    return;
  }
  for (int64_t n = 0; n < N; ++n) {
    uint32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += static_cast<uint32_t>(int32_t(w(k, n)));
    corr[n] = static_cast<int32_t>(s * static_cast<uint32_t>(zp));
  }
}


}  // namespace

// The weight side of an exact separable GEMM Y[m, n] = sum_k F(m, k) * G(k, n) - corr[n]:
// u8 x s8 quads for the VNNI kernel when the factors are narrow, else int16 pairs. Built once
// per call, or once per kernel when the weights are constant (MatMulWeights).
struct SepB {
  bool narrow = false, amx = false;
  int64_t K = 0, N = 0, Kp = 0, ldg = 0;
  int64_t panel = 0;  // Sep8Problem / SepProblem::panel
  std::vector<int8_t> gb8;
  std::vector<int16_t> gb16;
};

namespace {
// `bq`: when not null (VBMI machines), G(k, n) == int8(gmap[bq[k * N + n]]) (gmap null:
// identity); B is then mapped and quad-interleaved 64 / 16 bytes at a time.
// `use_amx`: pad for Sep8GemmAmx (K to 64, columns to 32). Otherwise the u8 x s8 layout is
// in 64-column panels; the int16 one too when `panel16` (the AVX-512 kernels).
template <typename G>
std::shared_ptr<SepB> MakeSepB(bool use8, bool use_amx, bool panel16, const G& g, int64_t K,
                               int64_t N, const uint8_t* bq = nullptr,
                               const uint8_t* gmap = nullptr) {
  auto sb = std::make_shared<SepB>();
  sb->narrow = use8, sb->amx = use8 && use_amx, sb->K = K, sb->N = N;
  if (sb->narrow && sb->amx) {
    const int64_t Kp = RoundUp(std::max<int64_t>(K, 1), 64);
    const int64_t ldg = RoundUp(std::max<int64_t>(N, 1), 32);
    sb->Kp = Kp, sb->ldg = ldg;
    sb->gb8.assign(Kp * ldg, 0);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n)
        sb->gb8[((k >> 2) * ldg + n) * 4 + (k & 3)] =
            bq ? static_cast<int8_t>(gmap ? gmap[bq[k * N + n]] : bq[k * N + n])
               : static_cast<int8_t>(g(k, n));
  } else if (sb->narrow) {
    const int64_t Kp = RoundUp(std::max<int64_t>(K, 1), 4);
    const int64_t ldg = RoundUp(std::max<int64_t>(N, 1), 64);
    sb->Kp = Kp, sb->ldg = ldg, sb->panel = Kp * 64;
    sb->gb8.assign(Kp * ldg, 0);
    uint8_t* out = reinterpret_cast<uint8_t*>(sb->gb8.data());
    if (bq) {
      std::vector<uint8_t> bm(K * ldg, 0);
      for (int64_t k = 0; k < K; ++k) {
        if (gmap) MapBytesVbmi(gmap, bq + k * N, N, &bm[k * ldg]);
        else std::memcpy(&bm[k * ldg], bq + k * N, N);
      }
      for (int64_t n0 = 0; n0 < ldg; n0 += 64)
        InterleaveQuads(bm.data() + n0, ldg, K, Kp, 64, out + (n0 / 64) * sb->panel);
    } else {
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
          out[(n / 64) * sb->panel + ((k >> 2) * 64 + n % 64) * 4 + (k & 3)] =
              static_cast<uint8_t>(static_cast<int8_t>(g(k, n)));
    }
  } else {
    const int64_t Kp = RoundUp(std::max<int64_t>(K, 1), 2);
    sb->Kp = Kp;
    if (panel16) {
      const int64_t Np = RoundUp(std::max<int64_t>(N, 1), 64);
      sb->ldg = Np, sb->panel = Kp * 64;
      sb->gb16.assign(Kp * Np, 0);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
          sb->gb16[(n / 64) * sb->panel + ((k >> 1) * 64 + n % 64) * 2 + (k & 1)] =
              static_cast<int16_t>(g(k, n));
    } else {
      sb->ldg = N;
      sb->gb16.assign(Kp * N, 0);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
          sb->gb16[((k >> 1) * N + n) * 2 + (k & 1)] = static_cast<int16_t>(g(k, n));
    }
  }
  return sb;
}

// The activation side, packed per call, plus the problem over a SepB.
struct SepPack {
  const SepB& B;
  SepFn fn16 = nullptr;
  std::vector<uint8_t> fa8;
  std::vector<int16_t> fa16;
  Sep8Problem p8{};
  SepProblem p16{};

  // `rows`: when not null, F(m, k) == map[rows[m * K + k]] (u8 codes, map null: identity,
  // then used in place when K is a multiple of 4); rows are copied/mapped 64 bytes at a time.
  // With AMX, rows run in 32s (padded).
  template <typename F>
  SepPack(const SepB& b, SepFn fn, const F& f, int64_t M, const int32_t* corr, int32_t* y,
          int64_t ldy_m, int64_t ldy_n, const uint8_t* rows = nullptr,
          const uint8_t* map = nullptr)
      : B(b), fn16(fn) {
    const int64_t K = B.K, N = B.N, Kp = B.Kp;
    if (B.narrow) {
      const int64_t Mp = B.amx ? RoundUp(M, 32) : M;
      const uint8_t* fa = rows;
      if (!rows || Kp != K || map || Mp != M) {
        fa8.assign(Mp * Kp, 0);
        if (rows && map) {
          for (int64_t m = 0; m < M; ++m) MapBytesVbmi(map, rows + m * K, K, &fa8[m * Kp]);
        } else if (rows) {
          for (int64_t m = 0; m < M; ++m) std::memcpy(&fa8[m * Kp], rows + m * K, K);
        } else {
          for (int64_t m = 0; m < M; ++m)
            for (int64_t k = 0; k < K; ++k) fa8[m * Kp + k] = static_cast<uint8_t>(f(m, k));
        }
        fa = fa8.data();
      }
      p8 = {fa, Kp, B.gb8.data(), N, B.ldg, corr, y, ldy_m, ldy_n, B.panel};
    } else {
      fa16.assign(M * Kp, 0);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k) fa16[m * Kp + k] = static_cast<int16_t>(f(m, k));
      p16 = {fa16.data(), Kp, B.gb16.data(), N, corr, y, ldy_m, ldy_n, B.panel};
    }
  }
  int64_t RowUnit() const { return B.amx ? 32 : 4; }  // row ranges must start at multiples
  void Run(int64_t m0, int64_t m1) const {
    if (B.amx) Sep8GemmAmx(p8, m0, m1);
    else if (B.narrow) Sep8GemmVnni(p8, m0, m1);
    else fn16(p16, m0, m1);
  }
  void RunAll(int64_t M, const ParFn& par) const {
    const int64_t u = RowUnit();
    par((M + u - 1) / u, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, B.K * B.N * u / 4)),
        [&](int64_t b0, int64_t b1) { Run(b0 * u, std::min(M, b1 * u)); });
  }
};

// Runs Y = LUT-GEMM over `M` rows of activations: a(m, k) gives codes (separable path) and
// at[k][m] is the transposed copy padded to kMBlock (general path). `b` is uint8 [K][N].
struct GemmRunner {
  const Prepared& prep;
  Kernels k;
  bool k_isa_sep;  // the separable path is used (not on the portable ISA)
  bool avx512;     // k.sep is an AVX-512 kernel (reads SepProblem::panel)

  // The weight side the Sep / General paths need (null when General needs none).
  std::shared_ptr<SepB> PackB(const uint8_t* b, int64_t K, int64_t N) const {
    if (prep.sep.ok && k_isa_sep) {
      const bool narrow = k.sep8 && NarrowFor(prep, b, K * N);
      const int16_t* g = narrow ? prep.g8.data() : prep.sep.g.data();
      return MakeSepB(narrow, k.amx, avx512, [&](int64_t kk, int64_t n) { return g[b[kk * N + n]]; }, K,
                      N, k.vbmi && narrow ? b : nullptr, prep.g8u.data());
    }
    if (k.planes && prep.base_exact)  // base f(a) = a, g(b) = int8(b)
      return MakeSepB(k.sep8, k.amx, avx512, [&](int64_t kk, int64_t n) { return int8_t(b[kk * N + n]); },
                      K, N, k.vbmi && k.sep8 ? b : nullptr, nullptr);
    return nullptr;
  }

  // Separable: Y = f(A) . g(B) exactly (sb from PackB).
  // `rows`: the codes row-major [M][K] when the caller has them (matmul), else null.
  template <typename A>
  void Sep(const SepB& sb, const A& a, int64_t M, const int32_t* corr, int32_t* y, int64_t ldy_m,
           int64_t ldy_n, const ParFn& par, const uint8_t* rows = nullptr) const {
    const bool narrow = sb.narrow;
    const int16_t* f = narrow ? prep.f8.data() : prep.sep.f.data();
    const SepPack sp(sb, k.sep, [&](int64_t m, int64_t kk) { return f[a(m, kk)]; }, M, corr, y,
                     ldy_m, ldy_n, narrow && (prep.f8_identity || k.vbmi) ? rows : nullptr,
                     prep.f8_identity ? nullptr : prep.f8u.data());
    sp.RunAll(M, par);
  }

  // General LUT: gather GEMM, or (k.planes) the exact-product base as a separable GEMM plus
  // the byte-plane GEMM of the remainder, both per block of kMBlock rows. `sb`: PackB's.
  void General(const SepB* sb, const uint8_t* at, int64_t ld_at, int64_t M, int64_t K,
               const uint8_t* b, int64_t N, const int32_t* corr, int32_t* y, int64_t ldy_m,
               int64_t ldy_n, const ParFn& par, const uint8_t* rows = nullptr,
               const uint8_t* swapped_b = nullptr) const {
    const int64_t blocks = (M + kMBlock - 1) / kMBlock;
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, K * N));
    if (!k.planes) {
      GemmProblem p{prep.lut_t.data(), at, ld_at, b, K, N, corr, y, ldy_m, ldy_n};
      return par(blocks, grain, [&](int64_t b0, int64_t b1) {
        k.gemm(p, b0 * kMBlock, std::min(M, b1 * kMBlock));
      });
    }
    const bool base = prep.base_exact;
    if (base) {
      const SepPack sp(*sb, k.sep, [&](int64_t m, int64_t kk) { return at[kk * ld_at + m]; }, M,
                       corr, y, ldy_m, ldy_n, rows, nullptr);
      sp.RunAll(M, par);
    }
    Planes(at, ld_at, M, K, b, N, base ? nullptr : corr, base, y, ldy_m, ldy_n, par, swapped_b);
  }

  // The byte-plane part alone: y (+)= sum_k E(a, b) + K * bias - corr.
  // PlaneGemmVbmi loads one code's tables once per pass of up to kPlaneRows rows and fills
  // 64-row vectors, so few rows waste it: an 8x8 output (64 rows) reloads the tables for every
  // 64 lookups, a matmul at batch 1 uses 1 lane in 64. There the roles swap: the weight
  // columns become the rows (looked up by weight code in Prepared::by_activation) and the
  // activation rows the columns; the sums are the same integers, written transposed. In the
  // swapped orientation, steps whose table is constant are skipped and those whose table is
  // narrow take one plane (PlaneTables::skip / narrow): activations at the zero point or at
  // small codes, after ReLU most of them, which can make swapping worth it for large outputs
  // too; the choice counts them.
  // `swapped_b`: SwappedCodes of b when packed (else converted here when needed).
  void Planes(const uint8_t* at, int64_t ld_at, int64_t M, int64_t K, const uint8_t* b,
              int64_t N, const int32_t* corr, bool accumulate, int32_t* y, int64_t ldy_m,
              int64_t ldy_n, const ParFn& par, const uint8_t* swapped_b = nullptr) const {
    const int32_t add = static_cast<int32_t>(static_cast<uint32_t>(K) * static_cast<uint32_t>(prep.bias));
    // Relative cost per step of a column (measured on VGG-small and the Fashion-MNIST CNN):
    // one per 64-row block, two per table load (once per pass of up to kPlaneRows / 64
    // blocks); a narrow step 0.6 of the blocks and, for odd-symmetric tables (half the
    // bytes), one per table load; building the step lists ~0.2 per step of K. Walking a
    // list costs about what reading every step's code does.
    auto per_step = [](int64_t rows, double block_share, double load = 2.0) {
      const int64_t blocks = (rows + kMBlock - 1) / kMBlock;
      const int64_t passes = (blocks + kPlaneRows / kMBlock - 1) / (kPlaneRows / kMBlock);
      return double(blocks) * block_share + load * double(passes);
    };
    // One orientation: the tables of `side`, selected by codes[k * ld + c] for `cols` columns
    // over `rows` rows. For the listed side, the shares of skipped and narrow steps are estimated
    // from a sample of k rows (~1 Ki codes, a few µs: counting them all would cost as much as
    // the lookups when the other side is small, e.g. the weights of a batch-1 matmul); lists
    // are used when either is at least 1/8. Only the swapped orientation lists: the codes
    // that select its tables are activations (zeros and small codes under ReLU); weights
    // rarely skip enough to pay for the lists (measured slower on the Fashion-MNIST CNN).
    struct Choice {
      PlaneTables t;
      double cost;
    };
    auto orientation = [&](const Prepared::PlaneSide& side, const uint8_t* codes, int64_t ld,
                           int64_t rows, int64_t cols) {
      Choice c{{side.planes.data(), prep.planes_p, prep.top_steps, nullptr, side.skip_value,
                nullptr, side.narrow_top_steps,
                side.sign_magnitude ? side.narrow_c.data() : nullptr, side.step_flags.data(),
                side.narrow_lo_bytes.data(), side.narrow_lo_planes},
               double(K * cols) * per_step(rows, 1.0)};
      if (!(side.any_skip || side.any_narrow) || K * cols == 0) return c;
      const int64_t stride = std::max<int64_t>(1, K * cols / 1024);
      int64_t seen = 0, skipped = 0, narrowed = 0;
      for (int64_t kk = 0; kk < K; kk += stride, seen += cols)
        for (int64_t j = 0; j < cols; ++j) {
          const uint8_t code = codes[kk * ld + j];
          skipped += side.skip[code], narrowed += side.is_narrow[code];
        }
      const double skip = double(skipped) / double(seen), narrow = double(narrowed) / double(seen);
      if (skip < 0.125 && narrow < 0.125) return c;
      c.t.skip = side.any_skip ? side.skip.data() : nullptr;
      c.t.narrow = side.any_narrow ? side.narrow.data() : nullptr;
      const double wide = 1.0 - skip - (c.t.narrow ? narrow : 0.0);
      c.cost = double(K * cols) * (wide * per_step(rows, 1.0) +
                                   (c.t.narrow ? narrow * per_step(rows, 0.6, c.t.narrow_c ? 1.0 : 2.0) : 0.0) +
                                   0.2);  // + building the lists (every step of K)
      return c;
    };
    const Choice normal = orientation(prep.by_weight, b, N, M, N);
    const Choice swapped = orientation(prep.by_activation, at, ld_at, N, M);
    std::vector<uint8_t> b_padded;
    PlaneProblem pp{normal.t, at, ld_at, b, K, N, corr, false, add, accumulate, y, ldy_m, ldy_n};
    int64_t rows = M, cols = N;
    if (swapped.cost < normal.cost) {
      // Weight rows are read in whole 64-code vectors: pad them when N is not a multiple;
      // sign-magnitude codes for odd-symmetric tables.
      const int64_t Np = RoundUp(N, kMBlock);
      if (!swapped_b && (Np != N || prep.by_activation.sign_magnitude)) {
        b_padded = SwappedCodes(prep, true, b, K, N);
        swapped_b = b_padded.data();
      }
      pp = PlaneProblem{swapped.t, swapped_b ? swapped_b : b, Np, at, K, ld_at, corr, true,
                        add, accumulate, y, ldy_n, ldy_m};
      rows = N, cols = M;
    }
    // Tasks: column chunks x passes of kPlaneRows rows (each table load serves them all);
    // several chunks per pass when passes are few, so threads still have work. A thread's
    // consecutive passes of one chunk run as one call, up to kMergedPasses of them: the step
    // lists of its columns (PlaneGemmVbmi) are built once for all its rows, whose sums it
    // keeps (64 columns x 4 bytes per row: 512 KiB at the cap, however many rows the output
    // has). Listed chunks are whole 64-column groups (the lists are built 64 columns at a
    // time).
    const int64_t passes = (rows + kPlaneRows - 1) / kPlaneRows;
    const int64_t unit = pp.t.skip || pp.t.narrow ? kMBlock : 1;
    const int64_t nchunks = std::min<int64_t>((cols + unit - 1) / unit, std::max<int64_t>(1, 16 / passes));
    const int64_t ncs = RoundUp((cols + nchunks - 1) / nchunks, unit);
    const int64_t work = std::min(rows, kPlaneRows) * K * ncs;  // products per task
    par(passes * nchunks, std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, work)),
        [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1;) {
            const int64_t n0 = (t / passes) * ncs, first = t % passes;
            constexpr int64_t kMergedPasses = 8;
            const int64_t last = std::min({passes, first + (t1 - t), first + kMergedPasses});
            if (n0 < cols)
              PlaneGemmVbmi(pp, first * kPlaneRows, std::min(rows, last * kPlaneRows), n0,
                            std::min(cols, n0 + ncs));
            t += last - first;
          }
        });
  }
};

std::shared_ptr<Prepared> BuildPrepared(const int32_t* lut) {
  auto p = std::make_shared<Prepared>();
  p->lut.assign(lut, lut + kLutSize);
  p->lut_t.resize(kLutSize);
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b) p->lut_t[b * 256 + a] = lut[a * 256 + b];
  p->sep = FactorLut(lut);
  if (p->sep.ok) NarrowFactors(*p);
  PreparePlanes(*p);
  return p;
}

// FNV-1a over the 256 KiB table, 8 bytes at a time: the cache key (equality is checked).
uint64_t HashLut(const int32_t* lut) {
  uint64_t h = 1469598103934665603ull;
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(lut);
  for (int64_t i = 0; i < kLutSize * 4; i += 8) {
    uint64_t v;
    std::memcpy(&v, bytes + i, 8);
    h = (h ^ v) * 1099511628211ull;
  }
  return h;
}

std::mutex g_cache_mu;
std::multimap<uint64_t, std::weak_ptr<const Prepared>> g_cache;  // guarded by g_cache_mu
std::atomic<int64_t> g_preparations{0};
// The most recently used preparations stay alive even when no node holds them, so that
// calls which do not keep one (the training front end) do not rebuild it every time.
constexpr size_t kKeepRecent = 8;
std::deque<std::shared_ptr<const Prepared>> g_recent;  // guarded by g_cache_mu

void KeepRecent(const std::shared_ptr<const Prepared>& p) {  // g_cache_mu held
  auto it = std::find(g_recent.begin(), g_recent.end(), p);
  if (it != g_recent.end()) g_recent.erase(it);
  g_recent.push_front(p);
  if (g_recent.size() > kKeepRecent) g_recent.pop_back();
}

// Output range [lo, hi) of one axis whose taps (o * s - pad + k * d, k < KS) can touch the
// input [0, n): outside it every tap is padding.
std::pair<int64_t, int64_t> TouchingRange(int64_t n, int64_t pad, int64_t s, int64_t d, int64_t KS,
                                          int64_t out) {
  const int64_t first = pad - (KS - 1) * d;  // o * s >= first
  int64_t lo = first <= 0 ? 0 : (first + s - 1) / s;
  int64_t hi = (n - 1 + pad) < 0 ? 0 : (n - 1 + pad) / s + 1;  // o * s <= n - 1 + pad
  lo = std::min(lo, out);
  return {lo, std::max(lo, std::min(hi, out))};
}

// The output rows [oh0, oh1) and columns [ow0, ow1) whose taps touch the input; whole: all
// of the output (Conv then runs ConvCore on it directly).
struct TouchingWindow {
  int64_t oh0, oh1, ow0, ow1;
  bool whole;
};
TouchingWindow Touching(const ConvShape& s) {
  const auto [oh0, oh1] = TouchingRange(s.H, s.pt, s.sh, s.dh, s.KH, s.OH);
  const auto [ow0, ow1] = TouchingRange(s.W, s.pl, s.sw, s.dw, s.KW, s.OW);
  return {oh0, oh1, ow0, ow1, oh0 == 0 && oh1 == s.OH && ow0 == 0 && ow1 == s.OW};
}

// Depthwise (group == C == C_out): per plane, per tap, gather-accumulate a LUT row over
// the valid output columns; out-of-image taps add LUT[zp][w] (the padding code).
void Depthwise(const Kernels& kern, const Prepared& prep, const ConvShape& s, const uint8_t* xp,
               const int8_t* wp, const std::vector<int32_t>& corr, int32_t* y, int32_t zp,
               const ParFn& par) {
  const int64_t C = s.C, H = s.H, Wd = s.W, KH = s.KH, KW = s.KW, OH = s.OH, OW = s.OW;
  par(s.NB * C, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t pc = p0; pc < p1; ++pc) {
      const int64_t c = pc % C;
      const uint8_t* plane = xp + pc * H * Wd;
      int32_t* yo = y + pc * OH * OW;
      std::fill(yo, yo + OH * OW, 0);
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw) {
          const uint8_t wb = static_cast<uint8_t>(wp[(c * KH + kh) * KW + kw]);
          const int32_t* row = prep.lut_t.data() + int64_t(wb) * 256;
          const uint32_t pad_val = static_cast<uint32_t>(row[zp]);
          const int64_t off = kw * s.dw - s.pl;  // iw = ow * sw + off
          const auto [lo, hi] = ValidColumns(off, s.sw, Wd, OW);
          for (int64_t oh = 0; oh < OH; ++oh) {
            const int64_t ih = oh * s.sh - s.pt + kh * s.dh;
            int32_t* acc = yo + oh * OW;
            auto add_pad = [&](int64_t a, int64_t b) {
              for (int64_t i = a; i < b; ++i)
                acc[i] = static_cast<int32_t>(static_cast<uint32_t>(acc[i]) + pad_val);
            };
            if (ih < 0 || ih >= H) { add_pad(0, OW); continue; }
            add_pad(0, lo);
            if (hi > lo) kern.gather(row, plane + ih * Wd + lo * s.sw + off, s.sw, hi - lo, acc + lo);
            add_pad(hi, OW);
          }
        }
      const uint32_t cc = static_cast<uint32_t>(corr[c]);
      for (int64_t i = 0; i < OH * OW; ++i)
        yo[i] = static_cast<int32_t>(static_cast<uint32_t>(yo[i]) - cc);
    }
  });
}

// General-LUT matmuls with at most this many rows gather along columns instead (MatMul).
constexpr int64_t kGatherRows = 4;

// im2col scratch per block of output rows: about this many bytes (at least one row).
constexpr int64_t kColsBudget = int64_t(4) << 20;

// A buffer of at least `bytes` owned by the calling thread (slot 0 or 1), kept for its next
// call; at most the largest request per slot stays allocated (bounded by kColsBudget-sized
// blocks for the conv).
uint8_t* ThreadScratch(int slot, int64_t bytes) {
  thread_local std::vector<uint8_t> buf[2];
  if (static_cast<int64_t>(buf[slot].size()) < bytes) {
    buf[slot] = std::vector<uint8_t>();  // release before growing: no two copies alive
    buf[slot].resize(static_cast<size_t>(bytes));
  }
  return buf[slot].data();
}

bool IsDepthwise(const ConvShape& s) { return s.group == s.C && s.Co == s.C && s.C > 1; }

std::vector<int32_t> Correction(const std::vector<int32_t>& wsum, int32_t zp) {
  std::vector<int32_t> corr(wsum.size());
  for (size_t i = 0; i < wsum.size(); ++i)
    corr[i] = static_cast<int32_t>(static_cast<uint32_t>(wsum[i]) * static_cast<uint32_t>(zp));
  return corr;
}

// ConvToCodes's output stage, run by the channel-quad path's tiles (Sep8TCodes).
struct ConvCodes {
  RequantParams q;
  bool pool2x2;
  uint8_t* y;  // [NB, Co, OH, OW], or [NB, Co, OH / 2, OW / 2] pooled
};

// The conv over an output window whose rows/columns all touch the input (Conv handles the
// all-padding border). With `codes` (only where FusesCodes), y is unused and the codes are
// written instead.
void ConvCore(const Prepared& prep, const KernelVariants& variants, const ConvShape& s,
              const uint8_t* xp, const int8_t* wp, int32_t zp, int32_t* y, const ParFn& par,
              const ConvWeights& cw, const ConvCodes* codes = nullptr) {
  const Isa isa = variants.isa;
  const Kernels kern = PickKernels(variants);
  const int64_t C = s.C, H = s.H, Wd = s.W, Co = s.Co, Cg = s.Cg, KH = s.KH, KW = s.KW;
  const int64_t OH = s.OH, OW = s.OW, group = s.group;
  const int64_t Og = Co / group, Kg = Cg * KH * KW, L = OH * OW;
  // corr[co] = zp * sum over the filter's taps (padded taps included: they are code zp).
  const std::vector<int32_t> corr = Correction(cw.wsum, zp);
  if (IsDepthwise(s)) return Depthwise(kern, prep, s, xp, wp, corr, y, zp, par);

  const bool sep = cw.sep, use_t8 = cw.use_t8;
  // Channel-quad path (ConvWeights::x4): Conv() hands "same" windows only (OW == W).
  const bool x4 = cw.x4;
  const int64_t Cq = cw.Cq;
  const int64_t Kp = x4 ? KH * KW * Cq * 4 : RoundUp(Kg, 4);
  // Output rows per block: im2col of a block is Kp x (rows * OW) bytes.
  // A fused pool pairs rows inside 64-lane panels: blocks of whole panels (64 / OW rows).
  const int64_t panel_rows = codes && codes->pool2x2 ? kMBlock / OW : 1;
  const int64_t rows_per_block = std::max(
      panel_rows,
      std::clamp<int64_t>(kColsBudget / std::max<int64_t>(1, Kp * OW), 1, OH) / panel_rows * panel_rows);
  const int64_t blocks = (OH + rows_per_block - 1) / rows_per_block;
  const int64_t Lmax = RoundUp(rows_per_block * OW, kMBlock);
  // x4: the block's input rows as [Cq][guard + rows * W + guard] pixels of 4 channel bytes.
  // Guards keep every read of a panel in the buffer: up to pl pixels before the first row and
  // pr + 63 (the last panel's spare lanes) after the last.
  const int64_t guard = std::max(s.pl, s.pr) + kMBlock;
  const int64_t x4_rows = rows_per_block + (KH - 1) * s.dh;
  const int64_t x4_plane = x4_rows * Wd + 2 * guard;  // pixels
  // im2col of one (image, group, output rows [oh0, oh1)): cols[k][l], padded taps = zp,
  // padding columns = 0. Per (tap, output row) the in-image columns are one strided run.
  auto im2col = [&](int64_t n, int64_t g, int64_t oh0, int64_t oh1, int64_t Lp, uint8_t* cols) {
    const uint8_t zc = static_cast<uint8_t>(zp);
    const int64_t Lb = (oh1 - oh0) * OW;
    for (int64_t c = 0; c < Cg; ++c) {
      const uint8_t* plane = xp + (n * C + g * Cg + c) * H * Wd;
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw) {
          uint8_t* row = cols + ((c * KH + kh) * KW + kw) * Lp;
          const int64_t off = kw * s.dw - s.pl;  // iw = ow * sw + off
          const auto [lo, hi] = ValidColumns(off, s.sw, Wd, OW);
          if (s.sw == 1 && s.sh == 1 && OW == Wd) {
            // Unit strides, output as wide as the input ("same" convs): consecutive output
            // rows read consecutive input rows at the same offset, so all in-image rows are
            // one copy; the columns it wraps into (outside [lo, hi)) are then reset to zp.
            // Per-row copies of OW bytes cost more in call overhead than in bytes here.
            const int64_t ih0 = kh * s.dh - s.pt;  // ih = oh + ih0
            const int64_t a = std::clamp<int64_t>(-ih0, oh0, oh1);
            const int64_t b = std::clamp<int64_t>(H - ih0, a, oh1);
            std::memset(row, zc, (a - oh0) * OW);
            std::memset(row + (b - oh0) * OW, zc, (oh1 - b) * OW);
            if (b > a && hi > lo) {
              std::memcpy(row + (a - oh0) * OW + lo, plane + (a + ih0) * Wd + lo + off,
                          (b - 1 - a) * OW + (hi - lo));
              for (int64_t oh = a; oh < b; ++oh) {
                uint8_t* r = row + (oh - oh0) * OW;
                for (int64_t ow = 0; ow < lo; ++ow) r[ow] = zc;
                for (int64_t ow = hi; ow < OW; ++ow) r[ow] = zc;
              }
            } else if (b > a) {
              std::memset(row + (a - oh0) * OW, zc, (b - a) * OW);
            }
            std::fill(row + Lb, row + Lp, 0);
            continue;
          }
          for (int64_t oh = oh0; oh < oh1; ++oh) {
            const int64_t ih = oh * s.sh - s.pt + kh * s.dh;
            uint8_t* r = row + (oh - oh0) * OW;
            if (ih < 0 || ih >= H) { std::memset(r, zc, OW); continue; }
            std::memset(r, zc, lo);
            if (hi > lo) {  // then lo * sw + off is inside the image row
              const uint8_t* src = plane + ih * Wd + (lo * s.sw + off);
              if (s.sw == 1) std::memcpy(r + lo, src, hi - lo);
              else for (int64_t ow = lo; ow < hi; ++ow) r[ow] = src[(ow - lo) * s.sw];
            }
            std::memset(r + hi, zc, OW - hi);
          }
          std::fill(row + Lb, row + Lp, 0);
        }
    }
  };
  // x4 block input: X4[cq][guard + r * W + iw][j] = f(code of channel 4cq + j at input row
  // oh0 - pt + r) (rows outside the image, guards: f(zp); channels beyond Cg: 0, their
  // weights are 0), and the panels: quad q = (kh * KW + kw) * Cq + cq of lane l is pixel
  // l + kh*dh*W + kw*dw - pl of plane cq (OW == W makes a panel one run), with the lanes
  // whose column falls outside the image reset to f(zp). (f8u exists only for narrow
  // separable LUTs, the x4 path's.)
  const uint8_t* x4_map = x4 && sep && !prep.f8_identity ? prep.f8u.data() : nullptr;
  const uint8_t x4_fill = x4_map ? x4_map[static_cast<uint8_t>(zp)] : static_cast<uint8_t>(zp);
  auto x4_planes = [&](int64_t n, int64_t g, int64_t oh0, int64_t oh1, uint8_t* buf) {
    const int64_t rows = (oh1 - oh0) + (KH - 1) * s.dh;
    for (int64_t cq = 0; cq < Cq; ++cq) {
      uint8_t* plane = buf + cq * x4_plane * 4;
      std::memset(plane, x4_fill, guard * 4);
      std::memset(plane + (guard + rows * Wd) * 4, x4_fill, (x4_plane - guard - rows * Wd) * 4);
      // rows [ra, rb) lie in the image: one run of (rb - ra) * W pixels per channel
      const int64_t ra = std::clamp<int64_t>(s.pt - oh0, 0, rows);
      const int64_t rb = std::clamp<int64_t>(H + s.pt - oh0, ra, rows);
      std::memset(plane + guard * 4, x4_fill, ra * Wd * 4);
      std::memset(plane + (guard + rb * Wd) * 4, x4_fill, (rows - rb) * Wd * 4);
      const int64_t k4 = std::min<int64_t>(4, Cg - 4 * cq), npix = (rb - ra) * Wd;
      if (npix == 0) continue;
      // one pass: interleaved and mapped (a separate map over the buffer and 16-pixel SSE
      // steps took 1.4 % of VGG-small with DRUM at batch 16)
      InterleaveQuadsMapVbmi(xp + ((n * C + g * Cg + 4 * cq) * H + (oh0 - s.pt + ra)) * Wd, H * Wd,
                             k4, npix, x4_map, plane + (guard + ra * Wd) * 4);
    }
  };
  // The taps of the 64-lane panel at lane l0 (Lb lanes in the block): where its lanes of each
  // channel quad lie in the quad planes (tap_off) and which lanes read them in place (bit j
  // of keep[tap]: lane l0 + j's column is inside the image for that tap, or the lane is
  // padding past Lb, never stored); the others read f(zp) (Sep8TProblem::x4).
  struct X4Taps {
    int64_t tap_off[kMaxX4Taps];
    uint64_t keep[kMaxX4Taps];
  };
  auto x4_taps = [&](int64_t l0, int64_t Lb, X4Taps& xt) {
    int64_t* tap_off = xt.tap_off;
    uint64_t* keep = xt.keep;
    for (int64_t kh = 0; kh < KH; ++kh)
      for (int64_t kw = 0; kw < KW; ++kw) {
        const int64_t t = kh * KW + kw;
        tap_off[t] = (guard + l0 + kh * s.dh * Wd + kw * s.dw - s.pl) * 4;
        const auto [lo, hi] = ValidColumns(kw * s.dw - s.pl, 1, Wd, OW);
        keep[t] = ~uint64_t{0};
        if (lo == 0 && hi == OW) continue;
        for (int64_t rs = l0 - l0 % OW; rs < std::min(l0 + 64, Lb); rs += OW)  // rows in the panel
          for (const auto& [c0, c1] : {ColRange{rs, rs + lo}, ColRange{rs + hi, rs + OW}})
            for (int64_t l = std::max(c0, l0); l < std::min(c1, l0 + 64); ++l)
              keep[t] &= ~(uint64_t{1} << (l - l0));
      }
  };
  struct Scratch {
    uint8_t *cols, *aq;
  };
  auto one = [&](int64_t n, int64_t g, int64_t blk, Scratch& sc, bool inner_parallel) {
    const int64_t oh0 = blk * rows_per_block, oh1 = std::min(OH, oh0 + rows_per_block);
    const int64_t Lb = (oh1 - oh0) * OW, Lp = RoundUp(Lb, kMBlock);
    uint8_t* cols = sc.cols;
    if (x4) x4_planes(n, g, oh0, oh1, cols);
    else im2col(n, g, oh0, oh1, Lp, cols);
    int32_t* yg = y ? y + (n * Co + g * Og) * L + oh0 * OW : nullptr;  // channel stride L
    const uint8_t* bg = cw.bt.empty() ? nullptr : cw.bt.data() + g * Kg * Og;
    const uint8_t* sg = cw.swapped.empty() ? nullptr : cw.swapped.data() + g * Kg * RoundUp(Og, kMBlock);
    const int32_t* cg = corr.data() + g * Og;
    auto serial = [](int64_t cnt, int64_t, const std::function<void(int64_t, int64_t)>& fn) { fn(0, cnt); };
    const ParFn inner = inner_parallel ? par : ParFn(serial);
    const GemmRunner run{prep, kern, isa != Isa::kPortable, isa == Isa::kAvx512};
    if (use_t8 && x4) {
      // Panel by panel, each read in place from the channel-quad planes (Sep8TProblem::x4:
      // copying each panel first cost 1.3 % of VGG-small). Threads split the panels: a
      // parallel region per panel over its channel blocks cost more in hand-offs than the
      // panel at 2 threads (cnn28 at batch 1: 0.25x ORT int8 instead of 0.9x), unless there
      // are too few panels to go round.
      const int64_t npanels = (Lb + 63) / 64;
      // Codes of channel g * Og of image n from this block's first pixel (4 pixels pooled to 1).
      const int64_t code_div = codes && codes->pool2x2 ? 4 : 1, code_plane = L / code_div;
      auto panel_problem = [&](int64_t l0, X4Taps& xt, X4Source& src, Sep8TCodes& out) {
        x4_taps(l0, Lb, xt);
        src = X4Source{cols, xt.tap_off, xt.keep, KH * KW, Cq, x4_plane * 4, x4_fill};
        Sep8TProblem tp{nullptr, 64, Kp, cw.wq.data() + g * Og * Kp, std::min<int64_t>(64, Lb - l0),
                        Og, cg, yg ? yg + l0 : nullptr, L, 0};
        tp.x4 = &src;
        if (codes) {
          RequantParams q = codes->q;
          q.bias += g * Og;
          if (q.per_channel) q.mult += g * Og;
          out = Sep8TCodes{q, codes->y + (n * Co + g * Og) * code_plane + (oh0 * OW + l0) / code_div,
                           code_plane, codes->pool2x2 ? OW : 0};
          tp.codes = &out;
        }
        return tp;
      };
      auto panels = [&](int64_t p0, int64_t p1) {
        X4Taps xt;
        X4Source src;
        Sep8TCodes out;
        for (int64_t pi = p0; pi < p1; ++pi) Sep8TGemmVnni(panel_problem(pi * 64, xt, src, out), 0, Og);
      };
      if (!inner_parallel) return panels(0, npanels);
      if (npanels >= 4) return par(npanels, 1, panels);
      // few panels (an 8x8 output is one): threads split each panel's channel blocks
      for (int64_t l0 = 0; l0 < Lb; l0 += 64) {
        X4Taps xt;
        X4Source src;
        Sep8TCodes out;
        const Sep8TProblem tp = panel_problem(l0, xt, src, out);
        par((Og + 5) / 6, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, 64 * Kp)),
            [&](int64_t b0, int64_t b1) { Sep8TGemmVnni(tp, b0 * 6, std::min(Og, b1 * 6)); });
      }
      return;
    }
    if (use_t8) {
      uint8_t* aq = sc.aq;
      if (!x4) {
        if (sep && !prep.f8_identity)
          for (int64_t k = 0; k < Kg; ++k) MapBytesVbmi(prep.f8u.data(), cols + k * Lp, Lp, cols + k * Lp);
        // 64-lane panels, each contiguous (Sep8TProblem::panel)
        for (int64_t l0 = 0; l0 < Lp; l0 += 64)
          InterleaveQuads(cols + l0, Lp, Kg, Kp, 64, aq + (l0 / 64) * Kp * 64);
      }
      const Sep8TProblem tp{aq, Lp, Kp, cw.wq.data() + g * Og * Kp, Lb, Og, cg, yg, L, Kp * 64};
      // channel blocks of 6: Sep8TGemmVnni's widest tile
      inner((Og + 5) / 6, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, Lb * Kp)),
            [&](int64_t b0, int64_t b1) { Sep8TGemmVnni(tp, b0 * 6, std::min(Og, b1 * 6)); });
      if (!sep) run.Planes(cols, Lp, Lb, Kg, bg, Og, nullptr, true, yg, 1, L, inner, sg);
      return;
    }
    const SepB* sb = cw.sepb.empty() ? nullptr : cw.sepb[g].get();
    if (sep)
      return run.Sep(*sb, [&](int64_t m, int64_t k) { return cols[k * Lp + m]; }, Lb, cg, yg, 1,
                     L, inner);
    run.General(sb, cols, Lp, Lb, Kg, bg, Og, cg, yg, 1, L, inner, nullptr, sg);
  };
  // Per-thread buffers reused across calls: fresh multi-MiB buffers per call cost more in
  // page faults than the GEMM. Everything read from them is written first.
  auto scratch = [&]() {
    return Scratch{ThreadScratch(0, x4 ? Cq * x4_plane * 4 : Kg * Lmax),
                   use_t8 && !x4 ? ThreadScratch(1, Kp * Lmax) : nullptr};
  };
  const int64_t tasks = s.NB * group * blocks;
  if (tasks >= 4) {  // parallel over (image, group, row block), one scratch per chunk
    par(tasks, 1, [&](int64_t t0, int64_t t1) {
      Scratch sc = scratch();
      for (int64_t t = t0; t < t1; ++t)
        one(t / (group * blocks), (t / blocks) % group, t % blocks, sc, false);
    });
  } else {
    Scratch sc = scratch();
    for (int64_t t = 0; t < tasks; ++t)
      one(t / (group * blocks), (t / blocks) % group, t % blocks, sc, true);
  }
}
}  // namespace

std::vector<uint8_t> SwappedCodes(const Prepared& prep, bool planes, const uint8_t* b, int64_t K,
                                  int64_t N) {
  const int64_t Np = RoundUp(N, kMBlock);
  const bool sm = prep.by_activation.sign_magnitude;
  std::vector<uint8_t> out;
  if (!planes || prep.sep.ok || (Np == N && !sm)) return out;
  out.assign(K * Np, 0);
  for (int64_t k = 0; k < K; ++k) {
    if (sm) MapBytesVbmi(SignMagnitude().data(), b + k * N, N, out.data() + k * Np);
    else std::memcpy(out.data() + k * Np, b + k * N, N);
  }
  return out;
}

const std::array<uint8_t, 256>& SignMagnitude() {
  static const std::array<uint8_t, 256> table = [] {
    std::array<uint8_t, 256> t{};
    for (int u = 0; u < 256; ++u) t[u] = uint8_t(u <= 128 ? u : 384 - u);
    return t;
  }();
  return table;
}

std::shared_ptr<const Prepared> PrepareLut(const int32_t* lut) {
  {  // the common case: the table of the last call (one 256 KiB compare, no hash)
    std::lock_guard<std::mutex> lock(g_cache_mu);
    if (!g_recent.empty() && std::memcmp(g_recent.front()->lut.data(), lut, kLutSize * sizeof(int32_t)) == 0)
      return g_recent.front();
  }
  const uint64_t h = HashLut(lut);
  {
    std::lock_guard<std::mutex> lock(g_cache_mu);
    auto [b, e] = g_cache.equal_range(h);
    for (auto it = b; it != e; ++it)
      if (auto p = it->second.lock())
        if (std::memcmp(p->lut.data(), lut, kLutSize * sizeof(int32_t)) == 0) {
          KeepRecent(p);
          return p;
        }
  }
  // Built outside the lock (~ms); a concurrent builder of the same table may win the insert.
  std::shared_ptr<const Prepared> fresh = BuildPrepared(lut);
  g_preparations.fetch_add(1);
  std::lock_guard<std::mutex> lock(g_cache_mu);
  for (auto it = g_cache.begin(); it != g_cache.end();)  // drop expired entries
    it = it->second.expired() ? g_cache.erase(it) : std::next(it);
  auto [b, e] = g_cache.equal_range(h);
  for (auto it = b; it != e; ++it)
    if (auto p = it->second.lock())
      if (p->lut == fresh->lut) {
        KeepRecent(p);
        return p;
      }
  g_cache.emplace(h, fresh);
  KeepRecent(fresh);
  return fresh;
}

int64_t PreparationCount() { return g_preparations.load(); }

std::shared_ptr<const MatMulWeights> PackMatMulWeights(const Prepared& prep,
                                                       const KernelVariants& variants,
                                                       const int8_t* bs, int64_t K, int64_t N) {
  const Isa isa = variants.isa;
  auto pw = std::make_shared<MatMulWeights>();
  pw->K = K, pw->N = N;
  pw->wsum.resize(N);
  ColumnCorrection<true>(1, K, N, [&](int64_t k, int64_t n) { return bs[k * N + n]; }, pw->wsum.data());
  const GemmRunner run{prep, PickKernels(variants), isa != Isa::kPortable, isa == Isa::kAvx512};
  pw->sep = run.PackB(reinterpret_cast<const uint8_t*>(bs), K, N);
  pw->swapped = SwappedCodes(prep, run.k.planes, reinterpret_cast<const uint8_t*>(bs), K, N);
  return pw;
}

void MatMul(const Prepared& prep, const KernelVariants& variants, const uint8_t* ap, int64_t M,
            int64_t K, const int8_t* bs, int64_t N, int32_t zp, int32_t* y, const ParFn& par,
            const MatMulWeights* pw) {
  const Isa isa = variants.isa;
  std::shared_ptr<const MatMulWeights> local;
  if (!pw) local = PackMatMulWeights(prep, variants, bs, K, N), pw = local.get();
  const Kernels kern = PickKernels(variants);
  const uint8_t* bp = reinterpret_cast<const uint8_t*>(bs);
  const std::vector<int32_t> corr = Correction(pw->wsum, zp);
  const GemmRunner run{prep, kern, isa != Isa::kPortable, isa == Isa::kAvx512};
  if (prep.sep.ok && isa != Isa::kPortable)
    return run.Sep(*pw->sep, [&](int64_t m, int64_t k) { return ap[m * K + k]; }, M, corr.data(),
                   y, N, 1, par, ap);
  if (M <= kGatherRows && !kern.planes) {
    // Few rows (batch-1 linear layers): the row-blocked gather GEMM would compute kMBlock rows
    // to use M. Per row and k, gather LUT[a[m, k]][b[k, n]] over n from the LUT row of a[m, k]
    // (the depthwise kernel), threads over column chunks. (The byte-plane path swaps rows and
    // columns instead: GemmRunner::Planes.)
    constexpr int64_t kCols = 256;
    par(M * ((N + kCols - 1) / kCols), 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t chunks = (N + kCols - 1) / kCols, m = t / chunks, n0 = (t % chunks) * kCols;
        const int64_t nc = std::min(kCols, N - n0);
        int32_t* yr = y + m * N + n0;
        std::fill(yr, yr + nc, 0);
        for (int64_t k = 0; k < K; ++k)
          kern.gather(prep.lut.data() + int64_t(ap[m * K + k]) * 256, bp + k * N + n0, 1, nc, yr);
        for (int64_t j = 0; j < nc; ++j)
          yr[j] = static_cast<int32_t>(static_cast<uint32_t>(yr[j]) - static_cast<uint32_t>(corr[n0 + j]));
      }
    });
    return;
  }
  // Transposed, padded activations: at[k][m] (vector loads over m), in 64 x 64 tiles.
  const int64_t Mp = RoundUp(M, kMBlock);
  std::vector<uint8_t> at(K * Mp, 0);
  for (int64_t m0 = 0; m0 < M; m0 += 64)
    for (int64_t k0 = 0; k0 < K; k0 += 64) {
      const int64_t m1 = std::min(M, m0 + 64), k1 = std::min(K, k0 + 64);
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t m = m0; m < m1; ++m) at[k * Mp + m] = ap[m * K + k];
    }
  run.General(pw->sep.get(), at.data(), Mp, M, K, bp, N, corr.data(), y, N, 1, par, ap,
              pw->swapped.empty() ? nullptr : pw->swapped.data());
}

std::shared_ptr<const ConvWeights> PackConvWeights(const Prepared& prep,
                                                   const KernelVariants& variants,
                                                   const ConvShape& s, const int8_t* wp,
                                                   bool allow_x4) {
  const Isa isa = variants.isa;
  auto cw = std::make_shared<ConvWeights>();
  const int64_t group = s.group, Co = s.Co, Og = Co / group, Kg = s.Cg * s.KH * s.KW;
  cw->Co = Co, cw->Kg = Kg, cw->group = group;
  cw->wsum.resize(Co);
  ColumnCorrection(1, Kg, Co, [&](int64_t k, int64_t n) { return wp[n * Kg + k]; }, cw->wsum.data());
  if (IsDepthwise(s)) return cw;
  const Kernels kern = PickKernels(variants);
  cw->sep = prep.sep.ok && isa != Isa::kPortable;
  // VNNI + VBMI: the separable GEMM (or the exact base of a general LUT) runs transposed
  // on 4-row interleaved columns, writing NCHW rows directly; no im2row copy.
  cw->use_t8 = kern.sep8 && kern.vbmi &&
               (cw->sep ? NarrowFor(prep, reinterpret_cast<const uint8_t*>(wp), Co * Kg)
                        : kern.planes && prep.base_exact);
  // Weights per group transposed to [Kg][Og] (uint8 view); not needed by the t8 separable path.
  if (!(cw->use_t8 && cw->sep)) {
    cw->bt.resize(group * Kg * Og);
    for (int64_t g = 0; g < group; ++g)
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t o = 0; o < Og; ++o)
          cw->bt[(g * Kg + k) * Og + o] = static_cast<uint8_t>(wp[(g * Og + o) * Kg + k]);
    for (int64_t g = 0; g < group; ++g) {
      std::vector<uint8_t> sc = SwappedCodes(prep, kern.planes, cw->bt.data() + g * Kg * Og, Kg, Og);
      cw->swapped.insert(cw->swapped.end(), sc.begin(), sc.end());
    }
  }
  // Unit strides and pl + pr == dw * (KW - 1): every output row is as wide as the input
  // (OW == W for any W), so a panel is one run of a channel-quad plane (ConvCore x4_taps).
  // The block buffer holds (KH - 1) * dh input rows beyond the block's output rows and guards
  // of max(pl, pr) pixels: kept small so memory stays bounded by the im2col budget (huge
  // dilated kernels take the im2col path, which skips all-padding taps).
  cw->x4 = allow_x4 && cw->use_t8 && cw->sep && s.sh == 1 && s.sw == 1 &&
           s.pl + s.pr == s.dw * (s.KW - 1) && (s.KH - 1) * s.dh <= 32 &&
           (s.KW - 1) * s.dw <= 32 && s.KH * s.KW <= kMaxX4Taps;
  if (cw->x4) {
    const int64_t Cq = (s.Cg + 3) / 4, Kp = s.KH * s.KW * Cq * 4;
    cw->Cq = Cq;
    cw->wq.assign(Co * Kp, 0);
    for (int64_t co = 0; co < Co; ++co)
      for (int64_t c = 0; c < s.Cg; ++c)
        for (int64_t kh = 0; kh < s.KH; ++kh)
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int8_t wv = wp[co * Kg + (c * s.KH + kh) * s.KW + kw];
            cw->wq[co * Kp + ((kh * s.KW + kw) * Cq + c / 4) * 4 + c % 4] =
                static_cast<int8_t>(prep.g8[static_cast<uint8_t>(wv)]);
          }
  } else if (cw->use_t8) {
    const int64_t Kp = RoundUp(Kg, 4);
    cw->wq.assign(Co * Kp, 0);
    for (int64_t co = 0; co < Co; ++co) {
      const int8_t* src = wp + co * Kg;
      int8_t* dst = cw->wq.data() + co * Kp;
      if (cw->sep)
        for (int64_t k = 0; k < Kg; ++k) dst[k] = static_cast<int8_t>(prep.g8[static_cast<uint8_t>(src[k])]);
      else
        std::memcpy(dst, src, Kg);
    }
  } else {
    const GemmRunner run{prep, kern, isa != Isa::kPortable, isa == Isa::kAvx512};
    for (int64_t g = 0; g < group; ++g) cw->sepb.push_back(run.PackB(cw->bt.data() + g * Kg * Og, Kg, Og));
  }
  return cw;
}

bool FusesCodes(const ConvWeights& cw, const ConvShape& s, bool pool2x2) {
  // x4 takes "same" unit-stride convs (OW == W); Conv hands them to ConvCore whole unless
  // some output rows or columns see only padding.
  if (!cw.x4 || IsDepthwise(s) || !Touching(s).whole) return false;
  // the pool on whole 64-lane panels of whole rows (Sep8TCodes::pool_w)
  return !pool2x2 || ((s.OW == 8 || s.OW == 16 || s.OW == 32) && (s.OH * s.OW) % kMBlock == 0);
}

void ConvToCodes(const Prepared& prep, const KernelVariants& variants, const ConvShape& s,
                 const uint8_t* x, const int8_t* w, int32_t zp, const RequantParams& q,
                 bool pool2x2, uint8_t* y, const ParFn& par, const ConvWeights& cw) {
  const ConvCodes codes{q, pool2x2, y};
  ConvCore(prep, variants, s, x, w, zp, nullptr, par, cw, &codes);
}

void Conv(const Prepared& prep, const KernelVariants& variants, const ConvShape& s,
          const uint8_t* x, const int8_t* w, int32_t zp, int32_t* y, const ParFn& par,
          const ConvWeights* pw) {
  std::shared_ptr<const ConvWeights> local;
  if (!pw) local = PackConvWeights(prep, variants, s, w), pw = local.get();
  const auto [oh0, oh1, ow0, ow1, whole] = Touching(s);
  if (whole) return ConvCore(prep, variants, s, x, w, zp, y, par, *pw);
  // The inner window below is narrower than the input: the channel-quad layout needs
  // OW == W, so such (rare: dilated taps skipping a tiny image) calls use the im2col layout.
  if (pw->x4) local = PackConvWeights(prep, variants, s, w, false), pw = local.get();
  // Output pixels outside [oh0, oh1) x [ow0, ow1) see only padding (code zp): per channel
  // the constant sum_k LUT[zp, w_k] - zp * sum_k w_k. The window is a conv of its own with
  // shifted pads, computed into a buffer no larger than the output.
  const int64_t Kg = s.Cg * s.KH * s.KW, L = s.OH * s.OW;
  par(s.Co, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t co = c0; co < c1; ++co) {
      uint32_t v = 0;
      for (int64_t k = 0; k < Kg; ++k) {
        const int8_t wv = w[co * Kg + k];
        v += static_cast<uint32_t>(prep.lut[zp * 256 + static_cast<uint8_t>(wv)]) -
             static_cast<uint32_t>(zp) * static_cast<uint32_t>(int32_t(wv));
      }
      for (int64_t n = 0; n < s.NB; ++n)
        std::fill(y + (n * s.Co + co) * L, y + (n * s.Co + co + 1) * L, static_cast<int32_t>(v));
    }
  });
  if (oh1 <= oh0 || ow1 <= ow0) return;
  ConvShape inner = s;
  inner.OH = oh1 - oh0, inner.OW = ow1 - ow0;
  inner.pt = s.pt - oh0 * s.sh, inner.pl = s.pl - ow0 * s.sw;  // may be negative: fine
  inner.pb = inner.pr = 0;  // unused once OH/OW are set
  const int64_t Li = inner.OH * inner.OW;
  std::vector<int32_t> win(s.NB * s.Co * Li);
  ConvCore(prep, variants, inner, x, w, zp, win.data(), par, *pw);
  for (int64_t nc = 0; nc < s.NB * s.Co; ++nc)
    for (int64_t r = 0; r < inner.OH; ++r)
      std::memcpy(y + nc * L + (oh0 + r) * s.OW + ow0, win.data() + nc * Li + r * inner.OW,
                  inner.OW * sizeof(int32_t));
}

}  // namespace steport::approx
