// ai.steport.approx bindings: ApproxMatMulInteger, ApproxConvInteger (CPU), and the CUDA
// LUT GEMM for ApproxMatMulInteger. Semantics: docs/approx.md.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <mutex>
#include <string>

#include "core/approx/lut_gemm.h"
#include "core/common/cpu.h"
#include "steport/families.h"
#include "steport/spec.h"
#ifdef STEPORT_WITH_CUDA
#include "cuda/approx/lut_gemm.cuh"
#include "cuda/common.h"
#endif

namespace steport {
namespace {
namespace spec_mm = spec::approx::approx_mat_mul_integer;
namespace spec_conv = spec::approx::approx_conv_integer;

constexpr int64_t kLutSize = 65536;

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

// LUT input: int32, shape [256, 256] or [65536] (anything else would index out of bounds).
const int32_t* ReadLut(Ort::KernelContext& ctx, size_t i) {
  InputView l = GetInput(ctx, i, "lut");
  CheckType(l, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, "lut");
  const bool ok = (l.shape.size() == 2 && l.shape[0] == 256 && l.shape[1] == 256) ||
                  (l.shape.size() == 1 && l.shape[0] == kLutSize);
  Check(ok, "lut must be int32 [256, 256] (or [65536]), got shape ", ShapeStr(l.shape));
  return l.data<int32_t>();
}

// Optional uint8 scalar zero point (absent -> 0). Host-memory input.
int32_t ReadZeroPoint(Ort::KernelContext& ctx, size_t i, const char* name) {
  InputView z = GetOptionalInput(ctx, i, name);
  if (!z.present) return 0;
  CheckType(z, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, name);
  Check(z.shape.size() <= 1 && z.size() == 1, name, " must be a scalar (shape [] or [1]), got ",
        ShapeStr(z.shape));
  return *z.data<uint8_t>();
}

// Per-LUT preparation (transpose, separability test, byte planes), cached by content: a LUT
// is usually an initializer, so after the first call this is one 256 KiB compare.
struct Prepared {
  std::vector<int32_t> lut, lut_t;
  approx::Separable sep;
  // A rescaling of sep with f in [0, 255], g in [-128, 127] (u8 x s8 VNNI kernel), if any.
  bool sep_narrow = false, f8_identity = false;  // f8[a] == a: activations used as they are
  std::vector<int16_t> f8, g8;
  std::vector<uint8_t> f8u, g8u;  // f8, g8 as bytes (MapBytesVbmi tables)
  // Byte-plane form for PlaneGemmVbmi: LUT = base + bias + E, base = a * int8(b) when that
  // makes E narrower (approximate multipliers are close to the exact product), else 0.
  bool base_exact = false;
  int planes_p = 4;
  int32_t bias = 0;
  int top_steps = 1;  // PlaneProblem::top_steps
  std::vector<uint8_t> planes;  // [256 b][planes_p][256 a]
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
  for (int sign : {1, -1})
    for (int64_t c1 = 1; c1 <= 255; ++c1) {
      if (C % c1) continue;
      const int64_t c2 = C / c1;
      bool ok = true;
      for (int i = 0; i < 256 && ok; ++i) {
        const int64_t f = sign * c1 * (p.sep.f[i] / gf), g = sign * c2 * (p.sep.g[i] / gg);
        ok = f >= 0 && f <= 255 && g >= -128 && g <= 127;
      }
      if (!ok) continue;
      p.f8.resize(256), p.g8.resize(256);
      for (int i = 0; i < 256; ++i) {
        p.f8[i] = static_cast<int16_t>(sign * c1 * (p.sep.f[i] / gf));
        p.g8[i] = static_cast<int16_t>(sign * c2 * (p.sep.g[i] / gg));
      }
      p.sep_narrow = true;
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
  p.planes.assign(256 * P * 256, 0);
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b) {
      // E = LUT - base - bias modulo 2^32 (exactly the integer in [0, r] when r < 2^32).
      const uint32_t e = static_cast<uint32_t>(p.lut[a * 256 + b]) -
                         static_cast<uint32_t>(p.base_exact ? a * int32_t(int8_t(b)) : 0) -
                         static_cast<uint32_t>(p.bias);
      for (int j = 0; j < P; ++j) p.planes[(b * P + j) * 256 + a] = uint8_t(e >> (8 * j));
    }
  int top = 0;
  for (int b = 0; b < 256; ++b)
    for (int a = 0; a < 256; ++a) top = std::max<int>(top, p.planes[(b * P + P - 1) * 256 + a]);
  p.top_steps = top == 0 ? 256 : std::min(256, 255 / top);
}

class LutCache {
 public:
  // A LUT that is a constant initializer (the deployed case) is prepared at kernel creation
  // and then used without the per-call compare.
  void PrepareConstant(const OrtKernelInfo* info, size_t index) {
    const std::optional<InputView> lut = ConstantInput(info, index);
    // Anything but a valid LUT is left to Compute, which reports it.
    if (!lut || lut->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 || lut->size() != kLutSize) return;
    constant_ = true;
    Get(lut->data<int32_t>());
  }
  std::shared_ptr<const Prepared> Get(const int32_t* lut) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cur_ && (constant_ || std::memcmp(cur_->lut.data(), lut, kLutSize * sizeof(int32_t)) == 0))
      return cur_;
    auto p = std::make_shared<Prepared>();
    p->lut.assign(lut, lut + kLutSize);
    p->lut_t.resize(kLutSize);
    for (int a = 0; a < 256; ++a)
      for (int b = 0; b < 256; ++b) p->lut_t[b * 256 + a] = lut[a * 256 + b];
    p->sep = approx::FactorLut(lut);
    if (p->sep.ok) NarrowFactors(*p);
    PreparePlanes(*p);
    cur_ = p;
    return cur_;
  }

