// ai.steport.approx bindings: ApproxMatMulInteger, ApproxConvInteger, their requantizing
// forms ApproxQLinearMatMul, ApproxQLinearConv (CPU), and the CUDA LUT GEMM for
// ApproxMatMulInteger. Semantics: docs/ops.md. The CPU kernels are the shared drivers of
// core/approx/lut_ops.h (the training ops call the same ones) and core/approx/requant.h.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <mutex>
#include <string>

#include "core/approx/lut_ops.h"
#include "core/approx/requant.h"
#include "core/common/cpu.h"
#include "core/common/shapes.h"
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
namespace spec_qmm = spec::approx::approx_q_linear_mat_mul;
namespace spec_qconv = spec::approx::approx_q_linear_conv;
using approx::kLutSize;

// LUT input: int32, shape [256, 256] or [65536] (anything else would index out of bounds).
const int32_t* ReadLut(Ort::KernelContext& ctx, spec::Port port) {
  InputView l = GetInput(ctx, port);
  CheckType(l, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, port.name);
  const bool ok = (l.shape.size() == 2 && l.shape[0] == 256 && l.shape[1] == 256) ||
                  (l.shape.size() == 1 && l.shape[0] == kLutSize);
  Check(ok, port.name, " must be int32 [256, 256] (or [65536]), got shape ", ShapeStr(l.shape));
  return l.data<int32_t>();
}

// Optional uint8 scalar zero point (absent -> 0). Host-memory input.
int32_t ReadZeroPoint(Ort::KernelContext& ctx, spec::Port port) {
  InputView z = GetOptionalInput(ctx, port);
  if (!z.present) return 0;
  CheckType(z, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, port.name);
  Check(z.shape.size() <= 1 && z.size() == 1, port.name,
        " must be a scalar (shape [] or [1]), got ", ShapeStr(z.shape));
  return *z.data<uint8_t>();
}


// The kernel's handle on its LUT preparation. A LUT that is a constant initializer (the
// deployed case) is prepared at kernel creation; approx::PrepareLut shares one preparation
// among all nodes (and sessions) that use the same table. A LUT computed at run time is
// compared with the last one (one 256 KiB memcmp) before it is looked up again.
class LutCache {
 public:
  void PrepareConstant(const OrtKernelInfo* info, size_t index) {
    const std::optional<InputView> lut = ConstantInput(info, index);
    // Anything but a valid LUT is left to Compute, which reports it.
    if (!lut || lut->type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 || lut->size() != kLutSize) return;
    constant_ = true;
    Get(lut->data<int32_t>());
  }
  std::shared_ptr<const approx::Prepared> Get(const int32_t* lut) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cur_ && (constant_ || std::memcmp(cur_->lut.data(), lut, kLutSize * sizeof(int32_t)) == 0))
      return cur_;
    cur_ = approx::PrepareLut(lut);
    return cur_;
  }

 private:
  std::mutex mu_;
  bool constant_ = false;
  std::shared_ptr<const approx::Prepared> cur_;
};

// Packed weights of a node whose weight input is a constant initializer: built on the first
// Compute (they depend on the LUT's preparation) and reused while the preparation is the same.
template <typename Packed>
class WeightCache {
 public:
  void Init(const OrtKernelInfo* info, size_t index) { constant_ = ConstantInput(info, index).has_value(); }
  // -> the cached pack, or null when the weights are not constant (the caller packs per call).
  template <typename Make>
  std::shared_ptr<const Packed> Get(const approx::Prepared* prep, const void* data, const Make& make) {
    if (!constant_) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    if (!packed_ || prep_ != prep || data_ != data) packed_ = make(), prep_ = prep, data_ = data;
    return packed_;
  }

 private:
  std::mutex mu_;
  bool constant_ = false;
  const approx::Prepared* prep_ = nullptr;
  const void* data_ = nullptr;
  std::shared_ptr<const Packed> packed_;
};

