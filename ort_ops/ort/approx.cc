// ai.steport.approx bindings: ApproxMatMulInteger, ApproxConvInteger (CPU), and the CUDA
// LUT GEMM for ApproxMatMulInteger. Semantics: docs/approx.md. The CPU kernels are the
// shared drivers of core/approx/lut_ops.h (the training ops call the same ones).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <mutex>
#include <string>

#include "core/approx/lut_ops.h"
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

approx::ParFn OrtPar(Ort::KernelContext& ctx) {
  return [&ctx](int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    ParallelFor(ctx, n, grain, fn);
  };
}

// ---------------------------------------------------------------------------------------
struct MatMulCpu {
  KernelVariants variants;
  LutCache cache;
  WeightCache<approx::MatMulWeights> weights;
  explicit MatMulCpu(const OrtKernelInfo* info) : variants(SelectKernelVariants()) {
    cache.PrepareConstant(info, spec_mm::kInputLut.index);
    weights.Init(info, spec_mm::kInputB.index);
  }

  void Compute(Ort::KernelContext& ctx) {
    InputView a = GetInput(ctx, spec_mm::kInputA);
    InputView b = GetInput(ctx, spec_mm::kInputB);
    CheckType(a, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, "A");
    CheckType(b, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8, "B");
    Check(a.shape.size() >= 2, "A must have rank >= 2 ([..., M, K]), got ", ShapeStr(a.shape));
    Check(b.shape.size() == 2, "B must be [K, N], got ", ShapeStr(b.shape));
    const int64_t K = a.shape.back(), N = b.shape[1];
    Check(b.shape[0] == K, "K mismatch: A ", ShapeStr(a.shape), " vs B ", ShapeStr(b.shape));
    const int32_t* lut = ReadLut(ctx, spec_mm::kInputLut);
    const int32_t zp = ReadZeroPoint(ctx, spec_mm::kInputAZeroPoint);
    std::vector<int64_t> yshape(a.shape.begin(), a.shape.end() - 1);
    yshape.push_back(N);
    auto out = ctx.GetOutput(spec_mm::kOutputY.index, yshape);
    int32_t* y = out.GetTensorMutableData<int32_t>();
    const int64_t M = NumElements(yshape) / std::max<int64_t>(N, 1);  // all leading rows
    if (M == 0 || N == 0) return;
    if (K == 0) { std::fill(y, y + M * N, 0); return; }
    auto prep = cache.Get(lut);
    const int8_t* bp = b.data<int8_t>();
    auto pw = weights.Get(prep.get(), bp,
                          [&] { return approx::PackMatMulWeights(*prep, variants, bp, K, N); });
    approx::MatMul(*prep, variants, a.data<uint8_t>(), M, K, bp, N, zp, y, OrtPar(ctx), pw.get());
  }
};

// ---------------------------------------------------------------------------------------
struct ConvCpu {
  KernelVariants variants;
  LutCache cache;
  WeightCache<approx::ConvWeights> weights;
  int64_t sh, sw, pt, pl, pb, pr, dh, dw, group;

  explicit ConvCpu(const OrtKernelInfo* info) : variants(SelectKernelVariants()) {
    auto ints = [&](const char* name, std::vector<int64_t> dflt, size_t n, int64_t lo, int64_t hi) {
      std::vector<int64_t> v = AttrInts(info, name, std::move(dflt));
      Check(v.size() == n, name, " must have ", n, " values, got ", v.size());
      for (int64_t x : v) Check(x >= lo && x <= hi, name, " values must be in [", lo, ", ", hi, "], got ", x);
      return v;
    };
    auto s = ints(spec_conv::kAttrStrides, IntsDefault(spec_conv::kStridesDefault), 2,
                  spec_conv::kStridesMin, spec_conv::kStridesMax);
    auto p = ints(spec_conv::kAttrPads, IntsDefault(spec_conv::kPadsDefault), 4,
                  spec_conv::kPadsMin, spec_conv::kPadsMax);
    auto d = ints(spec_conv::kAttrDilations, IntsDefault(spec_conv::kDilationsDefault), 2,
                  spec_conv::kDilationsMin, spec_conv::kDilationsMax);
    sh = s[0], sw = s[1], pt = p[0], pl = p[1], pb = p[2], pr = p[3], dh = d[0], dw = d[1];
    group = AttrIntIn(info, spec_conv::kAttrGroup, spec_conv::kGroupMin, spec_conv::kGroupMax,
                      spec_conv::kGroupDefault);
    cache.PrepareConstant(info, spec_conv::kInputLut.index);
    weights.Init(info, spec_conv::kInputW.index);
  }

  void Compute(Ort::KernelContext& ctx) {
    InputView x = GetInput(ctx, spec_conv::kInputX);
    InputView w = GetInput(ctx, spec_conv::kInputW);
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
    const int32_t* lut = ReadLut(ctx, spec_conv::kInputLut);
    const int32_t zp = ReadZeroPoint(ctx, spec_conv::kInputXZeroPoint);
    auto out = ctx.GetOutput(spec_conv::kOutputY.index, std::vector<int64_t>{NB, Co, OH, OW});
    int32_t* y = out.GetTensorMutableData<int32_t>();
    if (NB == 0 || Co == 0) return;
    auto prep = cache.Get(lut);
    const approx::ConvShape s{NB, C, H, Wd, Co, Cg, KH, KW, sh, sw, pt, pl, pb, pr, dh, dw,
                              group, OH, OW};
    const int8_t* wp = w.data<int8_t>();
    // A constant W has one shape: the pack made for the first call fits every call.
    auto pw = weights.Get(prep.get(), wp,
                          [&] { return approx::PackConvWeights(*prep, variants, s, wp); });
    approx::Conv(*prep, variants, s, x.data<uint8_t>(), wp, zp, y, OrtPar(ctx), pw.get());
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