 private:
  std::mutex mu_;
  bool constant_ = false;
  std::shared_ptr<const Prepared> cur_;
};

using GemmFn = void (*)(const approx::GemmProblem&, int64_t, int64_t);
using SepFn = void (*)(const approx::SepProblem&, int64_t, int64_t);
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
// Test switches (tests cover every path): STEPORT_APPROX_GATHER=1 keeps AVX-512 on the
// gather GEMM for general LUTs; STEPORT_APPROX_AMX=0 keeps u8 x s8 GEMMs on VNNI.
bool EnvIs(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e && std::string(e) == value;
}
Kernels PickKernels(Isa isa) {
  const CpuFeatures& c = DetectCpu();
  switch (isa) {
    case Isa::kAvx512: {
      const bool vnni = c.avx512vnni;
      return {approx::LutGemmAvx512, vnni ? approx::SepGemmAvx512Vnni : approx::SepGemmAvx512,
              approx::GatherAccAvx512, c.avx512vbmi && !EnvIs("STEPORT_APPROX_GATHER", "1"), vnni,
              c.avx512vbmi, vnni && !EnvIs("STEPORT_APPROX_AMX", "0") && AmxInt8Usable()};
    }
    case Isa::kAvx2:
      return {approx::LutGemmAvx2, approx::SepGemmAvx2, approx::GatherAccAvx2, false, false, false,
              false};
    default:
      return {approx::LutGemmPortable, approx::SepGemmPortable, approx::GatherAccPortable, false,
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

using ParFn = std::function<void(int64_t, int64_t, const std::function<void(int64_t, int64_t)>&)>;

// Packed operands of an exact separable GEMM Y[m, n] = sum_k F(m, k) * G(k, n) - corr[n]:
// u8 x s8 quads for the VNNI kernel when the factors are narrow, else int16 pairs.
struct SepPack {
  bool narrow = false, amx = false;
  SepFn fn16 = nullptr;
  std::vector<uint8_t> fa8;
  std::vector<int8_t> gb8;
  std::vector<int16_t> fa16, gb16;
  approx::Sep8Problem p8{};
  approx::SepProblem p16{};

  // `rows`: when not null, F(m, k) == map[rows[m * K + k]] (u8 codes, map null: identity,
  // then used in place when K is a multiple of 4); rows are copied/mapped 64 bytes at a time.
  // `bq`: when not null (VBMI machines), G(k, n) == int8(gmap[bq[k * N + n]]) (gmap null:
  // identity); B is then mapped and quad-interleaved 64 / 16 bytes at a time.
  // `use_amx`: pad for Sep8GemmAmx (K to 64, rows and columns to 32); rows run in 32s.
  template <typename F, typename G>
  SepPack(bool use8, bool use_amx, SepFn fn, const F& f, const G& g, int64_t M, int64_t K,
          int64_t N, const int32_t* corr, int32_t* y, int64_t ldy_m, int64_t ldy_n,
          const uint8_t* rows = nullptr, const uint8_t* map = nullptr,
          const uint8_t* bq = nullptr, const uint8_t* gmap = nullptr)
      : narrow(use8), amx(use8 && use_amx), fn16(fn) {
    if (narrow) {
      const int64_t Kp = RoundUp(std::max<int64_t>(K, 1), amx ? 64 : 4);
      const int64_t Mp = amx ? RoundUp(M, 32) : M;
      const int64_t ldg = amx ? RoundUp(std::max<int64_t>(N, 1), 32)
                              : bq ? RoundUp(std::max<int64_t>(N, 1), 16) : N;
      gb8.assign(Kp * ldg, 0);
      if (bq) {
        std::vector<uint8_t> bm(K * ldg, 0);
        for (int64_t k = 0; k < K; ++k) {
          if (gmap) approx::MapBytesVbmi(gmap, bq + k * N, N, &bm[k * ldg]);
          else std::memcpy(&bm[k * ldg], bq + k * N, N);
        }
        approx::InterleaveQuads(bm.data(), ldg, K, Kp, ldg, reinterpret_cast<uint8_t*>(gb8.data()));
      }
      const uint8_t* fa = rows;
      if (!rows || Kp != K || map || Mp != M) {
        fa8.assign(Mp * Kp, 0);
        if (rows && map) {
          for (int64_t m = 0; m < M; ++m) approx::MapBytesVbmi(map, rows + m * K, K, &fa8[m * Kp]);
        } else if (rows) {
          for (int64_t m = 0; m < M; ++m) std::memcpy(&fa8[m * Kp], rows + m * K, K);
        } else {
          for (int64_t m = 0; m < M; ++m)
            for (int64_t k = 0; k < K; ++k) fa8[m * Kp + k] = static_cast<uint8_t>(f(m, k));
        }
        fa = fa8.data();
      }
      if (!bq)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t n = 0; n < N; ++n)
            gb8[((k >> 2) * ldg + n) * 4 + (k & 3)] = static_cast<int8_t>(g(k, n));
      p8 = {fa, Kp, gb8.data(), N, ldg, corr, y, ldy_m, ldy_n};
    } else {
      const int64_t Kp = RoundUp(std::max<int64_t>(K, 1), 2);
      fa16.assign(M * Kp, 0);
      gb16.assign(Kp * N, 0);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k) fa16[m * Kp + k] = static_cast<int16_t>(f(m, k));
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
          gb16[((k >> 1) * N + n) * 2 + (k & 1)] = static_cast<int16_t>(g(k, n));
      p16 = {fa16.data(), Kp, gb16.data(), N, corr, y, ldy_m, ldy_n};
    }
  }
  int64_t RowUnit() const { return amx ? 32 : 4; }  // row ranges must start at multiples
  void Run(int64_t m0, int64_t m1) const {
    if (amx) approx::Sep8GemmAmx(p8, m0, m1);
    else if (narrow) approx::Sep8GemmVnni(p8, m0, m1);
    else fn16(p16, m0, m1);
  }
  void RunAll(int64_t M, int64_t K, int64_t N, const ParFn& par) const {
    const int64_t u = RowUnit();
    par((M + u - 1) / u, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, K * N * u / 4)),
        [&](int64_t b0, int64_t b1) { Run(b0 * u, std::min(M, b1 * u)); });
  }
};