// Scratch of the QLinear ops (int32 sums, or uint8 codes before a pool) from the session's
// CPU allocator (ORT's arena: the memory is reused by later nodes and runs). A std::vector of
// the whole batch's sums was zero-filled and page-faulted anew on every run: ~20 MB and 0.5 ms
// (1 %) of a VGG-small run at batch 16.
template <typename T>
class Scratch {
 public:
  Scratch(Ort::KernelContext& ctx, const std::vector<int64_t>& shape) {
    const int64_t n = NumElements(shape);
    Check(n <= INT64_MAX / static_cast<int64_t>(sizeof(T)), "scratch of shape ", ShapeStr(shape),
          " overflows a byte count");
    const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    alloc_ = ctx.GetAllocator(*cpu);
    Check(alloc_ != nullptr, "no CPU allocator for the scratch");
    data_ = static_cast<T*>(alloc_->Alloc(alloc_, static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T)));
    if (!data_) {
      Ort::GetApi().ReleaseAllocator(alloc_);
      Fail("cannot allocate the scratch of shape ", ShapeStr(shape));
    }
  }
  ~Scratch() {
    alloc_->Free(alloc_, data_);
    Ort::GetApi().ReleaseAllocator(alloc_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* data() const { return data_; }

 private:
  OrtAllocator* alloc_ = nullptr;
  T* data_ = nullptr;
};

approx::ParFn OrtPar(Ort::KernelContext& ctx) {
  return [&ctx](int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    ParallelFor(ctx, n, grain, fn);
  };
}

// ---------------------------------------------------------------------------------------
// The requantization inputs of the QLinear ops: bias int32 [C], multiplier fp32 [C] or [1]
// (finite), y_zero_point. Validated here: the kernels index bias and multiplier by channel.
approx::RequantParams ReadRequant(Ort::KernelContext& ctx, spec::Port bias, spec::Port mult,
                                  spec::Port y_zp, int64_t C) {
  InputView b = GetInput(ctx, bias);
  CheckType(b, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, "bias");
  Check(b.shape.size() == 1 && b.shape[0] == C, "bias must be int32 [", C, "] (one per output ",
        "channel), got ", ShapeStr(b.shape));
  InputView m = GetInput(ctx, mult);
  CheckType(m, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "multiplier");
  Check(m.shape.size() <= 1 && (m.size() == 1 || (m.shape.size() == 1 && m.shape[0] == C)),
        "multiplier must be fp32 [", C, "] or [1], got ", ShapeStr(m.shape));
  approx::RequantParams q;
  q.bias = b.data<int32_t>();
  q.mult = m.data<float>();
  q.per_channel = m.size() != 1;
  for (int64_t i = 0, n = m.size(); i < n; ++i)
    Check(std::isfinite(q.mult[i]), "multiplier must be finite, got ", q.mult[i], " at ", i);
  q.y_zp = ReadZeroPoint(ctx, y_zp);
  return q;
}

// The int32 LUT sums of ApproxMatMulInteger into `y` ([M, N] with M all leading rows of A),
// or false when the output is empty (nothing to compute). `yshape` receives [..., M, N].
struct MatMulCore {
  KernelVariants variants;
  LutCache cache;
  WeightCache<approx::MatMulWeights> weights;
  MatMulCore(const OrtKernelInfo* info, spec::Port b, spec::Port lut)
      : variants(SelectKernelVariants()) {
    cache.PrepareConstant(info, lut.index);
    weights.Init(info, b.index);
  }

  struct Shape { std::vector<int64_t> y; int64_t M, K, N; };
  Shape Validate(const InputView& a, const InputView& b) {
    CheckType(a, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "A");
    CheckType(b, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "B");
    Check(a.shape.size() >= 2, "A must have rank >= 2 ([..., M, K]), got ", ShapeStr(a.shape));
    Check(b.shape.size() == 2, "B must be [K, N], got ", ShapeStr(b.shape));
    const int64_t K = a.shape.back(), N = b.shape[1];
    Check(b.shape[0] == K, "K mismatch: A ", ShapeStr(a.shape), " vs B ", ShapeStr(b.shape));
    std::vector<int64_t> yshape(a.shape.begin(), a.shape.end() - 1);
    yshape.push_back(N);
    const int64_t M = NumElements(yshape) / std::max<int64_t>(N, 1);  // all leading rows
    return {yshape, M, K, N};
  }
  void Run(Ort::KernelContext& ctx, const InputView& a, const InputView& b, const int32_t* lut,
           int32_t zp, const Shape& s, int32_t* y) {
    if (s.K == 0) { std::fill(y, y + s.M * s.N, 0); return; }
    auto prep = cache.Get(lut);
    const int8_t* bp = b.data<int8_t>();
    auto pw = weights.Get(prep.get(), bp, [&] { return approx::PackMatMulWeights(*prep, variants, bp, s.K, s.N); });
    approx::MatMul(*prep, variants, a.data<uint8_t>(), s.M, s.K, bp, s.N, zp, y, OrtPar(ctx), pw.get());
  }
};

struct MatMulCpu {
  MatMulCore core;
  explicit MatMulCpu(const OrtKernelInfo* info) : core(info, spec_mm::kInputB, spec_mm::kInputLut) {}

  void Compute(Ort::KernelContext& ctx) {
    InputView a = GetInput(ctx, spec_mm::kInputA);
    InputView b = GetInput(ctx, spec_mm::kInputB);
    const auto s = core.Validate(a, b);
    const int32_t* lut = ReadLut(ctx, spec_mm::kInputLut);
    const int32_t zp = ReadZeroPoint(ctx, spec_mm::kInputAZeroPoint);
    auto out = ctx.GetOutput(spec_mm::kOutputY.index, s.y);
    if (s.M == 0 || s.N == 0) return;
    core.Run(ctx, a, b, lut, zp, s, out.GetTensorMutableData<int32_t>());
  }
};

// ApproxQLinearMatMul: the LUT sums into scratch, then requantized per column.
struct QMatMulCpu {
  MatMulCore core;
  explicit QMatMulCpu(const OrtKernelInfo* info)
      : core(info, spec_qmm::kInputB, spec_qmm::kInputLut) {}

  void Compute(Ort::KernelContext& ctx) {
    InputView a = GetInput(ctx, spec_qmm::kInputA);
    InputView b = GetInput(ctx, spec_qmm::kInputB);
    const auto s = core.Validate(a, b);
    const int32_t* lut = ReadLut(ctx, spec_qmm::kInputLut);
    const approx::RequantParams q = ReadRequant(ctx, spec_qmm::kInputBias,
                                                spec_qmm::kInputMultiplier,
                                                spec_qmm::kInputYZeroPoint, s.N);
    const int32_t zp = ReadZeroPoint(ctx, spec_qmm::kInputAZeroPoint);
    auto out = ctx.GetOutput(spec_qmm::kOutputY.index, s.y);
    if (s.M == 0 || s.N == 0) return;
    Scratch<int32_t> acc(ctx, {s.M, s.N});
    core.Run(ctx, a, b, lut, zp, s, acc.data());
    approx::RequantizeRows(core.variants.isa, acc.data(), s.M, s.N, q,
                           out.GetTensorMutableData<uint8_t>(), OrtPar(ctx));
  }
};

// ---------------------------------------------------------------------------------------
// ApproxConvInteger's attributes, validation and LUT sums; shared with ApproxQLinearConv,
// whose conv attributes are the same registry entries (registry/approx.py _CONV_ATTRS).
static_assert(spec_qconv::kStridesMax == spec_conv::kStridesMax &&
              spec_qconv::kPadsMax == spec_conv::kPadsMax &&
              spec_qconv::kDilationsMax == spec_conv::kDilationsMax &&
              spec_qconv::kGroupMax == spec_conv::kGroupMax,
              "ApproxQLinearConv's conv attributes are ApproxConvInteger's");
struct ConvCore {
  KernelVariants variants;
  LutCache cache;
  WeightCache<approx::ConvWeights> weights;
  int64_t sh, sw, pt, pl, pb, pr, dh, dw, group;

  ConvCore(const OrtKernelInfo* info, spec::Port w, spec::Port lut)
      : variants(SelectKernelVariants()) {
    auto s = AttrIntsIn(info, spec_conv::kAttrStrides, 2, IntsDefault(spec_conv::kStridesDefault),
                        spec_conv::kStridesMin, spec_conv::kStridesMax);
    auto p = AttrIntsIn(info, spec_conv::kAttrPads, 4, IntsDefault(spec_conv::kPadsDefault),
                        spec_conv::kPadsMin, spec_conv::kPadsMax);
    auto d = AttrIntsIn(info, spec_conv::kAttrDilations, 2,
                        IntsDefault(spec_conv::kDilationsDefault), spec_conv::kDilationsMin,
                        spec_conv::kDilationsMax);
    sh = s[0], sw = s[1], pt = p[0], pl = p[1], pb = p[2], pr = p[3], dh = d[0], dw = d[1];
    group = AttrIntIn(info, spec_conv::kAttrGroup, spec_conv::kGroupMin, spec_conv::kGroupMax,
                      spec_conv::kGroupDefault);
    cache.PrepareConstant(info, lut.index);
    weights.Init(info, w.index);
  }


  approx::ConvShape Validate(const InputView& x, const InputView& w) const {
    CheckType(x, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "X");
    CheckType(w, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "W");
    Check(x.shape.size() == 4, "X must be NCHW, got ", ShapeStr(x.shape));
    Check(w.shape.size() == 4, "W must be [C_out, C_in/group, kH, kW], got ", ShapeStr(w.shape));
    const int64_t NB = x.shape[0], C = x.shape[1], H = x.shape[2], Wd = x.shape[3];
    const int64_t Co = w.shape[0], Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3];
    Check(C % group == 0 && Co % group == 0 && Cg * group == C, "channels do not fit group=",
          group, ": X ", ShapeStr(x.shape), ", W ", ShapeStr(w.shape));
    Check(KH >= 1 && KW >= 1, "W has an empty kernel: ", ShapeStr(w.shape));
    const int64_t OH = ConvOutputSize(H, pt, pb, KH, sh, dh);
    const int64_t OW = ConvOutputSize(Wd, pl, pr, KW, sw, dw);
    Check(OH >= 1 && OW >= 1,
          "kernel larger than the padded input: X ", ShapeStr(x.shape), ", W ", ShapeStr(w.shape));
    return {NB, C, H, Wd, Co, Cg, KH, KW, sh, sw, pt, pl, pb, pr, dh, dw, group, OH, OW};
  }

  // The LUT's preparation and the weights packed for it: cached for a constant W (one shape:
  // the pack made for the first call fits every call), else packed per call.
  struct Ready {
    std::shared_ptr<const approx::Prepared> prep;
    std::shared_ptr<const approx::ConvWeights> pw;
  };
  Ready Prepare(const approx::ConvShape& s, const InputView& w, const int32_t* lut) {
    auto prep = cache.Get(lut);
    const int8_t* wp = w.data<int8_t>();
    auto make = [&] { return approx::PackConvWeights(*prep, variants, s, wp); };
    auto pw = weights.Get(prep.get(), wp, make);
    return {prep, pw ? pw : make()};
  }

  void Run(const approx::ParFn& par, const approx::ConvShape& s, const uint8_t* x,
           const InputView& w, const int32_t* lut, int32_t zp, int32_t* y) {
    const Ready r = Prepare(s, w, lut);
    approx::Conv(*r.prep, variants, s, x, w.data<int8_t>(), zp, y, par, r.pw.get());
  }
};