// Runs Y = LUT-GEMM over `M` rows of activations: a(m, k) gives codes (separable path) and
// at[k][m] is the transposed copy padded to kMBlock (general path). `b` is uint8 [K][N].
struct GemmRunner {
  const Prepared& prep;
  Kernels k;

  // Separable: Y = f(A) . g(B) exactly.
  // `rows`: the codes row-major [M][K] when the caller has them (matmul), else null.
  template <typename A>
  void Sep(const A& a, int64_t M, int64_t K, const uint8_t* b, int64_t N, const int32_t* corr,
           int32_t* y, int64_t ldy_m, int64_t ldy_n, const ParFn& par,
           const uint8_t* rows = nullptr) const {
    const bool narrow = k.sep8 && prep.sep_narrow;
    const int16_t* f = narrow ? prep.f8.data() : prep.sep.f.data();
    const int16_t* g = narrow ? prep.g8.data() : prep.sep.g.data();
    const SepPack sp(narrow, k.amx, k.sep, [&](int64_t m, int64_t kk) { return f[a(m, kk)]; },
                     [&](int64_t kk, int64_t n) { return g[b[kk * N + n]]; }, M, K, N, corr, y,
                     ldy_m, ldy_n, narrow && (prep.f8_identity || k.vbmi) ? rows : nullptr,
                     prep.f8_identity ? nullptr : prep.f8u.data(), k.vbmi ? b : nullptr,
                     prep.g8u.data());
    sp.RunAll(M, K, N, par);
  }