struct ConvCpu {
  ConvCore core;
  explicit ConvCpu(const OrtKernelInfo* info)
      : core(info, spec_conv::kInputW, spec_conv::kInputLut) {}

  void Compute(Ort::KernelContext& ctx) {
    InputView x = GetInput(ctx, spec_conv::kInputX);
    InputView w = GetInput(ctx, spec_conv::kInputW);
    const approx::ConvShape s = core.Validate(x, w);
    const int32_t* lut = ReadLut(ctx, spec_conv::kInputLut);
    const int32_t zp = ReadZeroPoint(ctx, spec_conv::kInputXZeroPoint);
    auto out = ctx.GetOutput(spec_conv::kOutputY.index,
                             std::vector<int64_t>{s.NB, s.Co, s.OH, s.OW});
    if (s.NB == 0 || s.Co == 0) return;
    core.Run(OrtPar(ctx), s, x.data<uint8_t>(), w, lut, zp, out.GetTensorMutableData<int32_t>());
  }
};

// ApproxQLinearConv: the LUT sums into scratch, then the requantization with the max-pool
// (core/approx/requant.h pools the accumulators: the same codes, a quarter of the work).
struct QConvCpu {
  ConvCore core;
  approx::PoolShape pool;

  explicit QConvCpu(const OrtKernelInfo* info)
      : core(info, spec_qconv::kInputW, spec_qconv::kInputLut) {
    auto k = AttrIntsIn(info, spec_qconv::kAttrPoolKernel, 2,
                        IntsDefault(spec_qconv::kPoolKernelDefault), spec_qconv::kPoolKernelMin,
                        spec_qconv::kPoolKernelMax);
    auto s = AttrIntsIn(info, spec_qconv::kAttrPoolStrides, 2,
                        IntsDefault(spec_qconv::kPoolStridesDefault), spec_qconv::kPoolStridesMin,
                        spec_qconv::kPoolStridesMax);
    auto p = AttrIntsIn(info, spec_qconv::kAttrPoolPads, 4,
                        IntsDefault(spec_qconv::kPoolPadsDefault), spec_qconv::kPoolPadsMin,
                        spec_qconv::kPoolPadsMax);
    pool = {k[0], k[1], s[0], s[1], p[0], p[1], p[2], p[3]};
    Check(p[0] < k[0] && p[2] < k[0] && p[1] < k[1] && p[3] < k[1],
          "pool_pads must be smaller than pool_kernel on their axis, got pads [", p[0], ", ",
          p[1], ", ", p[2], ", ", p[3], "] for kernel [", k[0], ", ", k[1], "]");
  }