  // General LUT: gather GEMM, or (k.planes) the exact-product base as a separable GEMM plus
  // the byte-plane GEMM of the remainder, both per block of kMBlock rows.
  void General(const uint8_t* at, int64_t ld_at, int64_t M, int64_t K, const uint8_t* b,
               int64_t N, const int32_t* corr, int32_t* y, int64_t ldy_m, int64_t ldy_n,
               const ParFn& par, const uint8_t* rows = nullptr) const {
    const int64_t blocks = (M + approx::kMBlock - 1) / approx::kMBlock;
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, K * N));
    if (!k.planes) {
      approx::GemmProblem p{prep.lut_t.data(), at, ld_at, b, K, N, corr, y, ldy_m, ldy_n};
      return par(blocks, grain, [&](int64_t b0, int64_t b1) {
        k.gemm(p, b0 * approx::kMBlock, std::min(M, b1 * approx::kMBlock));
      });
    }
    const bool base = prep.base_exact;
    // Base f(a) = a, g(b) = int8(b); packed only when used.
    const SepPack sp(k.sep8, k.amx, k.sep, [&](int64_t m, int64_t kk) { return at[kk * ld_at + m]; },
                     [&](int64_t kk, int64_t n) { return int8_t(b[kk * N + n]); }, base ? M : 0,
                     K, N, corr, y, ldy_m, ldy_n, rows, nullptr, k.vbmi ? b : nullptr, nullptr);
    if (base) sp.RunAll(M, K, N, par);
    Planes(at, ld_at, M, K, b, N, base ? nullptr : corr, base, y, ldy_m, ldy_n, par);
  }

  // The byte-plane part alone: y (+)= sum_k E(a, b) + K * bias - corr.
  void Planes(const uint8_t* at, int64_t ld_at, int64_t M, int64_t K, const uint8_t* b,
              int64_t N, const int32_t* corr, bool accumulate, int32_t* y, int64_t ldy_m,
              int64_t ldy_n, const ParFn& par) const {
    const int32_t add = static_cast<int32_t>(static_cast<uint32_t>(K) * static_cast<uint32_t>(prep.bias));
    approx::PlaneProblem pp{prep.planes.data(), prep.planes_p, at, ld_at, b, K, N,
                            corr, add, accumulate, prep.top_steps, y, ldy_m, ldy_n};
    // Tasks: passes of kPlaneRows rows (each table load serves them all) x column chunks
    // (several per pass when passes are few, so threads still have work).
    const int64_t passes = (M + approx::kPlaneRows - 1) / approx::kPlaneRows;
    const int64_t nchunks = std::min<int64_t>(N, std::max<int64_t>(1, 16 / passes));
    const int64_t ncs = (N + nchunks - 1) / nchunks;
    const int64_t work = std::min(M, approx::kPlaneRows) * K * ncs;  // products per task
    par(passes * nchunks, std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, work)),
        [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t m0 = (t / nchunks) * approx::kPlaneRows, n0 = (t % nchunks) * ncs;
            approx::PlaneGemmVbmi(pp, m0, std::min(M, m0 + approx::kPlaneRows), n0,
                                  std::min(N, n0 + ncs));
          }
        });
  }
};