  void Compute(Ort::KernelContext& ctx) {
    InputView x = GetInput(ctx, spec_qconv::kInputX);
    InputView w = GetInput(ctx, spec_qconv::kInputW);
    const approx::ConvShape s = core.Validate(x, w);
    const int32_t* lut = ReadLut(ctx, spec_qconv::kInputLut);
    const approx::RequantParams q = ReadRequant(ctx, spec_qconv::kInputBias,
                                                spec_qconv::kInputMultiplier,
                                                spec_qconv::kInputYZeroPoint, s.Co);
    const int32_t zp = ReadZeroPoint(ctx, spec_qconv::kInputXZeroPoint);
    const int64_t PH = ConvOutputSize(s.OH, pool.pt, pool.pb, pool.kh, pool.sh, 1);
    const int64_t PW = ConvOutputSize(s.OW, pool.pl, pool.pr, pool.kw, pool.sw, 1);
    Check(PH >= 1 && PW >= 1, "pool_kernel larger than the padded conv output ", s.OH, "x", s.OW);
    auto out = ctx.GetOutput(spec_qconv::kOutputY.index, std::vector<int64_t>{s.NB, s.Co, PH, PW});
    if (s.NB == 0 || s.Co == 0) return;
    const uint8_t* xd = x.data<uint8_t>();
    uint8_t* yd = out.GetTensorMutableData<uint8_t>();
    const ConvCore::Ready r = core.Prepare(s, w, lut);
    const int8_t* wp = w.data<int8_t>();
    // The GEMM's tiles requantize (and pool) their sums where the path allows it
    // (approx::FusesCodes: the separable channel-quad path): no int32 sums in memory.
    const bool pool2x2 = pool.kh == 2 && pool.kw == 2 && pool.sh == 2 && pool.sw == 2 &&
                         pool.pt == 0 && pool.pl == 0 && pool.pb == 0 && pool.pr == 0;
    if ((pool.identity() || pool2x2) && approx::FusesCodes(*r.pw, s, pool2x2))
      return approx::ConvToCodes(*r.prep, core.variants, s, xd, wp, zp, q, pool2x2, yd, OrtPar(ctx),
                                 *r.pw);
    // Else one image at a time, pooled while its sums or codes are in cache (one pass over
    // the whole batch's sums went through memory: 8 MiB for a 128-channel 32x32 layer at
    // batch 16, 4 % of that layer). Threads take whole images (each with its own scratch); a
    // single image spreads over the threads inside the conv. Where the tiles can requantize
    // but not pool (rows not filling whole panels, other pools), they write the image's codes
    // and the codes are max-pooled: the same result (requant.h), a quarter of the bytes.
    const int64_t in_image = s.C * s.H * s.W, out_image = s.Co * PH * PW;
    approx::ConvShape one = s;
    one.NB = 1;
    const bool codes_then_pool = approx::FusesCodes(*r.pw, s, false);
    auto images = [&](int64_t n0, int64_t n1, const approx::ParFn& inner) {
      if (codes_then_pool) {
        Scratch<uint8_t> codes(ctx, {1, s.Co, s.OH, s.OW});
        for (int64_t n = n0; n < n1; ++n) {
          approx::ConvToCodes(*r.prep, core.variants, one, xd + n * in_image, wp, zp, q, false,
                              codes.data(), inner, *r.pw);
          approx::MaxPoolCodes(core.variants.isa, codes.data(), s.Co, s.OH, s.OW, pool, PH, PW,
                               yd + n * out_image, inner);
        }
        return;
      }
      Scratch<int32_t> acc(ctx, {1, s.Co, s.OH, s.OW});
      for (int64_t n = n0; n < n1; ++n) {
        approx::Conv(*r.prep, core.variants, one, xd + n * in_image, wp, zp, acc.data(), inner,
                     r.pw.get());
        approx::RequantizePlanes(core.variants.isa, acc.data(), 1, s.Co, s.OH, s.OW, q, pool,
                                 PH, PW, yd + n * out_image, inner);
      }
    };
    const approx::ParFn par = OrtPar(ctx);
    if (s.NB == 1) return images(0, 1, par);
    const approx::ParFn serial = [](int64_t n, int64_t, const std::function<void(int64_t, int64_t)>& fn) {
      fn(0, n);
    };
    par(s.NB, 1, [&](int64_t n0, int64_t n1) { images(n0, n1, serial); });
  }
};

#ifdef STEPORT_WITH_CUDA
// A, B, lut on the device; the zero point is a host-memory input (CpuInput).
struct MatMulCuda {
  explicit MatMulCuda(const OrtKernelInfo*) {}
  void Compute(Ort::KernelContext& ctx) {
    InputView a = GetInput(ctx, spec_mm::kInputA);
    InputView b = GetInput(ctx, spec_mm::kInputB);
    CheckType(a, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "A");
    CheckType(b, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "B");
    Check(a.shape.size() >= 2 && b.shape.size() == 2 && b.shape[0] == a.shape.back(),
          "A must be [..., M, K] and B [K, N], got ", ShapeStr(a.shape), " and ", ShapeStr(b.shape));
    const int32_t* lut = ReadLut(ctx, spec_mm::kInputLut);  // device pointer; shape validated
    const int32_t zp = ReadZeroPoint(ctx, spec_mm::kInputAZeroPoint);
    const int64_t K = a.shape.back(), N = b.shape[1];
    std::vector<int64_t> yshape(a.shape.begin(), a.shape.end() - 1);
    yshape.push_back(N);
    auto out = ctx.GetOutput(spec_mm::kOutputY.index, yshape);
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
struct MatMulCudaDesc : CudaDesc<MatMulDesc> {
  static bool CpuInput(size_t i) { return i == spec_mm::kInputAZeroPoint.index; }
};
#endif
using ConvDesc = SpecDesc<spec_conv::Spec>;
using QMatMulDesc = SpecDesc<spec_qmm::Spec>;
using QConvDesc = SpecDesc<spec_qconv::Spec>;

}  // namespace

void RegisterApproxOps(OpSink& sink) {
  static Op<MatMulDesc, MatMulCpu> mm_cpu;
  static Op<ConvDesc, ConvCpu> conv_cpu;
  sink.Add(spec::approx::kDomain, &mm_cpu);
  sink.Add(spec::approx::kDomain, &conv_cpu);
  static Op<QMatMulDesc, QMatMulCpu> qmm_cpu;
  static Op<QConvDesc, QConvCpu> qconv_cpu;
  sink.Add(spec::approx::kDomain, &qmm_cpu);
  sink.Add(spec::approx::kDomain, &qconv_cpu);
#ifdef STEPORT_WITH_CUDA
  static Op<MatMulCudaDesc, MatMulCuda> mm_cuda;
  sink.Add(spec::approx::kDomain, &mm_cuda);
#endif
}

}  // namespace steport