// ---------------------------------------------------------------------------------------
struct MatMulCpu {
  Isa isa;
  LutCache cache;
  explicit MatMulCpu(const OrtKernelInfo* info) : isa(SelectIsa()) { cache.PrepareConstant(info, 2); }

  void Compute(Ort::KernelContext& ctx) {
    InputView a = GetInput(ctx, 0, "A");
    InputView b = GetInput(ctx, 1, "B");
    CheckType(a, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "A");
    CheckType(b, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "B");
    Check(a.shape.size() >= 2, "A must have rank >= 2 ([..., M, K]), got ", ShapeStr(a.shape));
    Check(b.shape.size() == 2, "B must be [K, N], got ", ShapeStr(b.shape));
    const int64_t K = a.shape.back(), N = b.shape[1];
    Check(b.shape[0] == K, "K mismatch: A ", ShapeStr(a.shape), " vs B ", ShapeStr(b.shape));
    const int32_t* lut = ReadLut(ctx, 2);
    const int32_t zp = ReadZeroPoint(ctx, 3, "a_zero_point");
    std::vector<int64_t> yshape(a.shape.begin(), a.shape.end() - 1);
    yshape.push_back(N);
    auto out = ctx.GetOutput(0, yshape);
    int32_t* y = out.GetTensorMutableData<int32_t>();
    const int64_t M = NumElements(yshape) / std::max<int64_t>(N, 1);  // all leading rows
    if (M == 0 || N == 0) return;
    if (K == 0) { std::fill(y, y + M * N, 0); return; }

    auto prep = cache.Get(lut);
    const Kernels kern = PickKernels(isa);
    const uint8_t* ap = a.data<uint8_t>();
    const uint8_t* bp = reinterpret_cast<const uint8_t*>(b.data<int8_t>());
    const int8_t* bs = b.data<int8_t>();
    std::vector<int32_t> corr(N);
    ColumnCorrection<true>(zp, K, N, [&](int64_t k, int64_t n) { return bs[k * N + n]; }, corr.data());
    auto par = [&](int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
      ParallelFor(ctx, n, grain, fn);
    };
    const GemmRunner run{*prep, kern};
    if (prep->sep.ok && isa != Isa::kPortable)
      return run.Sep([&](int64_t m, int64_t k) { return ap[m * K + k]; }, M, K, bp, N,
                     corr.data(), y, N, 1, par, ap);
    // Transposed, padded activations: at[k][m] (vector loads over m), in 64 x 64 tiles.
    const int64_t Mp = RoundUp(M, approx::kMBlock);
    std::vector<uint8_t> at(K * Mp, 0);
    for (int64_t m0 = 0; m0 < M; m0 += 64)
      for (int64_t k0 = 0; k0 < K; k0 += 64) {
        const int64_t m1 = std::min(M, m0 + 64), k1 = std::min(K, k0 + 64);
        for (int64_t k = k0; k < k1; ++k)
          for (int64_t m = m0; m < m1; ++m) at[k * Mp + m] = ap[m * K + k];
      }
    run.General(at.data(), Mp, M, K, bp, N, corr.data(), y, N, 1, par, ap);
  }
};

// ---------------------------------------------------------------------------------------
struct ConvCpu {
  Isa isa;
  LutCache cache;
  int64_t sh, sw, pt, pl, pb, pr, dh, dw, group;

  explicit ConvCpu(const OrtKernelInfo* info) : isa(SelectIsa()) {
    auto ints = [&](const char* name, std::vector<int64_t> dflt, size_t n, int64_t lo, int64_t hi) {
      std::vector<int64_t> v = AttrInts(info, name, std::move(dflt));
      Check(v.size() == n, name, " must have ", n, " values, got ", v.size());
      for (int64_t x : v) Check(x >= lo && x <= hi, name, " values must be in [", lo, ", ", hi, "], got ", x);
      return v;
    };
    auto s = ints("strides", {1, 1}, 2, spec_conv::kStridesMin, spec_conv::kStridesMax);
    auto p = ints("pads", {0, 0, 0, 0}, 4, spec_conv::kPadsMin, spec_conv::kPadsMax);
    auto d = ints("dilations", {1, 1}, 2, spec_conv::kDilationsMin, spec_conv::kDilationsMax);
    sh = s[0], sw = s[1], pt = p[0], pl = p[1], pb = p[2], pr = p[3], dh = d[0], dw = d[1];
    group = AttrIntIn(info, "group", spec_conv::kGroupMin, spec_conv::kGroupMax,
                      spec_conv::kGroupDefault);
    cache.PrepareConstant(info, 2);
  }

  void Compute(Ort::KernelContext& ctx) {
    InputView x = GetInput(ctx, 0, "X");
    InputView w = GetInput(ctx, 1, "W");
    CheckType(x, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "X");
    CheckType(w, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "W");
    Check(x.shape.size() == 4, "X must be NCHW, got ", ShapeStr(x.shape));
    Check(w.shape.size() == 4, "W must be [C_out, C_in/group, kH, kW], got ", ShapeStr(w.shape));
    const int64_t NB = x.shape[0], C = x.shape[1], H = x.shape[2], Wd = x.shape[3];
    const int64_t Co = w.shape[0], Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3];
    Check(C % group == 0 && Co % group == 0 && Cg * group == C, "channels do not fit group=",
          group, ": X ", ShapeStr(x.shape), ", W ", ShapeStr(w.shape));
    Check(KH >= 1 && KW >= 1, "W has an empty kernel: ", ShapeStr(w.shape));
    const int64_t OH = (H + pt + pb - dh * (KH - 1) - 1) / sh + 1;
    const int64_t OW = (Wd + pl + pr - dw * (KW - 1) - 1) / sw + 1;
    Check(H + pt + pb - dh * (KH - 1) - 1 >= 0 && Wd + pl + pr - dw * (KW - 1) - 1 >= 0,
          "kernel larger than the padded input: X ", ShapeStr(x.shape), ", W ", ShapeStr(w.shape));
    const int32_t* lut = ReadLut(ctx, 2);
    const int32_t zp = ReadZeroPoint(ctx, 3, "x_zero_point");
    auto out = ctx.GetOutput(0, std::vector<int64_t>{NB, Co, OH, OW});
    int32_t* y = out.GetTensorMutableData<int32_t>();
    if (NB == 0 || Co == 0) return;
    auto prep = cache.Get(lut);
    const Kernels kern = PickKernels(isa);
    const uint8_t* xp = x.data<uint8_t>();
    const int8_t* wp = w.data<int8_t>();
    const int64_t Og = Co / group, Kg = Cg * KH * KW, L = OH * OW;
    // corr[co] = zp * sum over the filter's taps (padded taps included: they are code zp).
    std::vector<int32_t> corr(Co);
    ColumnCorrection(zp, Kg, Co, [&](int64_t k, int64_t n) { return wp[n * Kg + k]; }, corr.data());

    if (group == C && Co == C && C > 1) return Depthwise(ctx, kern, *prep, xp, wp, corr, y, NB, C, H, Wd, KH, KW, OH, OW, zp);

    const int64_t Lp = RoundUp(L, approx::kMBlock);
    const bool sep = prep->sep.ok && isa != Isa::kPortable;
    // VNNI + VBMI: the separable GEMM (or the exact base of a general LUT) runs transposed
    // on 4-row interleaved columns, writing NCHW rows directly; no im2row copy.
    const bool use_t8 = kern.sep8 && kern.vbmi &&
                        (sep ? prep->sep_narrow : kern.planes && prep->base_exact);
    // Weights per group transposed to [Kg][Og] (uint8 view); not needed by the t8 separable path.
    std::vector<uint8_t> bt(use_t8 && sep ? 0 : group * Kg * Og);
    if (!bt.empty())
      for (int64_t g = 0; g < group; ++g)
        for (int64_t k = 0; k < Kg; ++k)
          for (int64_t o = 0; o < Og; ++o)
            bt[(g * Kg + k) * Og + o] = static_cast<uint8_t>(wp[(g * Og + o) * Kg + k]);
    // im2col of one (image, group): cols[k][l], padded taps = zp, padding columns = 0. Per
    // (tap, output row) the in-image columns are one strided run (a memcpy at stride 1).
    auto im2col = [&](int64_t n, int64_t g, uint8_t* cols) {
      const uint8_t zc = static_cast<uint8_t>(zp);
      for (int64_t c = 0; c < Cg; ++c) {
        const uint8_t* plane = xp + (n * C + g * Cg + c) * H * Wd;
        for (int64_t kh = 0; kh < KH; ++kh)
          for (int64_t kw = 0; kw < KW; ++kw) {
            uint8_t* row = cols + ((c * KH + kh) * KW + kw) * Lp;
            const int64_t off = kw * dw - pl;  // iw = ow * sw + off
            const auto [lo, hi] = ValidColumns(off, sw, Wd, OW);
            for (int64_t oh = 0; oh < OH; ++oh) {
              const int64_t ih = oh * sh - pt + kh * dh;
              uint8_t* r = row + oh * OW;
              if (ih < 0 || ih >= H) { std::memset(r, zc, OW); continue; }
              std::memset(r, zc, lo);
              if (hi > lo) {  // then lo * sw + off is inside the image row
                const uint8_t* src = plane + ih * Wd + (lo * sw + off);
                if (sw == 1) std::memcpy(r + lo, src, hi - lo);
                else for (int64_t ow = lo; ow < hi; ++ow) r[ow] = src[(ow - lo) * sw];
              }
              std::memset(r + hi, zc, OW - hi);
            }
            std::fill(row + L, row + Lp, 0);
          }
      }
    };
    auto one = [&](int64_t n, int64_t g, uint8_t* cols, bool inner_parallel) {
      im2col(n, g, cols);
      int32_t* yg = y + (n * Co + g * Og) * L;
      const uint8_t* bg = bt.empty() ? nullptr : bt.data() + g * Kg * Og;
      const int32_t* cg = corr.data() + g * Og;
      auto serial = [](int64_t cnt, int64_t, const std::function<void(int64_t, int64_t)>& fn) { fn(0, cnt); };
      auto parallel = [&](int64_t cnt, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
        ParallelFor(ctx, cnt, grain, fn);
      };
      const ParFn par = inner_parallel ? ParFn(parallel) : ParFn(serial);
      const GemmRunner run{*prep, kern};
      if (use_t8) {
        const int64_t Kp = RoundUp(Kg, 4);
        if (sep && !prep->f8_identity)
          for (int64_t k = 0; k < Kg; ++k) approx::MapBytesVbmi(prep->f8u.data(), cols + k * Lp, Lp, cols + k * Lp);
        std::vector<uint8_t> aq(Kp * Lp);
        approx::InterleaveQuads(cols, Lp, Kg, Kp, Lp, aq.data());
        std::vector<int8_t> wq(Og * Kp, 0);
        for (int64_t o = 0; o < Og; ++o)
          for (int64_t k = 0; k < Kg; ++k) {
            const int8_t wv = wp[(g * Og + o) * Kg + k];
            wq[o * Kp + k] = sep ? static_cast<int8_t>(prep->g8[static_cast<uint8_t>(wv)]) : wv;
          }
        const approx::Sep8TProblem tp{aq.data(), Lp, Kp, wq.data(), L, Og, cg, yg, L};
        par((Og + 3) / 4, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, L * Kg)),
            [&](int64_t b0, int64_t b1) { approx::Sep8TGemmVnni(tp, b0 * 4, std::min(Og, b1 * 4)); });
        if (!sep) run.Planes(cols, Lp, L, Kg, bg, Og, nullptr, true, yg, 1, L, par);
        return;
      }
      if (sep)
        return run.Sep([&](int64_t m, int64_t k) { return cols[k * Lp + m]; }, L, Kg, bg, Og, cg,
                       yg, 1, L, par);
      run.General(cols, Lp, L, Kg, bg, Og, cg, yg, 1, L, par);
    };
    const int64_t tasks = NB * group;
    if (tasks >= 4) {  // parallel over (image, group), one im2col buffer per chunk
      ParallelFor(ctx, tasks, 1, [&](int64_t t0, int64_t t1) {
        std::vector<uint8_t> cols(Kg * Lp);
        for (int64_t t = t0; t < t1; ++t) one(t / group, t % group, cols.data(), false);
      });
    } else {
      std::vector<uint8_t> cols(Kg * Lp);
      for (int64_t t = 0; t < tasks; ++t) one(t / group, t % group, cols.data(), true);
    }
  }

  // Depthwise (group == C == C_out): per plane, per tap, gather-accumulate a LUT row over
  // the valid output columns; out-of-image taps add LUT[zp][w] (the padding code).
  void Depthwise(Ort::KernelContext& ctx, const Kernels& kern, const Prepared& prep,
                 const uint8_t* xp, const int8_t* wp, const std::vector<int32_t>& corr,
                 int32_t* y, int64_t NB, int64_t C, int64_t H, int64_t Wd, int64_t KH, int64_t KW,
                 int64_t OH, int64_t OW, int32_t zp) {
    ParallelFor(ctx, NB * C, 1, [&](int64_t p0, int64_t p1) {
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
            const int64_t off = kw * dw - pl;  // iw = ow * sw + off
            const auto [lo, hi] = ValidColumns(off, sw, Wd, OW);
            for (int64_t oh = 0; oh < OH; ++oh) {
              const int64_t ih = oh * sh - pt + kh * dh;
              int32_t* acc = yo + oh * OW;
              auto add_pad = [&](int64_t a, int64_t b) {
                for (int64_t i = a; i < b; ++i)
                  acc[i] = static_cast<int32_t>(static_cast<uint32_t>(acc[i]) + pad_val);
              };
              if (ih < 0 || ih >= H) { add_pad(0, OW); continue; }
              add_pad(0, lo);
              if (hi > lo) kern.gather(row, plane + ih * Wd + lo * sw + off, sw, hi - lo, acc + lo);
              add_pad(hi, OW);
            }
          }
        const uint32_t cc = static_cast<uint32_t>(corr[c]);
        for (int64_t i = 0; i < OH * OW; ++i)
          yo[i] = static_cast<int32_t>(static_cast<uint32_t>(yo[i]) - cc);
      }
    });
  }
};

#ifdef STEPORT_WITH_CUDA
// A, B, lut on the device; the zero point is a host-memory input (CpuInput).
struct MatMulCuda {
  explicit MatMulCuda(const OrtKernelInfo*) {}
  void Compute(Ort::KernelContext& ctx) {
    InputView a = GetInput(ctx, 0, "A");
    InputView b = GetInput(ctx, 1, "B");
    CheckType(a, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "A");
    CheckType(b, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "B");
    Check(a.shape.size() >= 2 && b.shape.size() == 2 && b.shape[0] == a.shape.back(),
          "A must be [..., M, K] and B [K, N], got ", ShapeStr(a.shape), " and ", ShapeStr(b.shape));
    const int32_t* lut = ReadLut(ctx, 2);  // device pointer; shape validated
    const int32_t zp = ReadZeroPoint(ctx, 3, "a_zero_point");
    const int64_t K = a.shape.back(), N = b.shape[1];
    std::vector<int64_t> yshape(a.shape.begin(), a.shape.end() - 1);
    yshape.push_back(N);
    auto out = ctx.GetOutput(0, yshape);
    const int64_t M = N ? NumElements(yshape) / N : 0;
    auto stream = static_cast<cudaStream_t>(ctx.GetGPUComputeStream());
    cuda::Check(cuda::LutGemmLaunch(stream, a.data<uint8_t>(), b.data<int8_t>(), lut, zp, M, K,
                                    N, out.GetTensorMutableData<int32_t>()),
                "ApproxMatMulInteger");
  }
};
#endif

using MatMulDesc = SpecDesc<spec_mm::Spec>;
#ifdef STEPORT_WITH_CUDA
struct MatMulCudaDesc : MatMulDesc {
  static const char* ExecutionProvider() { return "CUDAExecutionProvider"; }
  static bool CpuInput(size_t i) { return i == 3; }
};
#endif
using ConvDesc = SpecDesc<spec_conv::Spec>;

}  // namespace

void RegisterApproxOps(OpSink& sink) {
  static Op<MatMulDesc, MatMulCpu> mm_cpu;
  static Op<ConvDesc, ConvCpu> conv_cpu;
  sink.Add(spec::approx::kDomain, &mm_cpu);
  sink.Add(spec::approx::kDomain, &conv_cpu);
#ifdef STEPORT_WITH_CUDA
  static Op<MatMulCudaDesc, MatMulCuda> mm_cuda;
  sink.Add(spec::approx::kDomain, &mm_cuda);
#endif
}

}  // namespace steport
